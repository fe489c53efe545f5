"""The evaluation stage of a job: after the result is published, never instead of it.

Training's result (adapter, manifest) is uploaded first; then the base model and the
published result answer the evaluation prompts, the report goes next to the adapter and
the manifest is rewritten with an ``evaluation`` block (one object write: a reader sees
the manifest without or with it, never half of it). Whatever goes wrong here — out of
memory, a reward model that does not load, a store outage, a SIGTERM (preemption) —
ends as an ``error`` in the evaluation block and the run still succeeds: the job's
status then says ``EvaluationPassed=False`` (``EvaluationFailed``) with the error, and
``kubetune eval FILE --adapter URI`` can evaluate the published result later.
"""

from __future__ import annotations

import logging
import signal
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from kubetune_contract.evaluation.records import REPORT_FILE
from kubetune_trainer import artifacts, storage
from kubetune_trainer.errors import TrainerError
from kubetune_trainer.evaluation import compare, report

if TYPE_CHECKING:
    from kubetune_contract.api.trainer_config import TrainerConfig
    from kubetune_trainer.evaluation.examples import Example
    from kubetune_trainer.metrics import TrainerMetrics

log = logging.getLogger(__name__)

#: Longest error text carried in the termination summary (Kubernetes keeps 4 KiB in all).
ERROR_LIMIT = 400


class Stopped(Exception):
    """SIGTERM arrived while the models were answering."""


@dataclass(frozen=True)
class Inputs:
    """What the stage needs from the run that published the result."""

    config: TrainerConfig
    examples: list[Example]
    model_dir: Path
    """The base model."""
    result_dir: Path
    """The published result, as it was uploaded."""
    manifest_uri: str
    metrics: TrainerMetrics
    work: Path


@dataclass
class Outcome:
    """What the stage adds to the run's result."""

    summary: dict[str, Any]
    """The termination summary's ``evaluation`` block."""
    sentence: str
    """For the termination message."""


@contextmanager
def _sigterm_stops() -> Iterator[list[bool]]:
    """While inside: SIGTERM sets the flag (checked after every batch) instead of killing
    the process, so a preempted pod ends with its published result and says why the
    evaluation stopped."""
    flag = [False]

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        log.warning("SIGTERM: stopping the evaluation after this batch")
        flag[0] = True

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TrainerError | Stopped):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
        if type(exc).__name__ == "OutOfMemoryError":
            text += " (lower evaluation.generation.batchSize or maxNewTokens)"
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 3] + "..."


def _manifest_block(
    config: TrainerConfig, result: compare.Evaluation, files: list[str]
) -> dict[str, Any]:
    evaluation = config.spec.evaluation
    assert evaluation is not None
    return {
        "prompts": len(result.records),
        "metrics": {
            m: {"base": c.base, "tuned": c.tuned, "delta": c.delta}
            for m, c in result.comparisons.items()
        },
        "headline": result.headline,
        "gate": result.gate.as_dict() if result.gate is not None else None,
        "settings": evaluation.to_wire(),
        "files": files,
        "durationSeconds": round(result.seconds, 3),
    }


def _summary_block(result: compare.Evaluation, report_uri: str) -> dict[str, Any]:
    block: dict[str, Any] = {
        "prompts": len(result.records),
        "metrics": result.scores(),
        "headline": result.headline,
        "reportUri": report_uri,
    }
    if result.gate is not None:
        block["gate"] = {"passed": result.gate.passed, "failures": result.gate.failures}
    return block


def _evaluate_and_publish(inputs: Inputs) -> Outcome:
    config = inputs.config
    spec = config.spec
    assert spec.evaluation is not None
    gauges = compare.progress_gauges(inputs.metrics)
    with _sigterm_stops() as stop:

        def progress(model: str, done: int, planned: int) -> None:
            gauges(model, done, planned)
            if stop[0]:
                raise Stopped(
                    f"stopped by SIGTERM while the {model} model answered ({done} of "
                    f"{planned} prompts)"
                )

        result = compare.evaluate(
            spec, inputs.examples, inputs.model_dir, inputs.result_dir, progress
        )
    compare.publish_gauges(inputs.metrics, spec.evaluation, result)
    written = report.write(
        inputs.work / "evaluation", spec, result, title=config.job.name, tuned_uri=spec.output.uri
    )
    uris = report.upload(written, spec.output.uri)
    artifacts.amend_manifest(
        inputs.manifest_uri, {"evaluation": _manifest_block(config, result, uris)}, uris
    )
    return Outcome(
        _summary_block(result, storage.join(spec.output.uri, REPORT_FILE)), result.sentence()
    )


def run(inputs: Inputs) -> Outcome:
    """Evaluate the published result against the base model; never raises (see the module
    docstring)."""
    try:
        return _evaluate_and_publish(inputs)
    except Exception as exc:  # the training result is published: keep it, say what failed
        error = _error_text(exc)
        if isinstance(exc, Stopped | TrainerError):
            log.error("evaluation failed: %s", error)
        else:
            log.error("evaluation failed\n%s", traceback.format_exc())
        try:
            artifacts.amend_manifest(inputs.manifest_uri, {"evaluation": {"error": error}}, [])
        except Exception as amend:  # the store itself may be what failed
            log.warning("cannot record the evaluation error in the manifest: %s", amend)
        return Outcome({"error": error}, f"evaluation failed: {error}")
