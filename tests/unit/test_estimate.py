"""kubetune estimate: the arithmetic, the report, and the CLI (no torch needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubetune.cli import main
from kubetune.estimate.hardware import GPUS, flops_per_token
from kubetune.estimate.host import quantity_bytes, quantity_millicpus
from kubetune.estimate.memory import GIB, estimate_memory, lora_parameters
from kubetune.estimate.report import estimate, render, training_tokens
from kubetune.estimate.shapes import CATALOG, ModelShape, catalog_key, load_shape
from kubetune_contract.api import parse_finetunejob
from tests.cases.manifests import merge, valid_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LLAMA_8B = CATALOG["meta-llama/Llama-3.1-8B"]


def _spec(**patch: Any) -> Any:
    return parse_finetunejob(merge(valid_manifest(), {"spec": patch})).spec


def test_catalog_parameter_counts_match_published_sizes() -> None:
    assert LLAMA_8B.parameters == 8_030_261_248
    assert CATALOG["meta-llama/Llama-3.2-1B"].parameters == 1_235_814_400
    assert round(CATALOG["meta-llama/Llama-3.1-70B"].parameters / 1e9, 1) == 70.6


def test_catalog_lookup_strips_revision_and_instruct_suffix() -> None:
    assert catalog_key("hf://meta-llama/Llama-3.1-8B-Instruct@main") == "meta-llama/Llama-3.1-8B"
    assert catalog_key("s3://bucket/model") is None
    with pytest.raises(LookupError, match="--model-config"):
        load_shape("hf://unknown/model")


def test_lora_parameters_count_rank_times_fan_in_plus_out() -> None:
    # Llama-3.1-8B, rank 16 on q and v: 32 layers x 16 x ((4096+4096) + (4096+1024)).
    assert lora_parameters(LLAMA_8B, 16, ["q_proj", "v_proj"]) == 32 * 16 * (8192 + 5120)


def test_qlora_needs_about_a_quarter_of_lora_weight_memory() -> None:
    lora = estimate_memory(LLAMA_8B, _spec(adapter={"type": "lora"}))
    qlora = estimate_memory(LLAMA_8B, _spec(adapter={"type": "qlora"}))
    assert 0.25 < qlora.weights / lora.weights < 0.40
    assert qlora.trainableParameters == lora.trainableParameters


def test_full_fine_tuning_shards_over_gpus_and_checkpointing_saves_activations() -> None:
    full = _spec(adapter={"type": "full"}, resources={"gpus": 4})
    one = estimate_memory(LLAMA_8B, full, shards=1)
    four = estimate_memory(LLAMA_8B, full, shards=4)
    assert four.optimizer * 4 == pytest.approx(one.optimizer, rel=1e-6)
    no_ckpt = _spec(training={"gradientCheckpointing": False})
    assert (
        estimate_memory(LLAMA_8B, no_ckpt).activations
        > 5 * estimate_memory(LLAMA_8B, _spec()).activations
    )


def test_training_tokens_from_max_steps_or_dataset() -> None:
    steps = _spec(training={"maxSteps": 10, "batchSize": 2, "gradientAccumulationSteps": 3})
    assert training_tokens(steps, None) == 10 * 2 * 3 * 1024
    assert training_tokens(_spec(training={"epochs": 2}), 5000) == 10000
    assert training_tokens(_spec(), None) is None


def test_auto_batch_size_is_estimated_as_one_example_and_said_so() -> None:
    auto = _spec(training={"maxSteps": 10, "batchSize": "auto"})
    one = _spec(training={"maxSteps": 10, "batchSize": 1})
    assert training_tokens(auto, None) == 10 * 1024
    assert estimate_memory(LLAMA_8B, auto) == estimate_memory(LLAMA_8B, one)
    text = render(estimate(LLAMA_8B, auto), "hf://meta-llama/Llama-3.1-8B")
    assert "training.batchSize auto: estimated with 1 example per device" in text
    assert "batchSize auto" not in render(estimate(LLAMA_8B, one), "hf://x")


def test_throughput_follows_flops() -> None:
    spec = _spec(adapter={"type": "lora"}, training={"gradientCheckpointing": False})
    assert flops_per_token(LLAMA_8B, spec) == 4 * LLAMA_8B.parameters
    result = estimate(LLAMA_8B, spec, dataset_tokens=10**9, prices={"NVIDIA-L4": 1.0})
    by_gpu = {row.gpu.product: row for row in result.rows}
    h100, l4 = by_gpu["NVIDIA-H100-80GB-HBM3"], by_gpu["NVIDIA-L4"]
    assert h100.tokensPerSecond / l4.tokensPerSecond == pytest.approx(989 / 121)
    assert l4.cost == pytest.approx(l4.hours)
    assert h100.cost is None


def test_fit_against_gpu_memory() -> None:
    big = ModelShape(8192, 80, 64, 8, 28672, 128256)
    result = estimate(big, _spec(adapter={"type": "lora"}, resources={"gpuType": "NVIDIA-L4"}))
    assert result.requested_fits is False
    assert all(row.fits == (result.memory.total <= row.gpu.memoryGiB * GIB) for row in result.rows)
    assert set(GPUS) == {row.gpu.product for row in result.rows}


def test_cli_prints_table_and_fails_when_requested_gpu_is_too_small(
    tmp_path: Path, capsys: Any
) -> None:
    assert (
        main(
            [
                "estimate",
                str(EXAMPLES / "sft-qlora.yaml"),
                "--dataset-tokens",
                "1000000",
                "--price",
                "NVIDIA-H100-80GB-HBM3=4",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "8.03 B parameters" in out and "NVIDIA-H100-80GB-HBM3" in out
    too_big = tmp_path / "big.yaml"
    too_big.write_text(
        "apiVersion: kubetune.io/v1alpha1\nkind: FineTuneJob\nmetadata: {name: big}\n"
        "spec: {method: sft, model: {uri: 'hf://meta-llama/Llama-3.1-70B'}, "
        "adapter: {type: lora}, resources: {gpuType: NVIDIA-L4}, "
        "dataset: {train: {uri: 's3://d/t.jsonl'}}, output: {uri: 's3://o/x'}}\n"
    )
    assert main(["estimate", str(too_big)]) == 1
    out = capsys.readouterr().out
    assert "does not fit" in out and "time: unknown" in out


def test_cli_reports_unknown_models_and_bad_prices(tmp_path: Path, capsys: Any) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: kubetune.io/v1alpha1\nkind: FineTuneJob\nmetadata: {name: x}\n"
        "spec: {method: sft, model: {uri: 'hf://someone/unknown'}, "
        "dataset: {train: {uri: 's3://d/t.jsonl'}}, output: {uri: 's3://o/x'}}\n"
    )
    assert main(["estimate", str(manifest)]) == 2
    assert "no shape known for hf://someone/unknown" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["estimate", str(manifest), "--price", "H100"])


def test_the_report_prints_the_pod_requests_the_operator_renders() -> None:
    from kubetune.render.children import render_children
    from kubetune.render.options import RenderOptions
    from kubetune_contract.api import parse_finetunejob
    from tests.cases.manifests import merge, valid_manifest

    manifest = merge(
        valid_manifest(),
        {"spec": {"model": {"uri": "hf://meta-llama/Llama-3.1-8B"}, "resources": {"gpus": 2}}},
    )
    job = parse_finetunejob(manifest)
    (container,) = render_children(job, RenderOptions()).batch_job["spec"]["template"]["spec"][
        "containers"
    ]
    requests = container["resources"]["requests"]
    text = render(estimate(LLAMA_8B, job.spec), "hf://meta-llama/Llama-3.1-8B")
    assert f"cpu {requests['cpu']}, host memory {requests['memory']}" in text
    given = _spec(resources={"cpu": "3", "memory": "7Gi"})
    assert "cpu 3, host memory 7Gi" in render(estimate(LLAMA_8B, given), "hf://x")


@pytest.mark.parametrize(
    ("quantity", "millicpus"), [("500m", 500), ("1.5", 1500), ("8", 8000), ("0.1", 100)]
)
def test_cpu_quantities_are_read_in_millicores(quantity: str, millicpus: int) -> None:
    assert quantity_millicpus(quantity) == millicpus


def test_a_quantity_that_is_not_one_names_its_kind() -> None:
    with pytest.raises(ValueError, match="not a CPU quantity: '2 cores'"):
        quantity_millicpus("2 cores")
    assert quantity_bytes("8Gi") == 8 * GIB and quantity_bytes("1500m") == 2
