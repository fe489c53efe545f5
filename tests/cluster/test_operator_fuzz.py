"""Arbitrary documents at the real API server, then the operator: every one the server
accepts is reconciled to ``Accepted`` True or False with a reason, and the operator
never crashes.

The documents are the model property tests' spec patches (:mod:`tests.cases.strategies`):
valid manifests with top-level fields replaced by any JSON. The API server refuses most
at once (schema, CEL); the ones it stores are what the operator must survive: a spec the
schema admits but the models refuse, or one that starts a job (KWOK runs its pods).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devenv.cluster import ControlPlane
from devenv.dev import install_crd, start_operator
from devenv.process import poll
from kubetune_contract.api import GROUP, PLURAL, VERSION
from tests.cases.strategies import patched, spec_patches

pytestmark = pytest.mark.cluster

DOCUMENTS = 40


def _accepted(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    found: Any = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    conditions = (found.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Accepted"), {})


@given(st.lists(spec_patches, min_size=DOCUMENTS, max_size=DOCUMENTS))
@settings(
    max_examples=1,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_every_stored_document_is_accepted_or_refused_with_a_reason(
    control_plane: ControlPlane,
    kube: Any,
    namespace: str,
    tmp_path: Path,
    patches: list[dict[str, Any]],
) -> None:
    install_crd(control_plane)
    operator, _ = start_operator(
        control_plane, tmp_path / "operator.log", f"--namespace={namespace}", "--standalone"
    )
    custom = client.CustomObjectsApi(kube)
    stored: list[str] = []
    try:
        for index, patch in enumerate(patches):
            name = f"doc-{index}"
            try:
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, patched(patch, name)
                )
            except ApiException as error:
                assert error.status in (400, 422), error  # refused, naming what is wrong
                continue
            stored.append(name)
        for name in stored:
            verdict = poll(
                lambda name=name: _accepted(custom, namespace, name) or None,
                what=f"{name} has an Accepted condition",
                timeout=60,
            )
            assert verdict["status"] in ("True", "False"), verdict
            assert verdict["reason"], verdict
            if verdict["status"] == "False":
                assert verdict["message"], verdict
        assert operator.alive(), "the operator crashed"
        log = operator.log_file.read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]
    finally:
        operator.stop()
    print(f"{len(stored)} of {DOCUMENTS} documents stored by the API server, all reconciled")
