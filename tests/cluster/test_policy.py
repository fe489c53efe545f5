"""The platform policy on the real API server, as a team member meets it.

The chart is installed for two team namespaces with a policy a platform would write
(Secrets listed for team-a, at most 8 GPUs and 2 nodes per job), its operator runs
locally under the chart's ServiceAccount, and ``alice`` may create FineTuneJobs in team-a
only (a Role, used through ``kubectl --as alice``: impersonation, so RBAC and admission
see her, not the admin). Each row of docs/security.md's "author can / cannot" table is
one test here. A second release with ``policy.admission=false`` stands for a cluster
without the admission policy: there the operator refuses on its own, and a policy
change reaches it without a restart.
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
from tests.cases.manifests import merge, valid_manifest
from tests.chart import (
    CHART,
    SHARED_CRDS,
    helm,
    install_release,
    start_operator,
    values_file,
)

USER = "alice"
FOREIGN_IMAGE = "registry.example/someone/trainer:1"

#: The policy values of the team release (the chart's defaults for everything else).
POLICY = {
    "secrets": {"TEAM_A": ["hf-token", "s3-credentials"]},
    "maxGpus": 8,
    "maxNodes": 2,
}


@dataclass
class Platform:
    """A release serving team-a and team-b, its operator, and alice's namespace."""

    control_plane: ControlPlane
    release: str
    policy: str
    """The FineTuneJobPolicy's name (the release's full name), also its admission policy's."""
    release_namespace: str
    team_a: str
    team_b: str
    operator: Process
    log: Path

    def apply(self, manifest: dict[str, Any], *, as_user: bool = True) -> Any:
        """``kubectl apply`` (as alice by default); the completed process."""
        impersonate = ["--as", USER] if as_user else []
        return self.control_plane.kubectl(
            "apply", *impersonate, "-f", "-", input=json.dumps(manifest), check=False
        )

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        proc = self.control_plane.kubectl(
            "get", kind, name, "-n", namespace, "-o", "json", check=False
        )
        return json.loads(proc.stdout) if proc.returncode == 0 else None


