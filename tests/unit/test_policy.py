"""The FineTuneJobPolicy's Python twins, the field walk they share with the admission CEL,
and the operator's view of the policy. The CEL itself runs on the real API server in
tests/cluster/test_policy.py, with the same messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubetune.controller.policy import PolicyWatch
from kubetune.render.children import render_children
from kubetune.render.options import RenderOptions
from kubetune_contract.api import FineTuneJob, environment, parse_finetunejob
from kubetune_contract.api.policy import FineTuneJobPolicy
from kubetune_contract.api.policy_rules import image_allowed, violations
from kubetune_contract.api.references import (
    FieldPath,
    Step,
    cel_values,
    secret_fields,
    uri_fields,
    values,
)
from tests.cases.manifests import merge, valid_manifest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def policy(**spec: Any) -> FineTuneJobPolicy:
    return FineTuneJobPolicy.model_validate(
        {
            "apiVersion": "kubetune.io/v1alpha1",
            "kind": "FineTuneJobPolicy",
            "metadata": {"name": "platform"},
            "spec": spec,
        }
    )


def job(namespace: str = "team-a", **spec: Any) -> FineTuneJob:
    manifest = merge(valid_manifest(), {"spec": spec})
    manifest["metadata"]["namespace"] = namespace
    return parse_finetunejob(manifest)


def problems(j: FineTuneJob, p: FineTuneJobPolicy) -> dict[str, str]:
    return {e.path: e.message for e in violations(j, p)}


def test_an_ordinary_job_passes_the_default_policy() -> None:
    assert violations(job(model={"credentialsSecret": "hf"}), policy()) == []


@pytest.mark.parametrize(
    ("image", "allowed", "ok"),
    [
        ("registry.example/ml/trainer:1", ["registry.example/ml/"], True),
        ("registry.example/ml-evil/trainer:1", ["registry.example/ml"], False),
        ("registry.example/trainer:2", ["registry.example/trainer:"], True),
        ("registry.example/trainer@sha256:" + "a" * 64, ["registry.example/trainer@"], True),
        ("registry.example/trainer:1", ["registry.example/trainer:1"], True),
        ("registry.example/trainer:10", ["registry.example/trainer:1"], False),
    ],
)
def test_images_are_exact_or_prefixes_ending_in_a_separator(
    image: str, allowed: list[str], ok: bool
) -> None:
    assert image_allowed(image, allowed) is ok


def test_a_foreign_image_is_refused_naming_field_and_policy() -> None:
    found = problems(job(image="evil/trainer:1"), policy(images=["ghcr.io/kubetune/trainer:0.1.0"]))
    assert "not an allowed trainer image" in found["spec.image"]
    assert "FineTuneJobPolicy platform" in found["spec.image"]
    assert violations(job(), policy()) == [], "no spec.image: the operator's image"


def test_routing_env_is_refused_unless_the_platform_allows_it() -> None:
    env = [
        {"name": "HF_ENDPOINT", "value": "https://hub.attacker.example"},
        {"name": "AWS_ENDPOINT_URL", "value": "https://s3.attacker.example"},
        {"name": "https_proxy", "value": "http://proxy.attacker.example"},
        {"name": "NCCL_DEBUG", "value": "INFO"},
        {"name": "MODE", "value": "fast"},
    ]
    found = problems(job(env=env), policy())
    assert set(found) == {"spec.env"}
    assert "HF_ENDPOINT, AWS_ENDPOINT_URL, https_proxy route" in found["spec.env"]
    assert violations(job(env=env), policy(env=["HF_ENDPOINT", "AWS_*", "https_proxy"])) == []


def test_every_name_the_render_sets_is_operator_owned_and_routing() -> None:
    """The render's own environment is exactly what the CRD keeps from authors, but for
    the thread count, a default an author may override."""
    children = render_children(job(resources={"gpus": 8, "nodes": 2}), RenderOptions())
    (container,) = children.batch_job["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in container["env"] if e["name"] != environment.OMP_NUM_THREADS]
    assert len(names) == len(container["env"]) - 1
    assert names and all(environment.operator_owned(n) for n in names), names
    assert all(environment.routing(n) or n.startswith("KUBETUNE_") for n in names)


@pytest.mark.parametrize(
    ("namespace", "allowed", "ok"),
    [
        ("team-a", {"team-a": ["hf"]}, True),
        ("team-b", {"team-a": ["hf"]}, False),
        ("team-b", {"team-a": ["hf"], "*": ["hf"]}, True),
        ("team-b", {"team-b": ["*"]}, True),
        ("team-a", {"*": []}, False),
    ],
)
def test_secrets_are_allowed_by_name_per_namespace(
    namespace: str, allowed: dict[str, list[str]], ok: bool
) -> None:
    found = problems(job(namespace, model={"credentialsSecret": "hf"}), policy(secrets=allowed))
    assert ("spec.model.credentialsSecret" not in found) is ok, found


def test_every_secret_reference_is_checked_env_included() -> None:
    spec = {
        "output": {"credentialsSecret": "s3"},
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}],
    }
    found = problems(job(**spec), policy(secrets={"team-a": ["hf"]}))
    assert set(found) == {
        "spec.output.credentialsSecret",
        "spec.env[0].valueFrom.secretKeyRef.name",
    }
    assert (
        "Secret db is not allowed in namespace team-a"
        in found["spec.env[0].valueFrom.secretKeyRef.name"]
    )
    assert "allowed there: hf" in found["spec.output.credentialsSecret"]


def test_service_accounts_gpus_nodes_deadline_and_schemes() -> None:
    bounded = policy(
        serviceAccounts={"team-a": ["trainer"]},
        maxGpus=8,
        maxNodes=2,
        maxActiveDeadlineSeconds=3600,
    )
    found = problems(
        job(
            serviceAccountName="admin",
            resources={"gpus": 8, "nodes": 3},
            model={"uri": "file:///etc"},
        ),
        bounded,
    )
    assert "ServiceAccount admin" in found["spec.serviceAccountName"]
    assert "8 GPUs x 3 nodes = 24 GPUs" in found["spec.resources.gpus"]
    assert "maxNodes 2" in found["spec.resources.nodes"]
    assert "at most 3600 (got none)" in found["spec.activeDeadlineSeconds"]
    assert "scheme file://" in found["spec.model.uri"]
    fine = job(
        serviceAccountName="trainer", resources={"gpus": 4, "nodes": 2}, activeDeadlineSeconds=60
    )
    assert violations(fine, bounded) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_walk_finds_every_uri_and_secret_of_every_example(example: Path) -> None:
    """Against a blind search of the spec for ``scheme://`` strings and Secret names: a
    URI field the walk missed would escape the storage-scheme rule."""
    spec = parse_finetunejob(yaml.safe_load(example.read_text())).spec
    found_uris = {v for path in uri_fields() for _, v in values(spec, path)}
    found_secrets = {v for path in secret_fields() for _, v in values(spec, path)}
    strings: list[tuple[str, str]] = []

    def visit(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                visit(v, k)
        elif isinstance(node, list):
            for v in node:
                visit(v, key)
        elif isinstance(node, str):
            strings.append((key, node))

    visit(spec.model_dump(mode="json", exclude_none=True))
    uris = {v for _, v in strings if "://" in v}
    uris -= {spec.tracking.uri} if spec.tracking and spec.tracking.uri else set()
    assert found_uris == uris
    assert found_secrets == {v for k, v in strings if k == "credentialsSecret"}


def test_only_the_output_is_a_uri_the_trainer_writes_to() -> None:
    written = {str(path) for path in uri_fields() if path.storage and path.storage.writes}
    assert written == {"spec.output.uri"}


def test_cel_values_refuses_paths_it_cannot_flatten() -> None:
    nested = FieldPath((Step("a", False, True), Step("b", False, True)))
    with pytest.raises(ValueError, match="more than one list"):
        cel_values(nested)


def test_the_operator_without_policy_checks_nothing_and_fails_closed_with_one() -> None:
    bad = job(image="evil/trainer:1")
    assert PolicyWatch().problems(bad) == ()
    watch = PolicyWatch("platform")
    assert "does not exist" in watch.problems(job())[0]
    watch.observe(policy().model_dump(mode="json"))
    assert watch.problems(job()) == ()
    assert "spec.image:" in watch.problems(bad)[0]
    watch.forget()
    assert "does not exist" in watch.problems(job())[0]
