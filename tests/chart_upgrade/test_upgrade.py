"""``helm upgrade`` from the previous release (:mod:`devenv.release`) with jobs in every
state: queued, running, suspended, succeeded, failed, and one written in the previous
API (``reward.modelUri``, now ``reward.model``).

The previous chart and its operator image (built from that release's own tree) run the
jobs first; then the release is upgraded to this chart, taking over the CRDs the old
chart installed from ``crds/`` (``--take-ownership``, as docs/helm.md says). Afterwards:
the CRD is this one, running jobs keep running and finish, suspended ones resume, finished
ones keep their status, the old-API job is marked ``Accepted=False`` with a reason that
says what to change, no Job is created twice (the API server's audit log), and the new
operator never crashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devenv import release
from devenv.cluster import TEST_PHASE_ANNOTATION, ControlPlane
from devenv.dev import s3_secret
from devenv.images import OPERATOR
from devenv.node import REAL_NODE_SELECTOR, REAL_NODE_TOLERATION, RealNode
from devenv.s3 import S3Server
from kubetune.render.job import TEMPLATE_HASH_ANNOTATION
from kubetune_contract.api.schema_version import SCHEMA_VERSION, SCHEMA_VERSION_ANNOTATION
from tests.cases.manifests import merge
from tests.chaos.chaos import (
    FAILURE_SUMMARY,
    SUCCESS_SUMMARY,
    Cluster,
    creates_per_job,
    wait_until,
)
from tests.chaos.conftest import kwok_manifest
from tests.e2e.conftest import RELEASE, RELEASE_NAMESPACE, helm_release
from tests.plugins.cluster import make_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.node]

#: Values both charts know (everything else: each chart's defaults).
VALUES: dict[str, Any] = {
    "nodeSelector": REAL_NODE_SELECTOR,
    "tolerations": [REAL_NODE_TOLERATION],
    "progressIntervalSeconds": 1,
    "progressWriteIntervalSeconds": 1,
    # KWOK's trainer pods stay Running until the test ends them.
    "trainer": {"podAnnotations": {TEST_PHASE_ANNOTATION: "Running"}},
}
#: A label no node has: a job that asks for it stays queued.
NOWHERE = {"scheduling": {"nodeSelector": {"kubetune.io/test-no-such-node": "true"}}}
#: A GRPO job in the previous API: the reward model was ``reward.modelUri``.
LEGACY = merge(
    kwok_manifest("legacy"),
    {
        "spec": {
            "method": "grpo",
            "reward": {"modelUri": "s3://models/reward"},
            "dataset": {"train": {"format": "promptCompletion"}},
            **NOWHERE,
        }
    },
)
#: The state each job holds before the upgrade.
BEFORE = {
    "queued": "Queued",
    "running": "Running",
    "suspended": "Suspended",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "legacy": "Queued",
}


def _jobs(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """Each Job's uid and the hash of the pod template it was rendered with."""
    jobs: Any = cluster.batch.list_namespaced_job(cluster.namespace)
    return {
        j.metadata.name: (j.metadata.uid, j.metadata.annotations[TEMPLATE_HASH_ANNOTATION])
        for j in jobs.items
    }


def _reach(cluster: Cluster, name: str, state: str, timeout: float = 120) -> dict[str, Any]:
    return wait_until(
        lambda: (
            (ftj := cluster.ftj(name)) and (ftj.get("status") or {}).get("state") == state and ftj
        ),
        f"{name} is {state}",
        timeout,
    )


