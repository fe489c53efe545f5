"""The chart's CRDs over a release's life, against a real API server and the pinned helm:
installed and upgraded with the release (templates/crds/), kept on uninstall unless
``crds.keep=false``, and left alone with ``crds.enabled=false``.

These tests create, downgrade and delete the cluster-wide FineTuneJob CRD, which every
other cluster test relies on: they get a control plane of their own (no nodes; the
operator's pod may stay unscheduled, nothing here needs it to run).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.cluster import ControlPlane
from kubetune_contract.api.crd import chart_template, crd, dump_yaml
from kubetune_contract.api.schema_version import SCHEMA_VERSION, SCHEMA_VERSION_ANNOTATION
from tests.cases.manifests import valid_manifest
from tests.chart import CHART, ROOT, helm

pytestmark = pytest.mark.cluster

OURS = ("finetunejobs.kubetune.io", "finetunejobpolicies.kubetune.io")
NAMESPACE = "kubetune-system"
KEEP = "helm.sh/resource-policy"
#: The optional field the "previous" chart's CRD lacks.
ADDED_FIELD = "ttlSecondsAfterFinished"


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    with ControlPlane(nodes=(), binaries=control_plane.bins, log=lambda _: None) as own:
        own.kubectl("create", "namespace", NAMESPACE)
        yield own


@pytest.fixture
def cp(cluster: ControlPlane) -> Iterator[ControlPlane]:
    """The own control plane without our CRDs, before and after each test."""
    _delete_crds(cluster)
    yield cluster
    _delete_crds(cluster)


def _delete_crds(cp: ControlPlane) -> None:
    cp.kubectl("delete", "crd", *OURS, "--ignore-not-found", "--wait", "--timeout=60s")


def _helm(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return helm(*args, "--namespace", NAMESPACE, env=cp.env(), timeout=180)


def _crd(cp: ControlPlane, name: str = OURS[0]) -> dict[str, Any] | None:
    proc = cp.kubectl("get", "crd", name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _spec_fields(crd_doc: dict[str, Any]) -> set[str]:
    schema = crd_doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return set(schema["properties"]["spec"]["properties"])


def _previous_chart(tmp_path: Path) -> Path:
    """A copy of the chart whose FineTuneJob CRD is an older one: schema version 0 (no
    stamp yet) and no ``spec.ttlSecondsAfterFinished``."""
    older = crd()
    del older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ][ADDED_FIELD]
    older["metadata"]["annotations"][SCHEMA_VERSION_ANNOTATION] = "0"
    chart = tmp_path / "kubetune"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "crds" / "finetunejob.yaml").write_text(chart_template(dump_yaml(older)))
    return chart


def _crds_directory_chart(tmp_path: Path) -> Path:
    """A copy of the chart laid out as before this one: our CRDs in crds/ (installed once
    by Helm, owned by no release) instead of templates/crds/."""
    chart = tmp_path / "kubetune-crds-dir"
    shutil.copytree(CHART, chart)
    shutil.rmtree(chart / "templates" / "crds")
    for plain in (ROOT / "crds").glob("*.yaml"):
        shutil.copy(plain, chart / "crds" / plain.name)
    return chart


def test_install_creates_the_crds_stamped_and_kept(cp: ControlPlane) -> None:
    _helm(cp, "install", "kubetune", str(CHART))
    try:
        for name in OURS:
            installed = _crd(cp, name)
            assert installed is not None, name
            annotations = installed["metadata"]["annotations"]
            assert annotations[KEEP] == "keep"
            assert annotations[SCHEMA_VERSION_ANNOTATION] == str(SCHEMA_VERSION)
            assert annotations["meta.helm.sh/release-name"] == "kubetune"
        # The policy hook came after its CRD.
        cp.kubectl("get", "finetunejobpolicy", "kubetune")
    finally:
        _helm(cp, "uninstall", "kubetune")


def test_upgrade_upgrades_the_crd_schema(cp: ControlPlane, tmp_path: Path) -> None:
    _helm(cp, "install", "kubetune", str(_previous_chart(tmp_path)))
    try:
        before = _crd(cp)
        assert before is not None
        assert ADDED_FIELD not in _spec_fields(before)
        assert before["metadata"]["annotations"][SCHEMA_VERSION_ANNOTATION] == "0"
        _helm(cp, "upgrade", "kubetune", str(CHART))
        after = _crd(cp)
        assert after is not None
        assert ADDED_FIELD in _spec_fields(after)
        assert after["metadata"]["annotations"][SCHEMA_VERSION_ANNOTATION] == str(SCHEMA_VERSION)
    finally:
        _helm(cp, "uninstall", "kubetune")


def test_upgrade_from_a_crds_directory_chart_takes_the_crds_over(
    cp: ControlPlane, tmp_path: Path
) -> None:
    _helm(cp, "install", "kubetune", str(_crds_directory_chart(tmp_path)))
    try:
        refused = helm(
            "upgrade",
            "kubetune",
            str(CHART),
            "--namespace",
            NAMESPACE,
            env=cp.env(),
            check=False,
        )
        assert refused.returncode != 0 and "invalid ownership metadata" in refused.stderr
        _helm(cp, "upgrade", "kubetune", str(CHART), "--take-ownership")
        installed = _crd(cp)
        assert installed is not None
        assert installed["metadata"]["annotations"]["meta.helm.sh/release-name"] == "kubetune"
        assert installed["metadata"]["annotations"][KEEP] == "keep"
    finally:
        _helm(cp, "uninstall", "kubetune")


def test_uninstall_keeps_the_crds_and_the_finetunejobs(cp: ControlPlane) -> None:
    _helm(cp, "install", "kubetune", str(CHART))
    job = valid_manifest("kept")
    job["metadata"]["namespace"] = "default"
    try:
        cp.kubectl("wait", "--for=condition=Established", f"crd/{OURS[0]}")
        cp.kubectl("create", "-f", "-", input=json.dumps(job))
    finally:
        _helm(cp, "uninstall", "kubetune")
    for name in OURS:
        assert _crd(cp, name) is not None, name
    cp.kubectl("get", "finetunejob", "kept", "-n", "default")
    # Installed again, the release takes the kept CRDs back (docs/helm.md#uninstall).
    _helm(cp, "install", "kubetune", str(CHART), "--take-ownership")
    _helm(cp, "uninstall", "kubetune")


def test_keep_false_deletes_the_crds_on_uninstall(cp: ControlPlane) -> None:
    _helm(cp, "install", "kubetune", str(CHART), "--set", "crds.keep=false")
    installed = _crd(cp)
    assert installed is not None and KEEP not in installed["metadata"]["annotations"]
    _helm(cp, "uninstall", "kubetune", "--wait")
    cp.kubectl("wait", "--for=delete", *[f"crd/{n}" for n in OURS], "--timeout=60s", check=False)
    assert [name for name in OURS if _crd(cp, name) is not None] == []


def test_enabled_false_installs_no_crds_and_leaves_applied_ones_alone(cp: ControlPlane) -> None:
    _helm(cp, "install", "bare", str(CHART), "--set", "crds.enabled=false,policy.enabled=false")
    try:
        assert [name for name in OURS if _crd(cp, name) is not None] == []
    finally:
        _helm(cp, "uninstall", "bare")
    # CRDs managed elsewhere (kubectl, GitOps): the release neither owns nor needs them.
    cp.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    _helm(cp, "install", "gitops", str(CHART), "--set", "crds.enabled=false")
    try:
        manifest = _helm(cp, "get", "manifest", "gitops").stdout
        assert "kind: CustomResourceDefinition" not in manifest
        installed = _crd(cp)
        assert installed is not None
        assert "meta.helm.sh/release-name" not in installed["metadata"]["annotations"]
    finally:
        _helm(cp, "uninstall", "gitops")
    assert _crd(cp) is not None
