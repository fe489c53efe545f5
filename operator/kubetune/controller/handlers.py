"""The kopf handlers: thin glue between watch events and the pure render/status code.

* The FineTuneJob's create/update/resume handler renders the children, makes the
  cluster hold them (:mod:`kubetune.controller.children`) and publishes the status.
* Events of its Job and pods (watched by label ``kubetune.io/job`` only, see
  :mod:`kubetune.controller.settings`) re-derive and publish the status.
* A daemon per running job reads progress; a daemon per finished job with
  ``ttlSecondsAfterFinished`` deletes it on time. kopf guards each daemon with a
  finalizer, present only while the daemon applies (the job runs, or waits for its
  TTL): deleting such a job waits for the operator to stop its daemon.

Indexes hold compact views of the FineTuneJobs, Jobs and pods, so no trigger has to
read anything from the API server to derive a status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

import kopf
from kubernetes.client.exceptions import ApiException

from kubetune import metrics
from kubetune.api import GROUP, KIND, PLURAL, VERSION
from kubetune.api.status import FineTuneJobStatus, Progress
from kubetune.controller.children import JobReplaced, ensure_children, up_to_date
from kubetune.controller.progress import progress_from_samples, scrape
from kubetune.controller.runtime import Key, Runtime, Snapshot, now
from kubetune.controller.status import Transition
from kubetune.controller.views import JobView, PodView
from kubetune.render.children import render_children
from kubetune.render.labels import JOB_LABEL

FTJ = (GROUP, VERSION, PLURAL)
OWNED = {JOB_LABEL: kopf.PRESENT}
_TERMINAL = ("Succeeded", "Failed")

T = TypeVar("T")


@dataclass(frozen=True)
class Indexes:
    """The operator's indexes, as kopf passes them to handlers (by function name)."""

    finetunejobs: kopf.Index[Key, Snapshot]
    trainer_jobs: kopf.Index[Key, JobView]
    trainer_pods: kopf.Index[Key, PodView]

    @classmethod
    def of(cls, kwargs: dict[str, Any]) -> Indexes:
        return cls(kwargs["finetunejobs"], kwargs["trainer_jobs"], kwargs["trainer_pods"])

    def snapshot(self, key: Key) -> Snapshot | None:
        return _first(self.finetunejobs, key)

    def job(self, key: Key) -> JobView | None:
        return _first(self.trainer_jobs, key)

    def pods(self, key: Key) -> list[PodView]:
        store = self.trainer_pods.get(key)
        return list(store) if store else []


def _first(index: kopf.Index[Key, T], key: Key) -> T | None:
    store = index.get(key)
    return next(iter(store), None) if store else None


def _key(namespace: str | None, name: str) -> Key:
    """Every object here is namespaced; ``None`` only satisfies kopf's signature."""
    return (namespace or "", name)


def _emit(reference: dict[str, Any], change: Transition) -> None:
    kopf.event(
        cast(kopf.Body, reference), type=change.type, reason=change.reason, message=change.message
    )


def _runtime(memo: Any) -> Runtime:
    runtime: Runtime = memo.runtime
    return runtime


# -- indexes ------------------------------------------------------------------------


@kopf.index(*FTJ)
def finetunejobs(*, body: kopf.Body, **_: Any) -> dict[Key, Snapshot]:
    snapshot = Snapshot.from_body(body)
    return {snapshot.key: snapshot}


def _owned_by_finetunejob(meta: kopf.Meta, **_: Any) -> bool:
    """A Job someone else labelled ``kubetune.io/job`` is not one of ours."""
    return any(
        ref.get("kind") == KIND and ref.get("controller") for ref in meta.get("ownerReferences", [])
    )


@kopf.index("batch", "v1", "jobs", labels=OWNED, when=_owned_by_finetunejob)
def trainer_jobs(*, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any) -> Any:
    return {_key(namespace, labels[JOB_LABEL]): JobView.from_manifest(body)}


@kopf.index("v1", "pods", labels=OWNED)
def trainer_pods(*, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any) -> Any:
    return {_key(namespace, labels[JOB_LABEL]): PodView.from_manifest(body)}


# -- the FineTuneJob ----------------------------------------------------------------


def _timed(trigger: str, work: Callable[[], T]) -> T:
    metrics.RECONCILES.labels(trigger=trigger).inc()
    started = time.monotonic()
    try:
        return work()
    finally:
        metrics.RECONCILE_DURATION.labels(trigger=trigger).observe(time.monotonic() - started)


