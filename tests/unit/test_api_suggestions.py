"""An unknown field is answered with the nearest valid path, wherever a manifest is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.cli import main
from kubetune.controller.runtime import Snapshot
from kubetune_contract.api import InvalidManifest, parse_finetunejob
from tests.cases.manifests import merge, valid_manifest

NOWHERE = "unknown field (check the spelling; `kubectl explain finetunejob.spec` lists fields)"


def problems(spec_patch: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidManifest) as raised:
        parse_finetunejob(merge(valid_manifest(), {"spec": spec_patch}))
    return {e.path: e.message for e in raised.value.errors}


@pytest.mark.parametrize(
    ("patch", "path", "message"),
    [
        pytest.param(
            {"adapter": {"alpha": 64}},
            "spec.adapter.alpha",
            "unknown field; did you mean spec.adapter.lora.alpha?",
            id="nested-field-one-level-too-high",
        ),
        pytest.param(
            {"rank": 8},
            "spec.rank",
            "unknown field; did you mean spec.adapter.lora.rank?",
            id="nested-field-two-levels-too-high",
        ),
        pytest.param(
            {
                "method": "rloo",
                "reward": {
                    "functions": [
                        {"type": "exactMatch", "exactMatch": {"referenceColumn": "answer"}},
                        {"type": "lengthPenalty", "targetLength": 200},
                    ]
                },
            },
            "spec.reward.functions[1].targetLength",
            "unknown field; did you mean spec.reward.functions[1].lengthPenalty.targetLength?",
            id="in-a-list-item-keeps-its-index",
        ),
        pytest.param(
            {"numLabels": 3},
            "spec.numLabels",
            "unknown field; did you mean spec.multitask.tasks[].numLabels?",
            id="inside-a-list-the-user-did-not-write",
        ),
        pytest.param(
            {"training": {"learningrate": "1e-4"}},
            "spec.training.learningrate",
            "unknown field; did you mean spec.training.learningRate?",
            id="misspelled-case",
        ),
        pytest.param(
            {"adapter": {"lora": {"rnak": 8}}},
            "spec.adapter.lora.rnak",
            "unknown field; did you mean spec.adapter.lora.rank?",
            id="misspelled-letters",
        ),
        pytest.param(
            {"trainig": {"epochs": 2}},
            "spec.trainig",
            "unknown field; did you mean spec.training or spec.tracking?",
            id="misspelled-with-two-near-names",
        ),
        pytest.param(
            {"training": {"evalSteps": 20}},
            "spec.training.evalSteps",
            "unknown field; did you mean spec.training.evalIntervalSteps?",
            id="renamed-field-with-a-word-added",
        ),
        pytest.param(
            {"reward": {"modelUri": "s3://m/reward"}},
            "spec.reward.modelUri",
            "unknown field; did you mean spec.reward.model?",
            id="renamed-field-with-a-word-dropped",
        ),
        pytest.param(
            {"beta": "0.2"},
            "spec.beta",
            "unknown field; did you mean spec.dpo.beta, spec.kto.beta, spec.orpo.beta, "
            "spec.grpo.beta or spec.rloo.beta?",
            id="equally-near-paths-all-named",
        ),
        pytest.param(
            {"adapter": {"flavour": "spicy"}},
            "spec.adapter.flavour",
            NOWHERE,
            id="exists-nowhere",
        ),
        pytest.param({"lr": "1e-4"}, "spec.lr", NOWHERE, id="too-short-to-guess"),
    ],
)
def test_unknown_field_names_the_nearest_valid_path(
    patch: dict[str, Any], path: str, message: str
) -> None:
    assert problems(patch)[path] == message


def test_a_top_level_field_is_found_under_spec() -> None:
    manifest = valid_manifest()
    manifest["method"] = manifest["spec"].pop("method")
    with pytest.raises(InvalidManifest) as raised:
        parse_finetunejob(manifest)
    found = {e.path: e.message for e in raised.value.errors}
    assert found["method"] == "unknown field; did you mean spec.method?"


def test_kubetune_validate_prints_the_suggestion(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(merge(valid_manifest(), {"spec": {"adapter": {"alpha": 8}}})))
    assert main(["validate", str(path)]) == 1
    line = "spec.adapter.alpha: unknown field; did you mean spec.adapter.lora.alpha?"
    assert f"{path}: {line}" in capsys.readouterr().err


def test_the_operator_refuses_with_the_suggestion() -> None:
    """The problems become the message of the Accepted=False condition."""
    body = merge(valid_manifest(), {"metadata": {"namespace": "ml"}, "spec": {"rank": 8}})
    snapshot = Snapshot.from_body(body)
    assert snapshot.finetunejob is None
    assert snapshot.problems == ("spec.rank: unknown field; did you mean spec.adapter.lora.rank?",)