def _job(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """An allowed job of team-a: the operator's image, listed Secrets, one GPU."""
    manifest = merge(
        valid_manifest(name),
        {
            "spec": {
                "model": {"credentialsSecret": "hf-token"},
                "output": {"credentialsSecret": "s3-credentials"},
                "resources": {"gpus": 1},
                **spec,
            }
        },
    )
    manifest["metadata"]["namespace"] = namespace
    return manifest


def _namespace(control_plane: ControlPlane, prefix: str) -> str:
    name = f"t-{prefix}-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name)
    return name


def _grant_finetunejobs(control_plane: ControlPlane, namespace: str) -> None:
    """alice may manage FineTuneJobs in ``namespace``, nothing else anywhere."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "finetunejob-author", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["kubetune.io"],
                "resources": ["finetunejobs"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "finetunejob-author", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
    }
    for doc in (role, binding):
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(doc))


def _values(team_a: str, team_b: str, **extra: Any) -> dict[str, Any]:
    policy = json.loads(json.dumps(POLICY).replace("TEAM_A", team_a))
    return {"watch": {"namespaces": [team_a, team_b]}, "policy": {**policy, **extra}}


@pytest.fixture(scope="module")
def platform(
    control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("policy")
    release_namespace = _namespace(control_plane, "platform")
    team_a, team_b = _namespace(control_plane, "team-a"), _namespace(control_plane, "team-b")
    _grant_finetunejobs(control_plane, team_a)
    values = values_file(_values(team_a, team_b), workdir)
    with install_release(control_plane, release_namespace, workdir, "--values", str(values)) as (
        release,
        deployment,
        kubeconfig,
    ):
        operator, log = start_operator(deployment, kubeconfig, workdir)
        policy = deployment["metadata"]["name"]
        found = Platform(
            control_plane, release, policy, release_namespace, team_a, team_b, operator, log
        )
        try:
            # The API server picks up a new policy, binding and parameters asynchronously
            # (over a minute once on a loaded machine). The probe is a server-side dry-run
            # create: an apply accepted before the policy took effect would have created
            # the probe, and every apply after it would be "unchanged", never admitted
            # again (CI once waited out the 240 s that way).
            probe = json.dumps(_job("probe", team_a, image=FOREIGN_IMAGE))
            poll(
                lambda: (
                    control_plane.kubectl(
                        "create",
                        "--dry-run=server",
                        "--as",
                        USER,
                        "-f",
                        "-",
                        input=probe,
                        check=False,
                    ).returncode
                    != 0
                ),
                what="the admission policy refuses a foreign image",
                timeout=240,
                interval=1.0,
            )
            yield found
        finally:
            operator.stop()
    for name in (team_a, team_b, release_namespace):
        control_plane.kubectl("delete", "namespace", name, "--wait=false")


def test_allowed_job_is_accepted_and_the_operator_runs_it(platform: Platform) -> None:
    proc = platform.apply(_job("allowed", platform.team_a))
    assert proc.returncode == 0, proc.stderr
    poll(
        lambda: platform.get("job.batch", platform.team_a, "allowed") is not None,
        what="the operator creates the Job",
        timeout=60,
    )

    def accepted() -> dict[str, Any] | None:
        ftj = platform.get("finetunejob", platform.team_a, "allowed") or {}
        conditions = ftj.get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Accepted"), None)

    condition = poll(accepted, what="the status is written", timeout=60)
    assert condition["status"] == "True", condition


#: (id, spec patch, the field the refusal names, a word of its reason). The names of
#: docs/security.md's table rows.
REFUSED = [
    ("foreign-image", {"image": FOREIGN_IMAGE}, "spec.image", "not an allowed trainer image"),
    (
        "routing-env",
        {"env": [{"name": "HF_ENDPOINT", "value": "https://hub.attacker.example"}]},
        "spec.env",
        "HF_ENDPOINT",
    ),
    (
        "unlisted-secret",
        {"model": {"credentialsSecret": "platform-db-password"}},
        "spec.model.credentialsSecret",
        "platform-db-password",
    ),
    (
        "secret-in-env",
        {
            "env": [
                {
                    "name": "WANDB_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "other-team", "key": "token"}},
                }
            ]
        },
        "spec.env[].valueFrom.secretKeyRef.name",
        "other-team",
    ),
    ("too-many-gpus", {"resources": {"gpus": 8, "nodes": 2}}, "spec.resources.gpus", "maxGpus 8"),
    (
        "too-many-nodes",
        {"resources": {"gpus": 1, "nodes": 3}},
        "spec.resources.nodes",
        "maxNodes 2",
    ),
    (
        "file-scheme",
        {"dataset": {"train": {"uri": "file:///var/run/secrets/kubetune/0/HF_TOKEN"}}},
        "spec.dataset.train.uri",
        "file://",
    ),
]


@pytest.mark.parametrize(("case", "patch", "field", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_admission_refuses_naming_the_field_and_the_policy(
    platform: Platform, case: str, patch: dict[str, Any], field: str, reason: str
) -> None:
    proc = platform.apply(_job(case, platform.team_a, **patch))
    assert proc.returncode != 0
    assert f"ValidatingAdmissionPolicy '{platform.policy}'" in proc.stderr, proc.stderr
    assert f"{field}:" in proc.stderr and reason in proc.stderr, proc.stderr
    assert f"FineTuneJobPolicy {platform.policy}" in proc.stderr, proc.stderr
    assert platform.get("finetunejob", platform.team_a, case) is None


@pytest.mark.parametrize("name", ["HOME", "PET_MASTER_ADDR", "KUBETUNE_CONFIG"])
def test_operator_owned_env_is_refused_by_the_crd(platform: Platform, name: str) -> None:
    proc = platform.apply(_job("override", platform.team_a, env=[{"name": name, "value": "/x"}]))
    assert proc.returncode != 0
    assert "spec.env[0].name" in proc.stderr and "reserved for the operator" in proc.stderr


def test_duplicate_env_names_are_refused(platform: Platform) -> None:
    env = [{"name": "MODE", "value": "a"}, {"name": "MODE", "value": "b"}]
    proc = platform.apply(_job("duplicate", platform.team_a, env=env))
    assert proc.returncode != 0 and "spec.env[1]" in proc.stderr and "Duplicate" in proc.stderr


def test_a_job_in_another_teams_namespace_is_forbidden(platform: Platform) -> None:
    proc = platform.apply(_job("elsewhere", platform.team_b))
    assert proc.returncode != 0
    assert f'User "{USER}" cannot' in proc.stderr and platform.team_b in proc.stderr
    assert platform.get("finetunejob", platform.team_b, "elsewhere") is None


def _upgrade(
    control_plane: ControlPlane, release: str, namespace: str, values: dict[str, Any], tmp: Path
) -> None:
    """``helm upgrade`` the release to ``values``: how a platform changes its policy."""
    path = values_file(values, tmp)
    env = control_plane.env()
    helm(
        "upgrade",
        release,
        str(CHART),
        "-n",
        namespace,
        *SHARED_CRDS,
        "--values",
        str(path),
        env=env,
    )


def test_admission_policy_change_applies_at_once(platform: Platform, tmp_path: Path) -> None:
    """helm upgrade with the image allowed: the same apply is accepted, no restart."""
    manifest = _job("upgraded", platform.team_a, image=FOREIGN_IMAGE)
    assert platform.apply(manifest).returncode != 0
    teams = (platform.team_a, platform.team_b)
    upgrade = (platform.control_plane, platform.release, platform.release_namespace)
    _upgrade(*upgrade, _values(*teams, images=[FOREIGN_IMAGE]), tmp_path)
    try:
        poll(
            lambda: platform.apply(manifest).returncode == 0,
            what="the apply is accepted",
            timeout=60,
            interval=1.0,
        )
    finally:
        _upgrade(*upgrade, _values(*teams), tmp_path)
    assert platform.operator.alive()


# -- without the admission policy: the operator's own check ----------------------------


@pytest.fixture
def unguarded(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[tuple[str, str, str, str, Process, Path]]:
    """A release with policy.admission=false for one namespace: (release, its policy's
    name, its namespace, the team namespace, operator, log)."""
    release_namespace = _namespace(control_plane, "platform")
    team = _namespace(control_plane, "team-c")
    values = {"watch": {"namespaces": [team]}, "policy": {"admission": False}}
    with install_release(
        control_plane, release_namespace, tmp_path, "--values", str(values_file(values, tmp_path))
    ) as (release, deployment, kubeconfig):
        operator, log = start_operator(deployment, kubeconfig, tmp_path)
        try:
            yield release, deployment["metadata"]["name"], release_namespace, team, operator, log
        finally:
            operator.stop()
    for name in (team, release_namespace):
        control_plane.kubectl("delete", "namespace", name, "--wait=false")


def test_operator_refuses_without_admission_and_follows_a_policy_change(
    control_plane: ControlPlane,
    unguarded: tuple[str, str, str, str, Process, Path],
    tmp_path: Path,
) -> None:
    release, policy, release_namespace, team, operator, log = unguarded
    manifest = valid_manifest("foreign")
    manifest["metadata"]["namespace"] = team
    manifest["spec"]["image"] = FOREIGN_IMAGE
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))  # no admission here

    def accepted() -> dict[str, Any] | None:
        ftj = control_plane.request(
            "GET", f"/apis/kubetune.io/v1alpha1/namespaces/{team}/finetunejobs/foreign"
        )
        conditions = {c["type"]: c for c in ftj.get("status", {}).get("conditions", [])}
        return conditions.get("Accepted")

    refusal = poll(accepted, what="the operator judges the job", timeout=60)
    assert refusal["status"] == "False" and refusal["reason"] == "PolicyViolation", refusal
    assert (
        "spec.image:" in refusal["message"] and f"FineTuneJobPolicy {policy}" in refusal["message"]
    )
    jobs = control_plane.kubectl("get", "jobs", "-n", team, "-o", "name").stdout
    assert jobs.strip() == "", jobs
    pods = control_plane.kubectl("get", "pods", "-n", team, "-o", "name").stdout
    assert pods.strip() == "", pods

    values = {
        "watch": {"namespaces": [team]},
        "policy": {"admission": False, "images": [FOREIGN_IMAGE]},
    }
    _upgrade(control_plane, release, release_namespace, values, tmp_path)
    poll(
        lambda: (a := accepted()) is not None and a["status"] == "True",
        what="the operator accepts the job once the policy allows it",
        timeout=60,
    )
    poll(
        lambda: (
            control_plane.kubectl("get", "job", "foreign", "-n", team, check=False).returncode == 0
        ),
        what="the operator creates the Job",
        timeout=60,
    )
    assert operator.alive(), log.read_text()[-3000:]
    assert "starting:" in log.read_text() and log.read_text().count("starting:") == 1
