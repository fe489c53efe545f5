"""The generated CRD on a real API server: it installs, examples apply, bad input is refused.

Every invalid case of :mod:`tests.cases.manifests` that the server can judge is sent to
the API server; its refusal must name the field (the same expectation the unit tests
hold the Python models to) and say the message of every rule whose Python twin refuses
it, and its near miss must be accepted: so each CEL twin draws the same line as its
Python twin, and schema, defaults and CEL rules are exercised for real.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devenv.cluster import ControlPlane
from devenv.process import poll
from kubetune_contract.api.status import Progress
from tests.cases.manifests import INVALID_CASES, VALID_SPEC_PATCHES, InvalidCase, valid_case
from tests.cases.rules import rule_messages

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CRD_NAME = "finetunejobs.kubetune.io"
GROUP, VERSION, PLURAL = "kubetune.io", "v1alpha1", "finetunejobs"
SERVER_CASES = [c for c in INVALID_CASES if c.server]
NEAR_MISSES = [c for c in INVALID_CASES if c.accept is not None]
#: The API server words OpenAPI schema failures its own way; CEL messages are ours.
SERVER_WORDING = {
    "pattern": "should match",
    "unknown": "unknown field",
    "required": "required",
    "unique": "duplicate value",
}


@pytest.fixture(scope="module")
def crd(control_plane: ControlPlane) -> Iterator[dict[str, Any]]:
    """crds/ applied server-side; yields the CRD once Established and served."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    control_plane.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    # Discovery and the published OpenAPI lag the Established condition a little.
    poll(
        lambda: control_plane.kubectl("get", "ftj", "-A", check=False).returncode == 0,
        what="`kubectl get ftj` is served",
        timeout=60,
    )
    got = control_plane.request(
        "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
    )
    yield got


@pytest.fixture
def ftj(kube: Any, crd: dict[str, Any]) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_crd_is_established_with_names(crd: dict[str, Any]) -> None:
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ftj"]


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 10, EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_applies_dry_run_then_for_real(
    example: Path, kubectl: Any, crd: dict[str, Any], namespace: str
) -> None:
    dry = kubectl("apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", example)
    assert "serverside-applied (server dry run)" in dry.stdout
    assert kubectl("get", "ftj", "-n", namespace, "-o", "name").stdout == ""
    kubectl("create", "-n", namespace, "-f", str(example))
    for doc in _documents(example):
        kind, name = doc["kind"], doc["metadata"]["name"]
        stored = json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)
        if kind == "FineTuneJob":
            # The server filled in the schema defaults.
            assert stored["spec"]["suspend"] is False
            assert stored["spec"]["method"] == doc["spec"]["method"]


@pytest.mark.parametrize("case_id", sorted(VALID_SPEC_PATCHES))
def test_valid_cases_are_accepted(
    case_id: str, ftj: client.CustomObjectsApi, namespace: str
) -> None:
    body = valid_case(case_id, name="valid")
    ftj.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body, dry_run="All")


def test_enough_invalid_cases_reach_the_server() -> None:
    assert len(SERVER_CASES) >= 30


def _refusal(ftj: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as err:
        # Strict, as kubectl does by default: unknown fields are errors, not pruned.
        ftj.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, field_validation="Strict"
        )
    # 400: strict decoding (unknown field); 422: schema or CEL validation.
    assert err.value.status in (400, 422), err.value.body
    status = json.loads(str(err.value.body))
    return str(status["message"])


@pytest.mark.parametrize("case", SERVER_CASES, ids=lambda c: c.id)
def test_invalid_manifest_is_refused_naming_the_field(
    case: InvalidCase, ftj: client.CustomObjectsApi, namespace: str
) -> None:
    message = _refusal(ftj, namespace, case.manifest())
    assert case.field in message, message
    fragment = SERVER_WORDING.get(case.fragment, case.fragment)
    assert fragment.lower() in message.lower(), message
    for rule_message in rule_messages(case.manifest()):
        assert rule_message in message, message


