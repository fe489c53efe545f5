"""The Helm chart against the real control plane (RBAC on, Pod Security admission on).

* every value set renders to manifests the API server accepts (server-side dry run);
* ``helm install`` works and the operator pod starts (KWOK runs it);
* the installed ServiceAccount may do what the operator needs and nothing excessive
  (asked of the API server with ``kubectl auth can-i``);
* the operator pod and every example's trainer pod are admitted in a namespace that
  enforces the ``restricted`` Pod Security Standard.

The operator's lifecycle under the chart's identity is in test_chart_lifecycle.py.
"""

from __future__ import annotations

import copy
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.cluster import ControlPlane
from kubetune.render.children import render_children
from kubetune.render.options import RenderOptions
from kubetune_contract.api import parse_finetunejob
from tests.chart import (
    CHART,
    ROOT,
    SHARED_CRDS,
    VALUE_SETS,
    by_kind,
    crd_documents,
    delete_policy,
    helm,
    render,
)
from tests.cluster import external

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _apply(kubectl: Kubectl, docs: list[dict[str, Any]], *extra: str) -> str:
    """Server-side apply ``docs``. Sent as a JSON List: PyYAML writes a string such as
    ``2e-4`` unquoted, which Go's YAML 1.2 parser would read back as a number."""
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    return kubectl(
        "apply", "--server-side", "--field-manager=chart-test", *extra, "-f", "-", input=text
    ).stdout


@pytest.fixture(scope="module")
def chart_crds(control_plane: ControlPlane, kubectl: Kubectl) -> None:
    """The chart's own CRDs plus the Prometheus Operator's monitor CRDs, established."""
    docs = crd_documents() + external.monitoring_crds()
    _apply(kubectl, docs, "--force-conflicts")
    names = [f"crd/{d['metadata']['name']}" for d in docs]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)


@pytest.fixture
def namespaces(control_plane: ControlPlane, kubectl: Kubectl) -> Iterator[Callable[[], str]]:
    """Make extra namespaces on demand (watched namespaces of the namespaced mode)."""
    made: list[str] = []

    def make() -> str:
        name = f"t-chart-{secrets.token_hex(3)}"
        kubectl("create", "namespace", name)
        made.append(name)
        return name

    yield make
    for name in made:
        kubectl("delete", "namespace", name, "--wait=false")


def _unique_release() -> str:
    return f"kt{secrets.token_hex(3)}"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_value_set_applies_with_server_side_dry_run(
    value_set: str,
    chart_crds: None,
    kubectl: Kubectl,
    namespace: str,
    namespaces: Callable[[], str],
    tmp_path: Path,
) -> None:
    values = copy.deepcopy(VALUE_SETS[value_set])
    if values.get("watch", {}).get("namespaces"):
        values["watch"]["namespaces"] = [namespaces(), namespaces()]
    trainer_policy = values.get("networkPolicy", {}).get("trainer", {})
    if trainer_policy.get("namespaces"):
        trainer_policy["namespaces"] = [namespaces()]
    docs = render(values, tmp_path, namespace=namespace, release=_unique_release())
    out = _apply(kubectl, docs, "--dry-run=server")
    assert out.count("serverside-applied (server dry run)") == len(docs), out


def test_helm_install_starts_the_operator_and_prints_notes(
    chart_crds: None,
    control_plane: ControlPlane,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    release = _unique_release()
    env = control_plane.env()
    out = helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        *SHARED_CRDS,
        "--wait",
        "--timeout",
        "120s",
        env=env,
        timeout=180,
    ).stdout
    try:
        assert f"rollout status deployment/{release}-kubetune" in out
        assert "every namespace" in out
        deployment = json.loads(
            kubectl(
                "get", "deployment", f"{release}-kubetune", "-n", namespace, "-o", "json"
            ).stdout
        )
        assert deployment["status"]["readyReplicas"] == 1
        status = json.loads(helm("status", release, "-n", namespace, "-o", "json", env=env).stdout)
        assert status["info"]["status"] == "deployed"
    finally:
        helm("uninstall", release, "--namespace", namespace, "--wait", env=env, timeout=180)
        delete_policy(control_plane, f"{release}-kubetune")


