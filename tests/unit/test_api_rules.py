"""Every field constraint and cross-field rule: a refused case naming the field, and an
accepted counterpart (cases shared with the cluster tests in tests/cases/manifests.py)."""

from __future__ import annotations

import pytest

from kubetune_contract.api import InvalidManifest, parse_finetunejob
from kubetune_contract.api.spec import FineTuneJobSpec
from tests.cases.manifests import INVALID_CASES, VALID_SPEC_PATCHES, InvalidCase, valid_case


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.id)
def test_invalid_manifest_names_the_field(case: InvalidCase) -> None:
    with pytest.raises(InvalidManifest) as raised:
        parse_finetunejob(case.manifest())
    errors = {(e.path, e.message) for e in raised.value.errors}
    assert any(path == case.field and case.fragment in message for path, message in errors), errors


@pytest.mark.parametrize("case_id", sorted(VALID_SPEC_PATCHES))
def test_valid_counterpart_is_accepted(case_id: str) -> None:
    job = parse_finetunejob(valid_case(case_id))
    assert job.metadata.name == "demo"


def test_defaults_make_a_qlora_sft_job_from_four_fields() -> None:
    job = parse_finetunejob(valid_case("defaults-only"))
    spec = job.spec
    assert spec.adapter.type == "qlora"
    assert spec.resources.gpus == 1
    assert spec.training.learningRate == "2e-4"
    assert spec.checkpoints.intervalSteps == 100
    assert spec.suspend is False


def test_every_error_is_reported_not_only_the_first() -> None:
    manifest = INVALID_CASES[0].manifest()
    manifest["spec"]["training"] = {"batchSize": 0, "learningRate": "x"}
    manifest["spec"]["output"] = {"uri": "ftp://nope"}
    with pytest.raises(InvalidManifest) as raised:
        parse_finetunejob(manifest)
    paths = {e.path for e in raised.value.errors}
    assert {
        "spec.method",
        "spec.training.batchSize",
        "spec.training.learningRate",
        "spec.output.uri",
    } <= paths


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ([1, 2], "expected a mapping"),
        ({"apiVersion": "v1", "kind": "ConfigMap"}, "not a FineTuneJob"),
        ({"apiVersion": "kubetune.io/v1alpha1", "kind": "FineTuneJob"}, "required"),
    ],
)
def test_documents_that_are_not_finetunejobs(document: object, fragment: str) -> None:
    with pytest.raises(InvalidManifest, match=fragment):
        parse_finetunejob(document)


def test_every_rule_has_a_message_naming_a_real_field() -> None:
    from kubetune_contract.api import adapter, dataset, infrastructure, methods, training

    models = [FineTuneJobSpec]
    for module in (adapter, dataset, infrastructure, methods, training):
        models += [
            obj for obj in vars(module).values() if isinstance(obj, type) and hasattr(obj, "rules")
        ]
    for model in models:
        for rule in model.rules:
            head = rule.field.split(".")[0]
            assert head in model.model_fields, (model.__name__, rule.field)
            assert len(rule.message) > 15