@pytest.mark.parametrize("case", NEAR_MISSES, ids=lambda c: c.id)
def test_near_miss_is_accepted(
    case: InvalidCase, ftj: client.CustomObjectsApi, namespace: str
) -> None:
    body = case.near_miss(name="near")
    assert body is not None
    ftj.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, dry_run="All", field_validation="Strict"
    )


def test_kubectl_explain_shows_descriptions(kubectl: Any, crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    adapter = schema["properties"]["spec"]["properties"]["adapter"]
    first_words = " ".join(adapter["description"].split()[:3])

    def explained() -> str | None:
        out = kubectl("explain", "finetunejob.spec.adapter", check=False)
        return out.stdout if out.returncode == 0 else None

    text = poll(explained, what="kubectl explain finetunejob.spec.adapter works", timeout=60)
    assert "FIELD: adapter" in text
    assert first_words in " ".join(text.split())
    for field in adapter["properties"]:
        assert f"  {field}\t" in text or f"  {field} " in text, field
    type_desc = adapter["properties"]["type"]["description"].split()[0]
    assert type_desc in text


def test_kubectl_get_ftj_shows_printer_columns(
    kubectl: Any, ftj: client.CustomObjectsApi, namespace: str
) -> None:
    ftj.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, valid_case("merge-lora"))
    evaluation = {
        "type": "EvaluationPassed",
        "status": "Unknown",
        "reason": "Pending",
        "lastTransitionTime": "2026-11-25T12:00:00Z",
    }
    status = {
        "status": {
            "state": "Running",
            # As the operator writes it: the display strings derived from the numbers.
            "progress": Progress(percent=40, loss=1.2543, etaSeconds=725).to_wire(),
            "conditions": [evaluation],
        }
    }
    ftj.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "demo", status)
    lines = kubectl("get", "ftj", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STATE",
        "METHOD",
        "MODEL",
        "PROGRESS",
        "LOSS",
        "ETA",
        "EVALUATION",
        "AGE",
    ]
    # The Evaluation column filters the conditions by type (a JSONPath filter).
    assert lines[1].split()[:8] == [
        "demo",
        "Running",
        "sft",
        "hf://org/model",
        "40%",
        "1.25",
        "12m",
        "Pending",
    ]


def _patch(ftj: client.CustomObjectsApi, namespace: str, spec: dict[str, Any]) -> Any:
    return ftj.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "demo", {"spec": spec}
    )


def test_immutable_field_changes_only_while_suspended(
    ftj: client.CustomObjectsApi, namespace: str
) -> None:
    ftj.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, valid_case("merge-lora"))
    with pytest.raises(ApiException) as err:
        _patch(ftj, namespace, {"model": {"uri": "hf://org/other"}})
    assert err.value.status == 422
    message = json.loads(str(err.value.body))["message"]
    assert "spec.model" in message and "suspend" in message, message

    _patch(ftj, namespace, {"suspend": True})
    changed = _patch(ftj, namespace, {"model": {"uri": "hf://org/other"}})
    assert changed["spec"]["model"]["uri"] == "hf://org/other"
    resumed = _patch(ftj, namespace, {"suspend": False})
    assert resumed["spec"]["suspend"] is False
    assert resumed["spec"]["model"]["uri"] == "hf://org/other"


def test_mutable_fields_change_while_running(ftj: client.CustomObjectsApi, namespace: str) -> None:
    ftj.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, valid_case("merge-lora"))
    changed = _patch(ftj, namespace, {"ttlSecondsAfterFinished": 600})
    assert changed["spec"]["ttlSecondsAfterFinished"] == 600


def test_kubectl_refuses_an_invalid_file_with_the_field(
    kubectl: Any, crd: dict[str, Any], namespace: str, tmp_path: Path
) -> None:
    case = next(c for c in SERVER_CASES if c.id == "unknown-method")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(case.manifest()))
    with pytest.raises(subprocess.CalledProcessError) as err:
        kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    assert "spec.method" in err.value.stderr
