"""What an interrupted and resumed job must publish, read back from its output store.

The in-process interruption tests (``test_interruptions.py``, local store and S3) use
these, and so can an end-to-end test on a real node: everything takes an output URI
(``file://`` or ``s3://``, credentials from the environment) and reads only what a user
reads, through the trainer's storage module. A resumed run must publish what the same
job publishes uninterrupted: the same logged steps with the same losses and evaluation
losses (within :data:`TOLERANCE`), the same final metrics and weights, ``maxSteps``
steps and no more, and exactly one result (the same files, a single manifest, no
checkpoint past the end).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubetune_contract.curves import RESUMES, read_records
from kubetune_trainer import storage
from kubetune_trainer.artifacts import MANIFEST, METRICS
from kubetune_trainer.checkpoints import CheckpointStore

#: Per-step loss tolerance. On CPU with a fixed seed a resumed run repeats the same
#: arithmetic (measured difference 0); anything real shows up far above this.
TOLERANCE = 1e-6
#: Final metrics that do not depend on timing, compared within :data:`TOLERANCE`.
SAME_METRICS = ("loss", "evalLoss", "initialEvalLoss", "trainLoss", "learningRate", "epoch")


@dataclass
class Published:
    """A job's result as the store holds it."""

    uri: str
    manifest: dict[str, Any]
    records: list[dict[str, Any]]
    names: list[str]
    """What lies directly under the output URI."""
    checkpoints: list[int]
    """Steps of the complete checkpoints in the store."""

    def series(self, key: str) -> dict[int, float]:
        """``step -> value`` of one logged metric."""
        return {int(r["step"]): float(r[key]) for r in self.records if key in r}

    def files(self) -> list[str]:
        """The manifest's files, relative to the output URI."""
        return sorted(f[len(self.uri) + 1 :] for f in self.manifest["files"])

    def resumed_at(self) -> list[int]:
        return [int(r["step"]) for r in self.records if RESUMES in r]


def read_published(uri: str) -> Published:
    """The manifest, the metrics history and the listing under ``uri``."""
    manifest = json.loads(storage.read_bytes(storage.join(uri, MANIFEST)))
    history = storage.read_bytes(storage.join(uri, METRICS)).decode()
    return Published(
        uri,
        manifest,
        read_records(history.splitlines()),
        storage.list_names(uri),
        [c.step for c in CheckpointStore(uri, keep=1).complete()],
    )


def worst_difference(resumed: Published, baseline: Published, key: str) -> float:
    """The largest difference of ``key`` at the same steps, which must be the same steps."""
    got, want = resumed.series(key), baseline.series(key)
    assert sorted(got) == sorted(want), f"{key} logged at {sorted(got)}, expected {sorted(want)}"
    return max((abs(got[step] - want[step]) for step in want), default=0.0)


def assert_same_result(resumed: Published, baseline: Published, max_steps: int) -> float:
    """Fail unless ``resumed`` is ``baseline``'s result; return the worst loss difference."""
    worst = max(worst_difference(resumed, baseline, key) for key in ("loss", "eval_loss"))
    assert worst <= TOLERANCE, f"losses differ by up to {worst}"
    assert max(resumed.series("loss")) == max_steps
    got, want = resumed.manifest["metrics"], baseline.manifest["metrics"]
    for key in SAME_METRICS:
        if key in want:
            assert abs(got[key] - want[key]) <= TOLERANCE, (key, got[key], want[key])
    assert got["trainRuntimeSeconds"] > 0 and got["samplesPerSecond"] > 0
    # Exactly one result: the same files and folders, every file there, nothing past the end.
    assert resumed.names == baseline.names
    assert resumed.files() == baseline.files()
    assert all(storage.exists(f) for f in resumed.manifest["files"])
    assert max(resumed.checkpoints) == max_steps, resumed.checkpoints
    return max(worst, worst_weight_difference(resumed, baseline))


def worst_weight_difference(resumed: Published, baseline: Published) -> float:
    """The largest difference between the published weights (every ``.safetensors``)."""
    from safetensors.torch import load

    worst = 0.0
    for name in (f for f in baseline.files() if f.endswith(".safetensors")):
        got, want = (
            load(storage.read_bytes(storage.join(p.uri, name))) for p in (resumed, baseline)
        )
        assert sorted(got) == sorted(want), name
        worst = max([worst, *((got[k] - want[k]).abs().max().item() for k in want)])
    assert worst <= TOLERANCE, f"published weights differ by up to {worst}"
    return worst