def _can_i(kubectl: Kubectl, who: str, verb: str, resource: str, namespace: str) -> bool:
    proc = kubectl("auth", "can-i", verb, resource, "--as", who, "-n", namespace, check=False)
    return proc.stdout.strip() == "yes"


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_installed_identity_may_do_what_the_operator_needs_and_no_more(
    mode: str,
    chart_crds: None,
    control_plane: ControlPlane,
    kubectl: Kubectl,
    namespace: str,
    namespaces: Callable[[], str],
) -> None:
    release = _unique_release()
    env = control_plane.env()
    watched = namespaces()
    args = ["--set", f"watch.namespaces={{{watched}}}"] if mode == "namespaced" else []
    helm("install", release, str(CHART), "--namespace", namespace, *SHARED_CRDS, *args, env=env)
    try:
        who = f"system:serviceaccount:{namespace}:{release}-kubetune"
        needed = [
            ("watch", "finetunejobs.kubetune.io"),
            ("patch", "finetunejobs.kubetune.io"),
            ("patch", "finetunejobs.kubetune.io/status"),
            ("delete", "finetunejobs.kubetune.io"),
            ("create", "jobs.batch"),
            ("patch", "jobs.batch"),
            ("delete", "jobs.batch"),
            ("create", "configmaps"),
            ("patch", "configmaps"),
            ("create", "services"),
            ("watch", "pods"),
            ("create", "events"),
        ]
        for verb, resource in needed:
            assert _can_i(kubectl, who, verb, resource, watched), (verb, resource)
        excessive = [
            ("get", "secrets"),
            ("list", "secrets"),
            ("create", "secrets"),
            ("create", "pods"),
            ("delete", "pods"),
            ("create", "pods/exec"),
            ("update", "finetunejobs.kubetune.io"),
            ("create", "rolebindings.rbac.authorization.k8s.io"),
            ("escalate", "roles"),
            ("impersonate", "serviceaccounts"),
            ("create", "serviceaccounts/token"),
            ("patch", "nodes"),
            ("delete", "namespaces"),
            ("*", "*"),
        ]
        for verb, resource in excessive:
            assert not _can_i(kubectl, who, verb, resource, watched), (verb, resource)
        if mode == "namespaced":  # nothing outside the watched namespace
            other = namespaces()
            assert not _can_i(kubectl, who, "watch", "finetunejobs.kubetune.io", other)
            assert not _can_i(kubectl, who, "create", "jobs.batch", other)
        listing = kubectl("auth", "can-i", "--list", "--as", who, "-n", watched).stdout
        assert "secrets" not in listing and "[*]" not in listing, listing
    finally:
        helm("uninstall", release, "--namespace", namespace, env=env)
        delete_policy(control_plane, f"{release}-kubetune")


# -- Pod Security: "restricted" ------------------------------------------------------------


@pytest.fixture
def restricted_namespace(namespace: str, kubectl: Kubectl) -> str:
    kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    return namespace


def _pod(name: str, namespace: str, template: dict[str, Any]) -> dict[str, Any]:
    meta = template.get("metadata", {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": meta.get("labels", {}),
            "annotations": meta.get("annotations", {}),
        },
        "spec": template["spec"],
    }


def _create(
    kubectl: Kubectl, doc: dict[str, Any], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return kubectl("create", "-f", "-", input=json.dumps(doc), check=check)


def test_restricted_namespace_refuses_a_pod_that_is_not_restricted(
    restricted_namespace: str,
    kubectl: Kubectl,
) -> None:
    """The control: the namespace really enforces, so the admissions below mean something."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "loose"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    proc = _create(
        kubectl,
        {**pod, "metadata": {"name": "loose", "namespace": restricted_namespace}},
        check=False,
    )
    assert proc.returncode != 0 and "violates PodSecurity" in proc.stderr


@pytest.mark.parametrize("value_set", ["defaults", "everything-cluster-wide"])
def test_operator_pod_is_admitted_under_restricted(
    value_set: str,
    restricted_namespace: str,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    docs = render(VALUE_SETS[value_set], tmp_path, namespace=restricted_namespace)
    (account,) = by_kind(docs, "ServiceAccount")
    _create(kubectl, account)
    (deployment,) = by_kind(docs, "Deployment")
    proc = _create(kubectl, _pod("operator", restricted_namespace, deployment["spec"]["template"]))
    assert "created" in proc.stdout and "Warning" not in proc.stderr, proc.stderr


EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def example_priority_classes(control_plane: ControlPlane, kubectl: Kubectl) -> None:
    """The PriorityClasses the examples name (a platform team creates its own)."""
    names = {
        (yaml.safe_load(p.read_text())["spec"].get("scheduling") or {}).get("priorityClassName")
        for p in EXAMPLES
    } - {None}
    for name in sorted(str(n) for n in names):
        doc = {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": 100,
        }
        _apply(kubectl, [doc])


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_trainer_pods_are_admitted_under_restricted(
    example: Path,
    restricted_namespace: str,
    kubectl: Kubectl,
    example_priority_classes: None,
) -> None:
    """Every example's trainer pod, rendered by the operator's own render functions."""
    manifest = yaml.safe_load(example.read_text())
    manifest["metadata"]["namespace"] = restricted_namespace
    children = render_children(parse_finetunejob(manifest), RenderOptions())
    template = children.batch_job["spec"]["template"]
    proc = _create(kubectl, _pod(manifest["metadata"]["name"], restricted_namespace, template))
    assert "created" in proc.stdout and "Warning" not in proc.stderr, proc.stderr
    job = {
        **children.batch_job,
        "metadata": {**children.batch_job["metadata"], "namespace": restricted_namespace},
    }
    # The Job itself: Pod Security warns on workload objects whose pods it would refuse.
    proc = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(job))
    assert "Warning" not in proc.stderr, proc.stderr