@kopf.on.resume(*FTJ)
@kopf.on.create(*FTJ)
@kopf.on.update(*FTJ, field="spec")
def reconcile(
    *,
    body: kopf.Body,
    memo: Any,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    """Ensure the children match the spec, then publish the status."""
    runtime = _runtime(memo)
    indexes = Indexes.of(kwargs)
    snapshot = Snapshot.from_body(body)

    def work() -> None:
        job = snapshot.job
        if job is None:
            metrics.RECONCILE_ERRORS.labels(reason="InvalidSpec").inc()
            logger.warning("invalid spec, no children created: %s", "; ".join(snapshot.problems))
            runtime.publish(snapshot, None, [], _emit)
            return
        if runtime.previous(snapshot).state in _TERMINAL:
            logger.info("finished; children left as they are")
            return
        children = render_children(job, runtime.options)
        known = indexes.job(snapshot.key)
        if known is not None and up_to_date(known, children, job):
            runtime.publish(snapshot, known, indexes.pods(snapshot.key), _emit)
            return
        try:
            outcome = ensure_children(
                runtime.kube, job, children, lambda m: kopf.adopt(m, owner=body)
            )
        except JobReplaced as replaced:
            raise kopf.TemporaryError(str(replaced), delay=2) from None
        except ApiException as error:
            metrics.RECONCILE_ERRORS.labels(reason=error.reason or str(error.status)).inc()
            message = f"API error {error.status}: {error.reason}"
            raise kopf.TemporaryError(message, delay=5) from None
        for action in outcome.actions:
            logger.info(action)
        if outcome.created_job:
            if snapshot.created is not None:
                seconds = (now() - snapshot.created).total_seconds()
                metrics.JOB_CREATION.observe(max(0.0, seconds))
            kopf.event(body, type="Normal", reason="JobCreated", message=outcome.actions[-1])
            return  # the new Job's watch event publishes the status, freeing this worker
        view = JobView.from_manifest(outcome.job) if outcome.job else None
        runtime.publish(snapshot, view, indexes.pods(snapshot.key), _emit)

    _timed("spec", work)


def _refresh(
    runtime: Runtime,
    key: Key,
    indexes: Indexes,
    progress: Callable[[FineTuneJobStatus], Progress | None] | None = None,
) -> None:
    snapshot = indexes.snapshot(key)
    if snapshot is None:  # not ours (yet), or deleted: its children go with it
        return
    try:
        runtime.publish(snapshot, indexes.job(key), indexes.pods(key), _emit, progress)
    except ApiException as error:  # derived again, and written, at the next event
        metrics.RECONCILE_ERRORS.labels(reason=error.reason or str(error.status)).inc()


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
@kopf.on.event("v1", "pods", labels=OWNED)
def child_changed(
    *,
    namespace: str | None,
    labels: kopf.Labels,
    memo: Any,
    **kwargs: Any,
) -> None:
    """A Job or pod of a FineTuneJob changed: re-derive its status."""
    key = _key(namespace, labels[JOB_LABEL])
    runtime = _runtime(memo)
    _timed("child", lambda: _refresh(runtime, key, Indexes.of(kwargs)))


@kopf.on.event(*FTJ)
def finetunejob_event(*, namespace: str | None, name: str, type: str, memo: Any, **_: Any) -> None:
    """Forget a deleted FineTuneJob (its children are garbage-collected by owner)."""
    if type == "DELETED":
        _runtime(memo).forget(_key(namespace, name))


def _running(status: kopf.Status, **_: Any) -> bool:
    return status.get("state") == "Running"


def _rank0_url(pods: list[PodView], port: int) -> str | None:
    running = sorted((p for p in pods if p.phase == "Running" and p.ip), key=lambda p: p.index)
    return f"http://{running[0].ip}:{port}/metrics" if running else None


@kopf.daemon(*FTJ, when=_running, cancellation_timeout=5)
async def track_progress(
    *,
    namespace: str | None,
    name: str,
    memo: Any,
    stopped: kopf.DaemonStopped,
    **kwargs: Any,
) -> None:
    """While the job runs, read the rank-0 trainer's metrics into ``status.progress``."""
    runtime = _runtime(memo)
    key = _key(namespace, name)
    indexes = Indexes.of(kwargs)
    while not stopped:
        url = _rank0_url(indexes.pods(key), runtime.options.metrics_port)
        samples = await asyncio.to_thread(scrape, url) if url else None
        if samples:

            def progress(
                status: FineTuneJobStatus, samples: dict[str, float] = samples
            ) -> Progress | None:
                if status.state != "Running":
                    return None
                return progress_from_samples(
                    samples, now=now(), previous=status.progress, started=status.startTime
                )

            await asyncio.to_thread(
                _timed,
                "timer",
                lambda: _refresh(runtime, key, indexes, progress),
            )
        await stopped.wait(runtime.progress_interval)


def _expiring(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    return status.get("state") in _TERMINAL and spec.get("ttlSecondsAfterFinished") is not None


@kopf.daemon(*FTJ, when=_expiring, cancellation_timeout=5)
async def expire(
    *,
    namespace: str | None,
    name: str,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: Any,
    logger: kopf.Logger,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Delete a finished FineTuneJob ``ttlSecondsAfterFinished`` after completion."""
    finished = FineTuneJobStatus.model_validate(dict(status)).completionTime or now()
    deadline = finished + timedelta(seconds=int(spec["ttlSecondsAfterFinished"]))
    await stopped.wait(max(0.0, (deadline - now()).total_seconds()))
    if not stopped:
        logger.info("deleting: ttlSecondsAfterFinished passed")
        await asyncio.to_thread(_runtime(memo).kube.delete_finetunejob, namespace or "", name, uid)
