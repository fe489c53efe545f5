"""spec.evaluation on the tiny Llama: base against tuned after training, for real.

The task: name the colour of a thing, asked in six phrasings. The held-out rows ask about
the same things in phrasings those rows alone use, so the random base model gets none
right and a LoRA trained for 160 steps gets most of them.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.cli import main
from kubetune.controller.summary import evaluation_of
from kubetune_contract import exit_codes
from kubetune_contract.api.trainer_config import TrainerConfig
from kubetune_contract.evaluation.records import aggregate, read_records
from kubetune_contract.termination import Summary
from kubetune_trainer import data
from kubetune_trainer.evaluation.scoring import RewardJudge
from kubetune_trainer.run import RunOptions, execute
from tests.cases.manifests import DELETE
from tests.trainer.helpers import PROMPT_ROWS, free_port, job_document, make_config, write_jsonl

pytestmark = pytest.mark.trainer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOURS = {
    "a lemon": "yellow",
    "a lime": "green",
    "milk": "white",
    "ink": "black",
    "a cherry": "red",
    "a carrot": "orange",
    "a violet": "purple",
    "soil": "brown",
    "a pig": "pink",
    "the sea": "blue",
}
PHRASINGS = [
    "What colour is {}?",
    "Tell me the colour of {}.",
    "Which colour does {} have?",
    "Name the colour of {}.",
    "What is the colour of {}?",
    "Colour of {}?",
]
ROWS = [
    {"prompt": p.format(thing), "completion": c} for thing, c in COLOURS.items() for p in PHRASINGS
]
random.Random(0).shuffle(ROWS)
METRICS = ["exactMatch", "normalizedExactMatch", "contains", "tokenF1", "rougeL"]
GATE = [{"metric": "exactMatch", "minDelta": "0.05"}]


def colour_job(tmp_path: Path, **training: Any) -> TrainerConfig:
    return make_config(
        tmp_path,
        ROWS,
        dataset={"validationSplit": "0.2"},
        training={"maxSteps": 160, "batchSize": 8, "learningRate": "1e-2", **training},
        checkpoints={"intervalSteps": 1000},
        evaluation={"generation": {"maxNewTokens": 8}, "metrics": METRICS, "gate": GATE},
    )


def run(config: TrainerConfig, work: Path, port: int = 0) -> Summary:
    return execute(lambda: config, RunOptions(work_dir=work, metrics_port=port, print_logs=False))


class Trained:
    """One training run that helps, shared by the tests that read its result."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = colour_job(root)
        self.port = free_port()
        self.summary = run(self.config, root / "work", self.port)
        self.out = root / "out"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return Trained(tmp_path_factory.mktemp("helps"))


def test_training_that_helps_raises_exact_match_on_held_out_prompts(trained: Trained) -> None:
    summary = trained.summary
    assert (summary.outcome, summary.exitCode) == ("Succeeded", exit_codes.SUCCESS), summary.message
    evaluation = summary.evaluation
    assert evaluation["prompts"] == 12  # 20% of 60 rows held out
    exact = evaluation["metrics"]["exactMatch"]
    assert exact["base"] == 0.0 and exact["tuned"] >= 0.5, evaluation
    assert evaluation["gate"] == {"passed": True, "failures": []}
    assert evaluation["headline"] == f"exact match 0.00 → {exact['tuned']:.2f}"
    assert evaluation["headline"] in summary.message
    # The prompts are held out: none of them was trained on.
    assert trained.config.spec.dataset is not None
    split = data.prepare(trained.config.spec.dataset, "sft", trained.config.spec.training.seed)
    records = read_records((trained.out / "evaluation.jsonl").read_text().splitlines())
    assert not {r["prompt"] for r in records} & {row["prompt"] for row in split.train}
    # What the operator makes of it.
    result = evaluation_of(summary)
    assert result is not None and result.reportUri == f"file://{trained.out}/evaluation.md"
    assert result.metrics["exactMatch"].delta == pytest.approx(exact["tuned"])


