"""FineTuneJobs that really train, as the end-to-end and fault tests submit them."""

from __future__ import annotations

from typing import Any

import yaml

from devenv.dev import EXAMPLES
from devenv.node import REAL_NODE_SELECTOR, REAL_NODE_TOLERATION

#: Steps for a job that a test interrupts mid-training (suspend, preemption, eviction) and
#: then lets finish. The quickstart trains about 50 steps a second on an idle machine (one
#: thread, OMP_NUM_THREADS) and a progress write can lag by seconds, so a 120-step job
#: finished before its suspend landed (8 s from start to step 120) and a 40-step one
#: before the chaos run saw step 2.
INTERRUPTIBLE_STEPS = 600


def quickstart_on_real_node(name: str, output_uri: str, **training: Any) -> dict[str, Any]:
    """``examples/quickstart-cluster.yaml`` made small (batch 4, a log line a step),
    pinned to the real node, writing to ``output_uri``; ``training`` overrides."""
    manifest = yaml.safe_load((EXAMPLES / "quickstart-cluster.yaml").read_text())
    manifest["metadata"] = {"name": name}
    spec = manifest["spec"]
    spec["training"] |= {"batchSize": 4, "loggingIntervalSteps": 1, **training}
    spec["scheduling"] = {"nodeSelector": REAL_NODE_SELECTOR, "tolerations": [REAL_NODE_TOLERATION]}
    spec["terminationGracePeriodSeconds"] = 60
    spec["output"]["uri"] = output_uri
    return dict(manifest)
