"""Every field constraint and cross-field rule: a refused case naming the field, and an
accepted counterpart (cases shared with the cluster tests in tests/cases/manifests.py).

The unit tier judges the cases with the Python twin of each rule; tests/cluster/test_crd.py
sends the same cases to an API server, which judges them with the CEL twin."""

from __future__ import annotations

import pytest

from kubetune_contract.api import InvalidManifest, parse_finetunejob
from kubetune_contract.api.spec import FineTuneJobSpec
from tests.cases.manifests import INVALID_CASES, VALID_SPEC_PATCHES, InvalidCase, valid_case
from tests.cases.rules import RuleSite, cases_of, refusals, rule_sites

NEAR_MISSES = [case for case in INVALID_CASES if case.accept is not None]


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.id)
def test_invalid_manifest_names_the_field(case: InvalidCase) -> None:
    with pytest.raises(InvalidManifest) as raised:
        parse_finetunejob(case.manifest())
    errors = {(e.path, e.message) for e in raised.value.errors}
    assert any(path == case.field and case.fragment in message for path, message in errors), errors


@pytest.mark.parametrize("case", NEAR_MISSES, ids=lambda c: c.id)
def test_near_miss_is_accepted(case: InvalidCase) -> None:
    near_miss = case.near_miss()
    assert near_miss is not None
    assert refusals(near_miss) == set()


@pytest.mark.parametrize("site", [s for s in rule_sites() if not s.transition], ids=str)
def test_every_rule_refuses_a_case_and_accepts_its_near_miss(site: RuleSite) -> None:
    """The table is complete: each rule (but update-only ones, tests/cluster) has a case
    it refuses, with that rule's own message at its field, and a near miss it accepts."""
    cases = cases_of(site)
    assert cases, f"no case in tests/cases/manifests.py is refused by {site}"
    assert any(case.accept is not None for case in cases), f"{site}: no near miss"
    if site.rule.cel is not None:
        assert any(case.server for case in cases), f"{site}: its CEL twin is never sent"


def test_rules_checked_only_in_python_say_why() -> None:
    """A rule without a CEL twin is refused by the server's schema instead (a list keyed
    by name), or is a regular expression CEL can't compile: nothing else may skip CEL."""
    python_only = {site.path for site in rule_sites() if site.rule.cel is None}
    assert python_only == {
        "spec.env",
        "spec.multitask.tasks",
        "spec.evaluation.metrics",
        "spec.adapter.partial.patterns",
        "spec.reward.functions[].formatRegex.pattern",
    }


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
