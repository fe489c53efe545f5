"""The seeded chaos run (:mod:`tests.chaos.chaos`) at the size ``make test`` affords.

``make chaos`` runs the same test bigger (``KUBETUNE_CHAOS_KWOK_JOBS=47``: 50 lifecycles
with the three real-node trainer jobs, which train ``KUBETUNE_CHAOS_REAL_STEPS=6000``
steps so that they still train when the busier operator gets to them).
``KUBETUNE_CHAOS_SEED`` replays a run; without it the seed is random and printed.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from typing import Any

import pytest

from devenv.cluster import ControlPlane
from devenv.dev import BUCKET
from devenv.node import RealNode
from devenv.process import Process
from devenv.s3 import S3Server
from tests.cases.jobs import INTERRUPTIBLE_STEPS
from tests.chaos.chaos import Cluster, Plan, Run
from tests.chaos.conftest import kwok_manifest, output_uri, real_manifest, s3_keys
from tests.secrets_scan import hits, manifest_texts, namespace_texts

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


def _plan() -> Plan:
    seed = int(os.environ.get("KUBETUNE_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    return Plan(
        seed=seed,
        kwok_jobs=int(os.environ.get("KUBETUNE_CHAOS_KWOK_JOBS", "12")),
        restarts_each=int(os.environ.get("KUBETUNE_CHAOS_RESTARTS", "2")),
        real_steps=int(os.environ.get("KUBETUNE_CHAOS_REAL_STEPS", INTERRUPTIBLE_STEPS)),
    )


def test_every_job_ends_as_without_faults_while_the_operator_and_control_plane_die(
    chaos_plane: ControlPlane,
    chaos_node: RealNode,
    chaos_kube: Any,
    chaos_namespace: str,
    operator_factory: Callable[[], Process],
    s3: S3Server,
    quickstart_data: str,
) -> None:
    plan = _plan()
    run = Run(
        plan,
        chaos_plane,
        Cluster(chaos_kube, chaos_namespace),
        operator_factory,
        kwok_manifest=kwok_manifest,
        real_manifest=functools.partial(real_manifest, chaos_namespace),
        real_output=lambda name: s3_keys(s3, output_uri(chaos_namespace, name)),
    )
    figures = run.run(chaos_plane.audit_log)
    print(figures.report())
    assert figures.kills >= 1 and sum(figures.restarts.values()) == 2 * plan.restarts_each
    assert figures.clean, figures.report()
    texts = namespace_texts(chaos_kube, chaos_namespace) | manifest_texts(
        s3, BUCKET, f"chaos/{chaos_namespace}/"
    )
    if run.operator is not None:
        texts["operator log"] = run.operator.log_file.read_text(errors="replace")
    assert not hits(texts, [s3.secret_key]), "the S3 secret key leaked"