def test_an_upgrade_from_the_previous_release_keeps_every_job(
    upgrade_plane: ControlPlane,
    upgrade_node: RealNode,
    upgrade_kube: Any,
    s3: S3Server,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    cp = upgrade_plane
    seconds = helm_release(
        cp,
        "install",
        VALUES,
        tmp_path,
        f"--set=image.tag={release.image_tag()}",
        chart=release.chart(),
    )
    print(f"previous release {release.PREVIOUS[:7]} installed in {seconds:.1f}s")
    namespace = make_namespace(cp, "upgrade-", request, s3_secret(s3))
    cluster = Cluster(upgrade_kube, namespace)

    cluster.create(merge(kwok_manifest("queued"), {"spec": NOWHERE}))
    for name in ("running", "succeeded", "failed"):
        cluster.create(kwok_manifest(name))
    cluster.create(merge(kwok_manifest("suspended"), {"spec": {"suspend": True}}))
    cluster.create(LEGACY)
    cluster.end_kwok_trainer(cluster.running_pod("succeeded"), "Succeeded", 0, SUCCESS_SUMMARY)
    cluster.end_kwok_trainer(cluster.running_pod("failed"), "Failed", 3, FAILURE_SUMMARY)
    before = {name: _reach(cluster, name, state)["status"] for name, state in BEFORE.items()}
    jobs_before = _jobs(cluster)

    seconds = helm_release(cp, "upgrade", VALUES, tmp_path, "--take-ownership")
    print(f"upgraded to this chart in {seconds:.1f}s")

    crd = cp.kubectl("get", "crd", "finetunejobs.kubetune.io", "-o", "json").stdout
    assert f'"{SCHEMA_VERSION_ANNOTATION}": "{SCHEMA_VERSION}"' in crd, "the CRD was upgraded"
    apps = client.AppsV1Api(upgrade_kube)
    deployment: Any = apps.read_namespaced_deployment(RELEASE, RELEASE_NAMESPACE)
    assert deployment.spec.template.spec.containers[0].image == OPERATOR.ref

    # The new operator judges the old-API job by the new API: refused, saying what to do.
    accepted = wait_until(
        lambda: (c := cluster.condition("legacy", "Accepted")).get("status") == "False" and c,
        "the new operator marks the old-API job",
        120,
    )
    assert accepted["reason"] == "InvalidSpec"
    assert "reward.model" in accepted["message"], accepted

    # Finished jobs keep their status; the others carry on.
    for name in ("succeeded", "failed"):
        after = (cluster.ftj(name) or {})["status"]
        assert after["state"] == before[name]["state"]
        assert after["completionTime"] == before[name]["completionTime"]
    assert (cluster.ftj("queued") or {})["status"]["state"] == "Queued"
    running = _reach(cluster, "running", "Running")["status"]
    assert running["startTime"] == before["running"]["startTime"]
    cluster.end_kwok_trainer(cluster.running_pod("running"), "Succeeded", 0, SUCCESS_SUMMARY)
    _reach(cluster, "running", "Succeeded")
    cluster.patch_spec("suspended", {"suspend": False})
    cluster.end_kwok_trainer(cluster.running_pod("suspended"), "Succeeded", 0, SUCCESS_SUMMARY)
    _reach(cluster, "suspended", "Succeeded")

    jobs_after = _jobs(cluster)
    kept = {name for name, job in jobs_before.items() if jobs_after.get(name, job)[0] == job[0]}
    print(f"Jobs before {sorted(jobs_before)}; kept across the upgrade {sorted(kept)}")
    creates = {
        name: count
        for (ns, name), count in creates_per_job(cp.audit_log).items()
        if ns == namespace
    }
    # The one deliberate replacement: a suspended Job whose pod template this release
    # renders differently is re-created on resume (controller/children.py), once.
    template_changed = jobs_after["suspended"][1] != jobs_before["suspended"][1]
    replaced = {"suspended"} if template_changed else set()
    expected = {name: 2 if name in replaced else 1 for name in jobs_before}
    assert creates == expected, f"Jobs created: {creates}, expected {expected}"
    assert kept == set(jobs_before) - replaced

    pods: Any = client.CoreV1Api(upgrade_kube).list_namespaced_pod(
        RELEASE_NAMESPACE, label_selector="app.kubernetes.io/name=kubetune"
    )
    restarts = {p.metadata.name: p.status.container_statuses[0].restart_count for p in pods.items}
    assert not any(restarts.values()), f"the operator restarted: {restarts}"
