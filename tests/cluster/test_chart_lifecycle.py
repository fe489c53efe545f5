"""A FineTuneJob's whole life, run by the operator under the Helm chart's identity.

No container runs here, so the operator runs as a local process — with the exact
command line of the chart's Deployment and a kubeconfig holding a token of the chart's
ServiceAccount (``kubectl create token``; ``tests.chart.install_release``). Every API
call it makes is therefore authorized by the chart's RBAC alone: a missing rule shows up
as a Forbidden error in its log or a job that never finishes. Both RBAC modes are run
(ClusterRole for the whole cluster; a Role in the one watched namespace).

Along the way it checks what GitOps relies on: the Argo CD health check (evaluated in
Lua 5.1 on every status the operator wrote) moves from Progressing to Healthy, and the
FineTuneJob's spec, labels and user annotations stay exactly as applied — only status
and ``kubetune.io/`` bookkeeping change, so an Argo CD Application stays Synced.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devenv.cluster import ControlPlane
from devenv.process import Process, poll
from tests.argocd_health import evaluate
from tests.cases.manifests import valid_manifest
from tests.chart import install_release, start_operator

#: Field manager of the "GitOps tool" that applies the manifest (as Argo CD's
#: server-side apply does).
GITOPS_MANAGER = "argocd-controller"
BOOKKEEPING_PREFIX = "kubetune.io/"


@dataclass
class Installed:
    """A chart release and the operator process running as its ServiceAccount."""

    release: str
    namespace: str
    watched: str
    operator: Process
    log: Path


@pytest.fixture
def watched(control_plane: ControlPlane) -> Iterator[str]:
    """The namespace the FineTuneJobs go to (distinct from the release namespace)."""
    name = f"t-ftj-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(params=["cluster-wide", "namespaced"])
def installed(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    namespace: str,
    watched: str,
    tmp_path: Path,
) -> Iterator[Installed]:
    """The chart installed and the operator started with its identity."""
    args = ["--set", f"watch.namespaces={{{watched}}}"] if request.param == "namespaced" else []
    with install_release(control_plane, namespace, tmp_path, *args) as (
        release,
        deployment,
        kubeconfig,
    ):
        operator, log = start_operator(deployment, kubeconfig, tmp_path)
        try:
            yield Installed(release, namespace, watched, operator, log)
        finally:
            operator.stop()


def _get(control_plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return control_plane.request(
        "GET", f"/apis/kubetune.io/v1alpha1/namespaces/{namespace}/finetunejobs/{name}"
    )


def _ours_only(fields: dict[str, Any]) -> bool:
    """True when a managedFields entry touches only status and kubetune.io/ bookkeeping."""
    for key, value in fields.items():
        if key in ("f:status", "."):
            continue
        if key != "f:metadata":
            return False
        for meta_key, meta_value in value.items():
            items = [k for k in meta_value if k != "."]  # "." is the map/list itself
            if meta_key == "f:annotations":
                if not all(k.startswith(f"f:{BOOKKEEPING_PREFIX}") for k in items):
                    return False
            elif meta_key != "f:finalizers" or not all(
                k.startswith(f'v:"{BOOKKEEPING_PREFIX}') for k in items
            ):
                return False
    return True


def test_lifecycle_under_the_chart_identity_keeps_gitops_clean(
    installed: Installed,
    control_plane: ControlPlane,
) -> None:
    name = "gitops-demo"
    manifest = valid_manifest(name)
    manifest["metadata"].update(
        {
            "namespace": installed.watched,
            "labels": {"team": "search", "app.kubernetes.io/instance": "ranker"},
            "annotations": {"example.com/ticket": "ML-1234", "argocd.argoproj.io/sync-wave": "2"},
        }
    )
    manifest["spec"]["resources"] = {"gpus": 1}
    applied = control_plane.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={GITOPS_MANAGER}",
        "-o",
        "json",
        "-f",
        "-",
        input=json.dumps(manifest),
    ).stdout
    before = json.loads(applied)

    seen: list[tuple[str | None, str]] = []

    def finished() -> dict[str, Any] | None:
        obj = _get(control_plane, installed.watched, name)
        state = obj.get("status", {}).get("state")
        health = evaluate(obj)[0]
        if not seen or seen[-1] != (state, health):
            seen.append((state, health))
        return obj if state in ("Succeeded", "Failed", "Invalid") else None

    try:
        after = poll(finished, what=f"{name} finishes", timeout=120, interval=0.2)
    except TimeoutError as e:
        raise AssertionError(
            f"{e}\nstates seen: {seen}\noperator log:\n{installed.log.read_text()[-4000:]}"
        ) from e
    log = installed.log.read_text()
    assert after["status"]["state"] == "Succeeded", (seen, log[-4000:])
    # RBAC denials read 'User "system:serviceaccount:..." cannot <verb> resource ...'
    # (a 403 for a namespace being deleted by another test is not about permissions).
    denied = [
        line for line in log.splitlines() if "system:serviceaccount:" in line and " cannot " in line
    ]
    assert not denied, "\n".join(denied[:5])

    # Argo CD: Progressing while it ran, Healthy at the end (the real operator's status).
    healths = [h for _, h in seen]
    assert healths[-1] == "Healthy"
    assert set(healths[:-1]) <= {"Progressing"} and "Degraded" not in healths

    # GitOps: what the user applied is untouched.
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    user = {
        k: v
        for k, v in after["metadata"].get("annotations", {}).items()
        if not k.startswith(BOOKKEEPING_PREFIX)
    }
    assert user == before["metadata"]["annotations"]
    for entry in after["metadata"]["managedFields"]:
        if entry["manager"] != GITOPS_MANAGER:
            assert _ours_only(entry.get("fieldsV1", {})), entry
    diff = control_plane.kubectl(
        "diff",
        "--server-side",
        f"--field-manager={GITOPS_MANAGER}",
        "-f",
        "-",
        input=json.dumps(manifest),
        check=False,
    )
    assert diff.returncode == 0, f"a re-sync would change the object:\n{diff.stdout}"

    # The operator's own work under the same identity: children and events exist.
    job = control_plane.request("GET", f"/apis/batch/v1/namespaces/{installed.watched}/jobs/{name}")
    assert job["metadata"]["ownerReferences"][0]["uid"] == after["metadata"]["uid"]
    events = control_plane.request(
        "GET",
        f"/api/v1/namespaces/{installed.watched}/events?fieldSelector=involvedObject.name={name}",
    )["items"]
    assert events, "the operator posted no events"
    assert installed.operator.alive(), log[-4000:]


def _submit(control_plane: ControlPlane, namespace: str, name: str) -> None:
    manifest = valid_manifest(name)
    manifest["metadata"]["namespace"] = namespace
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))


def _state(control_plane: ControlPlane, namespace: str, name: str) -> str | None:
    state = _get(control_plane, namespace, name).get("status", {}).get("state")
    return str(state) if state else None


def test_two_replicas_with_peering_act_once_and_fail_over(
    control_plane: ControlPlane, namespace: str, watched: str, tmp_path: Path
) -> None:
    """replicaCount: 2 — kopf peering through the chart's ClusterKopfPeering keeps one
    replica active; when it stops, the standby takes over."""
    with install_release(control_plane, namespace, tmp_path, "--set", "replicaCount=2") as (
        _,
        deployment,
        kubeconfig,
    ):
        assert deployment["spec"]["replicas"] == 2
        first, first_log = start_operator(deployment, kubeconfig, tmp_path, "replica-a")
        second, second_log = start_operator(deployment, kubeconfig, tmp_path, "replica-b")
        try:
            logs = (first_log, second_log)
            _submit(control_plane, watched, "one")
            poll(
                lambda: _state(control_plane, watched, "one") == "Succeeded",
                what="the first job succeeds",
                timeout=90,
            )
            created = [p.read_text().count("created Job one") for p in logs]
            assert sorted(created) == [0, 1], created  # one replica acted, the other waited
            active, standby = (first, second) if created[0] else (second, first)
            standby_log = second_log if created[0] else first_log

            active.stop()
            _submit(control_plane, watched, "two")
            poll(
                lambda: _state(control_plane, watched, "two") == "Succeeded",
                what="the standby takes over and runs the second job",
                timeout=120,
            )
            assert standby.alive()
            assert "created Job two" in standby_log.read_text()
        finally:
            first.stop()
            second.stop()
