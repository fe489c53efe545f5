"""Checkov, a peer scanner platform teams run, over what kubetune installs and creates.

Targets: ``helm template`` of the chart for every value set of :data:`tests.chart.VALUE_SETS`
(the defaults, every option on in both RBAC modes, the minimal install), and the
children (ConfigMap, Job, Service) the operator renders for every example manifest, in a
team namespace next to the trainer NetworkPolicy the chart installs there. Every finding
is either fixed or listed in :data:`SKIPS` with its reason (docs/security.md repeats them);
a new finding, or a skip no target needs any more, fails the test.

    .venv/bin/python -m pytest tests/scan -s   # -s prints passed/failed/skipped per target
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.render.children import render_children
from kubetune.render.options import RenderOptions
from kubetune_contract.api import parse_finetunejob
from tests.chart import ROOT, VALUE_SETS, by_kind, render
from tests.checkov import Finding, scan

pytestmark = pytest.mark.scan

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
TEAM = "team-a"
#: The value sets that install NetworkPolicies (the others leave them off, the default).
WITH_NETWORK_POLICIES = ("everything-cluster-wide", "everything-namespaced")
CHILDREN = "example children"


@dataclass(frozen=True)
class Skip:
    """A reviewed exception: why the check does not apply, and where (empty: everywhere)."""

    reason: str
    targets: tuple[str, ...] = ()

    def covers(self, target: str) -> bool:
        return not self.targets or target in self.targets


SKIPS: dict[str, Skip] = {
    "CKV_K8S_11": Skip(
        "CPU limits: a throttled data loader or operator event loop only slows everything "
        "down; CPU is requested, never limited (memory is limited to its request)"
    ),
    "CKV_K8S_15": Skip(
        "imagePullPolicy Always: a registry round trip per pod start is a cost the platform "
        "chooses; images are pinned by tag or digest, so IfNotPresent runs the same image"
    ),
    "CKV_K8S_43": Skip(
        "image digests: the defaults name released tags; image.digest and trainer.image.digest "
        "pin digests (the everything-cluster-wide value set scans that and passes)"
    ),
    "CKV_K8S_38": Skip(
        "service-account token: the operator needs it to call the API server (trainer pods "
        "don't mount one)",
        targets=tuple(VALUE_SETS),
    ),
    "CKV2_K8S_6": Skip(
        "NetworkPolicy: optional (networkPolicy.enabled), since it needs an enforcing CNI; "
        "the value sets that enable it pass",
        targets=tuple(name for name in VALUE_SETS if name not in WITH_NETWORK_POLICIES),
    ),
}


def _write(path: Path, docs: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _children(example: Path) -> list[dict[str, Any]]:
    manifest = yaml.safe_load(example.read_text())
    manifest["metadata"]["namespace"] = TEAM
    children = render_children(parse_finetunejob(manifest), RenderOptions())
    return [{**c, "metadata": {**c["metadata"], "namespace": TEAM}} for c in children.all()]


def _trainer_network_policy(directory: Path) -> list[dict[str, Any]]:
    """The NetworkPolicy the chart puts into a team namespace, selecting trainer pods."""
    values = copy.deepcopy(VALUE_SETS["everything-namespaced"])
    values["watch"] = {"namespaces": [TEAM]}
    docs = render(values, directory)
    return [d for d in by_kind(docs, "NetworkPolicy") if d["metadata"]["namespace"] == TEAM]


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Finding]]:
    """Target -> checkov's verdicts. One checkov run per chart render (so one render's
    NetworkPolicy can't cover another's pods) and one over every example's children."""
    results: dict[str, list[Finding]] = {}
    for name, values in VALUE_SETS.items():
        directory = tmp_path_factory.mktemp(f"chart-{name}")
        _write(directory / "chart.yaml", render(values, directory))
        results[f"chart {name}"] = scan(directory)
    directory = tmp_path_factory.mktemp("children")
    for example in EXAMPLES:
        _write(directory / f"{example.stem}.yaml", _children(example))
    _write(directory / "networkpolicy.yaml", _trainer_network_policy(tmp_path_factory.mktemp("np")))
    for finding in scan(directory):
        target = (
            "trainer NetworkPolicy"
            if finding.file == "networkpolicy.yaml"
            else (f"{CHILDREN} {Path(finding.file).stem}")
        )
        results.setdefault(target, []).append(finding)
    _print_figures(results)
    return results


def _scope(target: str) -> str:
    """The name a Skip's ``targets`` use: the value set, or "example children"."""
    return target.removeprefix("chart ") if target.startswith("chart ") else CHILDREN


def _skipped(finding: Finding, target: str) -> bool:
    skip = SKIPS.get(finding.check)
    return skip is not None and skip.covers(_scope(target))


def _print_figures(results: dict[str, list[Finding]]) -> None:
    print("\ncheckov figures (passed / failed / skipped as reviewed) per target:")
    for target, found in results.items():
        passed = sum(f.passed for f in found)
        skipped = sum(not f.passed and _skipped(f, target) for f in found)
        failed = sum(not f.passed for f in found) - skipped
        print(f"  {target:<48} {passed:>4} / {failed:>2} / {skipped:>2}")


def test_every_target_was_scanned(findings: dict[str, list[Finding]]) -> None:
    expected = {f"chart {name}" for name in VALUE_SETS} | {
        f"{CHILDREN} {example.stem}" for example in EXAMPLES
    }
    assert expected <= set(findings)
    for target in expected:
        kinds = {f.resource.split(".", 1)[0] for f in findings[target]}
        assert ("Deployment" if target.startswith("chart") else "Job") in kinds, target


def test_no_finding_outside_the_reviewed_skips(findings: dict[str, list[Finding]]) -> None:
    new = [
        f"{target}: {f.check} {f.name} ({f.resource})"
        for target, found in findings.items()
        for f in found
        if not f.passed and not _skipped(f, target)
    ]
    assert not new, "fix these or review them into SKIPS:\n" + "\n".join(new)


def test_every_skip_is_still_needed(findings: dict[str, list[Finding]]) -> None:
    used = Counter(
        f.check
        for target, found in findings.items()
        for f in found
        if not f.passed and _skipped(f, target)
    )
    assert set(SKIPS) == set(used), f"skips no target needs: {set(SKIPS) - set(used)}"


def test_the_network_policies_cover_what_they_say(findings: dict[str, list[Finding]]) -> None:
    """Where the chart installs NetworkPolicies, checkov links every pod to one."""
    for name in WITH_NETWORK_POLICIES:
        verdicts = [f.passed for f in findings[f"chart {name}"] if f.check == "CKV2_K8S_6"]
        assert verdicts and all(verdicts), name
    children = [
        f.passed
        for target, found in findings.items()
        if target.startswith(CHILDREN)
        for f in found
        if f.check == "CKV2_K8S_6"
    ]
    assert children and all(children)


def test_the_security_doc_lists_every_skip() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    assert all(check in text for check in SKIPS), [c for c in SKIPS if c not in text]