def test_report_manifest_and_gauges_carry_the_numbers_of_the_examples(trained: Trained) -> None:
    records = read_records((trained.out / "evaluation.jsonl").read_text().splitlines())
    assert len(records) == 12
    means = aggregate(records, METRICS)
    for metric in METRICS:
        assert trained.summary.evaluation["metrics"][metric] == {
            "base": pytest.approx(means[metric].base),
            "tuned": pytest.approx(means[metric].tuned),
        }
    page = (trained.out / "evaluation.md").read_text()
    table = dict(
        (label, (float(base), float(tuned)))
        for label, base, tuned in re.findall(
            r"^\| ([^|]+?) \| ([0-9.]+) \| ([0-9.]+) \|", page, re.M
        )
    )
    assert table["exact match"] == pytest.approx(
        (means["exactMatch"].base, means["exactMatch"].tuned), abs=5e-5
    )
    assert table["ROUGE-L"] == pytest.approx(
        (means["rougeL"].base, means["rougeL"].tuned), abs=5e-5
    )
    assert "**Gate: passed**" in page
    manifest = json.loads((trained.out / "manifest.json").read_text())
    block = manifest["evaluation"]
    assert block["metrics"]["tokenF1"]["tuned"] == pytest.approx(means["tokenF1"].tuned)
    assert block["gate"]["passed"] is True
    assert f"file://{trained.out}/evaluation.jsonl" in manifest["files"]
    assert manifest["files"].count(f"file://{trained.out}/adapter_model.safetensors") == 1
    png = (trained.out / "evaluation.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])
    assert width > 300 and height > 200
    with urllib.request.urlopen(f"http://127.0.0.1:{trained.port}/metrics", timeout=10) as got:
        exposition = got.read().decode()
    tuned = re.search(
        r'kubetune_trainer_evaluation_score\{metric="exactMatch",model="tuned"\} (\S+)', exposition
    )
    assert tuned is not None and float(tuned.group(1)) == pytest.approx(means["exactMatch"].tuned)
    assert 'kubetune_trainer_evaluation_answers{model="base"} 12.0' in exposition
    assert 'kubetune_trainer_evaluation_gate_passed{metric="exactMatch"} 1.0' in exposition


def test_kubetune_eval_on_the_published_result_gives_the_jobs_numbers(
    trained: Trained, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(job_document(trained.config.spec.to_wire())))
    again = tmp_path / "again"
    code = main(["eval", str(manifest), "--adapter", f"file://{trained.out}", "-o", str(again)])
    printed = capfd.readouterr().out  # the trainer's eval command, a child process
    assert code == 0, printed
    assert trained.summary.evaluation["headline"] in printed and "gate passed" in printed
    first = read_records((trained.out / "evaluation.jsonl").read_text().splitlines())
    second = read_records((again / "evaluation.jsonl").read_text().splitlines())
    assert [r["tuned"] for r in second] == [r["tuned"] for r in first]  # greedy: same answers
    assert [r["base"] for r in second] == [r["base"] for r in first]


def test_training_that_does_not_help_fails_the_gate_with_its_reason(tmp_path: Path) -> None:
    # A learning rate too small to move the adapter: the tuned model answers as the base.
    summary = run(colour_job(tmp_path, maxSteps=2, learningRate="1e-9"), tmp_path / "work")
    assert (summary.outcome, summary.exitCode) == ("Succeeded", exit_codes.SUCCESS), summary.message
    exact = summary.evaluation["metrics"]["exactMatch"]
    assert exact["tuned"] == exact["base"]
    gate = summary.evaluation["gate"]
    assert gate["passed"] is False
    assert gate["failures"] == [
        f"exactMatch: tuned {exact['tuned']:.4g} is below base {exact['base']:.4g} + 0.05"
    ]
    assert "gate failed: exactMatch" in summary.message
    out = tmp_path / "out"
    assert (out / "adapter_model.safetensors").is_file()  # published all the same
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["evaluation"]["gate"]["failures"] == gate["failures"]
    assert "**Gate: failed**" in (out / "evaluation.md").read_text()


def test_bad_evaluation_data_is_refused_before_training_naming_the_row(tmp_path: Path) -> None:
    bad = write_jsonl(
        tmp_path / "eval.jsonl",
        [
            {"prompt": "What colour is snow?", "completion": "white"},
            {"prompt": "What colour is coal?", "completion": "black"},
            {"prompt": "What colour is grass?"},  # no reference
        ],
    )
    config = make_config(
        tmp_path, ROWS, evaluation={"dataset": {"uri": f"file://{bad}"}, "metrics": METRICS}
    )
    summary = run(config, tmp_path / "work")
    assert (summary.exitCode, summary.reason) == (exit_codes.INVALID_INPUT, "InvalidData")
    assert f"file://{bad}, row 3: no reference answer" in summary.message
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()  # nothing trained
    assert not (tmp_path / "work" / "metrics.jsonl").exists()


class SigtermWhen(logging.Handler):
    """Sends this process SIGTERM once a log record says ``text``, as a preemption would."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture
def sigterm_when_the_tuned_model_answers() -> Iterator[None]:
    logger = logging.getLogger("kubetune_trainer.evaluation.compare")
    handler = SigtermWhen("tuned model answering")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.usefixtures("sigterm_when_the_tuned_model_answers")
def test_a_failed_evaluation_never_hides_the_published_training(tmp_path: Path) -> None:
    handler = signal.getsignal(signal.SIGTERM)
    summary = run(colour_job(tmp_path, maxSteps=2), tmp_path / "work")
    assert (summary.outcome, summary.exitCode) == ("Succeeded", exit_codes.SUCCESS), summary.message
    error = summary.evaluation["error"]
    assert error.startswith("stopped by SIGTERM while the tuned model answered (8 of 12")
    assert f"evaluation failed: {error}" in summary.message
    out = tmp_path / "out"
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "manifest.json").read_text())["evaluation"] == {"error": error}
    assert not (out / "evaluation.md").exists()
    assert signal.getsignal(signal.SIGTERM) == handler  # the stage put the handler back


def test_the_reward_model_judges_both_models(tmp_path: Path) -> None:
    eval_rows = write_jsonl(tmp_path / "eval.jsonl", PROMPT_ROWS[:6])
    config = make_config(
        tmp_path,
        PROMPT_ROWS,
        method="grpo",
        grpo={"numGenerations": 2, "maxCompletionLength": 8},
        reward={"model": {"uri": "builtin://tiny-llama"}},
        evaluation={
            "dataset": {"uri": f"file://{eval_rows}"},
            "referenceColumn": "answer",
            "generation": {"maxNewTokens": 6, "batchSize": 4},
            "metrics": ["exactMatch", "rewardScore", "winRate"],
            "gate": [{"metric": "winRate", "min": "0"}],
        },
    )
    summary = run(config, tmp_path / "work")
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    records = read_records((tmp_path / "out" / "evaluation.jsonl").read_text().splitlines())
    assert [r["reference"] for r in records] == [row["answer"] for row in PROMPT_ROWS[:6]]
    for record in records:
        assert record["base"]["scores"]["winRate"] + record["tuned"]["scores"]["winRate"] == 1.0
    assert config.spec.reward is not None and config.spec.reward.model is not None
    judge = RewardJudge(config.spec.reward.model, config.spec.training, batch_size=2)
    for model in ("base", "tuned"):
        rescored = judge.scores(
            [r["prompt"] for r in records], [r[model]["answer"] for r in records]
        )
        assert [r[model]["scores"]["rewardScore"] for r in records] == pytest.approx(
            rescored, abs=1e-5
        )
    means = aggregate(records, ["exactMatch", "rewardScore", "winRate"])
    assert summary.evaluation["metrics"]["winRate"]["tuned"] == pytest.approx(
        means["winRate"].tuned
    )
    assert summary.evaluation["gate"]["passed"] is True


@pytest.mark.parametrize(
    "adapter",
    [
        {"type": "promptTuning", "lora": DELETE, "promptTuning": {"virtualTokens": 4}},
        {"type": "full", "lora": DELETE},
        {"type": "qlora", "quantization": {"allowCpu": True, "computeDtype": "float32"}},
        {"newTokens": ["<colour>"]},
    ],
    ids=["promptTuning", "full", "qlora", "lora-newTokens"],
)
def test_every_adapter_type_is_evaluated_from_its_published_files(
    tmp_path: Path, adapter: dict[str, Any]
) -> None:
    config = make_config(
        tmp_path,
        ROWS,
        adapter=adapter,
        dataset={"validationSplit": "0.1"},
        evaluation={"generation": {"maxNewTokens": 4}, "metrics": ["exactMatch", "tokenF1"]},
    )
    summary = run(config, tmp_path / "work")
    assert summary.exitCode == exit_codes.SUCCESS, summary.message
    assert "error" not in summary.evaluation, summary.evaluation
    assert summary.evaluation["prompts"] == 6
    records = read_records((tmp_path / "out" / "evaluation.jsonl").read_text().splitlines())
    assert all(isinstance(r[m]["answer"], str) for r in records for m in ("base", "tuned"))


def test_kubetune_eval_says_what_is_missing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    quickstart = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
    code = main(["eval", str(quickstart), "--adapter", str(tmp_path), "-o", str(tmp_path / "r")])
    assert code == exit_codes.INVALID_INPUT
    assert "no spec.evaluation" in capfd.readouterr().out
    evaluated = Path(__file__).resolve().parents[2] / "examples" / "evaluation.yaml"
    code = main(["eval", str(evaluated), "--adapter", str(tmp_path / "absent")])
    assert code == exit_codes.INVALID_INPUT
    assert "no such folder" in capfd.readouterr().out
