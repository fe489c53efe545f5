"""One reconciliation pass of one FineTuneJob: level-based, from the operator's indexes.

A pass reads nothing from the API server: the FineTuneJob, its Job and its pods come
from kopf's indexes (kept current by watches). It

1. ensures the children of a spec generation this process hasn't handled yet
   (:mod:`kubetune.controller.children`; a restarted operator checks every job once,
   and a Job that is up to date costs no API call), unless the installed CRD is older
   than this operator (:mod:`kubetune.controller.schema`) or the platform policy
   refuses the spec (:mod:`kubetune.controller.policy`): then no child is made or changed;
2. derives and publishes the status (:meth:`kubetune.controller.runtime.Runtime.publish`);
   for a Job waiting in a Kueue queue that includes Kueue's own explanation, read from
   its Workload (the one read a pass makes: Workloads are Kueue's objects, without our
   labels, so no index of the operator holds them) every
   :data:`KUEUE_RECHECK_SECONDS` while it waits;
3. deletes the Job of a job it failed itself (a trainer container stuck past the start
   timeout: no pod is left waiting for an image that will not come), and a finished
   job whose ``ttlSecondsAfterFinished`` has passed.

It returns the seconds after which the job needs another pass without any new event
(a status write that waits, a retry after an API error, a TTL), or ``None``. Nothing
is kept in the FineTuneJob for kopf (no diff-base annotation, no handler progress, no
finalizer): the spec generation handled is ``status.observedGeneration`` of the status
written after it, and this process's memory.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubetune import metrics
from kubetune.controller.children import JobReplaced, ensure_children, up_to_date
from kubetune.controller.runtime import Runtime, Snapshot, now
from kubetune.controller.status import gave_up
from kubetune.controller.views import JobView, Key, PodView, WorkloadView
from kubetune.render.children import render_children
from kubetune_contract.api.policy import POLICY_REASON
from kubetune_contract.api.schema_version import CRD_OUTDATED
from kubetune_contract.api.status import FINISHED_STATES

log = logging.getLogger("kubetune.operator")

#: Seconds before a pass that failed on an API error runs again.
API_RETRY_SECONDS = 5.0
#: Seconds before a replaced Job's name is tried again.
REPLACED_RETRY_SECONDS = 2.0
#: Seconds before a status write that met a newer version is derived again (its watch
#: event usually comes first).
CONFLICT_RETRY_SECONDS = 1.0
#: Seconds between reads of a queued Job's Workload (Kueue's reason changes without
#: an event the operator sees).
KUEUE_RECHECK_SECONDS = 15.0


@dataclass(frozen=True)
class Views:
    """Readers of the operator's indexes for one job."""

    snapshot: Callable[[Key], Snapshot | None]
    batch_job: Callable[[Key], JobView | None]
    pods: Callable[[Key], list[PodView]]


def _adopt(snapshot: Snapshot) -> Callable[[dict[str, Any]], None]:
    """Owner reference (the FineTuneJob as controller) and namespace for a child."""
    reference = snapshot.reference()
    owner = {
        "apiVersion": reference["apiVersion"],
        "kind": reference["kind"],
        "name": reference["name"],
        "uid": reference["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }

    def adopt(manifest: dict[str, Any]) -> None:
        meta = manifest.setdefault("metadata", {})
        meta["namespace"] = reference["namespace"]
        meta["ownerReferences"] = [*meta.get("ownerReferences", []), owner]

    return adopt


def _waits_in_kueue(snapshot: Snapshot, batch_job: JobView | None) -> bool:
    """Whether the Job is suspended for Kueue to admit (not by the user's suspend)."""
    spec = snapshot.finetunejob.spec if snapshot.finetunejob else None
    if spec is None or batch_job is None or not batch_job.suspended or spec.suspend:
        return False
    return spec.scheduling is not None and bool(spec.scheduling.queueName)


@dataclass
class Reconciler:
    """The pass; called from worker threads, one key at a time (the work queue's rule)."""

    runtime: Runtime
    views: Views

    def reconcile(self, key: Key, trigger: str) -> float | None:
        metrics.RECONCILES.labels(trigger=trigger).inc()
        started = time.monotonic()
        try:
            return self._pass(key)
        finally:
            duration = time.monotonic() - started
            metrics.RECONCILE_DURATION.labels(trigger=trigger).observe(duration)

    def _pass(self, key: Key) -> float | None:
        snapshot = self.views.snapshot(key)
        if snapshot is None:  # deleted (its children go with it), or not ours
            self.runtime.forget(key)
            return None
        batch_job = self.views.batch_job(key)
        try:
            if self.runtime.needs_children(snapshot):
                batch_job = self._children(snapshot, batch_job)
            in_kueue = _waits_in_kueue(snapshot, batch_job)
            workload = self._workload(snapshot, batch_job) if in_kueue and batch_job else None
            status, wait = self.runtime.publish(snapshot, batch_job, self.views.pods(key), workload)
            if in_kueue:
                wait = min(wait or KUEUE_RECHECK_SECONDS, KUEUE_RECHECK_SECONDS)
        except JobReplaced as replaced:
            log.info("%s/%s: %s", *key, replaced)
            return REPLACED_RETRY_SECONDS
        except ApiException as error:
            metrics.RECONCILE_ERRORS.labels(reason=error.reason or str(error.status)).inc()
            if error.status == 409:
                return CONFLICT_RETRY_SECONDS
            log.warning("%s/%s: API error %s: %s", *key, error.status, error.reason)
            return API_RETRY_SECONDS
        if batch_job is not None and gave_up(status):
            log.info(
                "%s/%s: deleting Job %s: the job failed before it could start", *key, batch_job.uid
            )
            self.runtime.kube.delete_job(*key, batch_job.uid)
        expires = self._expires_in(snapshot, status.state, status.completionTime)
        if expires is not None and expires <= 0:
            log.info("%s/%s: deleting: ttlSecondsAfterFinished passed", *key)
            self.runtime.kube.delete_finetunejob(*key, snapshot.uid)
            return None
        waits = [seconds for seconds in (wait, expires) if seconds is not None]
        return min(waits) if waits else None

    def _workload(self, snapshot: Snapshot, batch_job: JobView) -> WorkloadView | None:
        """Kueue's account of the wait of the queued Job, if its Workload has one."""
        manifests = self.runtime.kube.workloads(snapshot.key[0], batch_job.uid)
        views = [WorkloadView.from_manifest(w) for w in manifests]
        return next((v for v in views if v is not None), None)

    def _children(self, snapshot: Snapshot, known: JobView | None) -> JobView | None:
        """Ensure the children of the current spec; the Job as it now is."""
        if outdated := self.runtime.outdated(snapshot):
            # Not marked ensured: the CRD's upgrade files every job for a pass.
            metrics.RECONCILE_ERRORS.labels(reason=CRD_OUTDATED).inc()
            log.warning("%s/%s: no children: %s", *snapshot.key, outdated)
            return known
        finetunejob = snapshot.finetunejob
        if finetunejob is None:
            metrics.RECONCILE_ERRORS.labels(reason="InvalidSpec").inc()
            problems = "; ".join(snapshot.problems)
            log.warning("%s/%s: invalid spec, no children created: %s", *snapshot.key, problems)
            self.runtime.children_ensured(snapshot)
            return known
        if self.runtime.previous(snapshot).state in FINISHED_STATES:
            self.runtime.children_ensured(snapshot)  # finished: children left as they are
            return known
        if refused := self.runtime.refused(snapshot):
            # Not marked ensured: the next pass (a policy change files one) judges again.
            metrics.RECONCILE_ERRORS.labels(reason=POLICY_REASON).inc()
            problems = "; ".join(refused)
            if known is None:
                log.warning("%s/%s: refused by policy, no children: %s", *snapshot.key, problems)
            else:  # admission off: an edit of a started job; its Job keeps the spec it has
                message = f"spec change not applied: {problems}"
                log.warning("%s/%s: %s", *snapshot.key, message)
                self.runtime.event(snapshot, "Warning", POLICY_REASON, message)
                self.runtime.children_ensured(snapshot)
            return known
        children = render_children(finetunejob, self.runtime.options)
        if known is not None and up_to_date(known, children, finetunejob):
            self.runtime.children_ensured(snapshot)
            return known
        outcome = ensure_children(self.runtime.kube, finetunejob, children, _adopt(snapshot))
        for action in outcome.actions:
            log.info("%s/%s: %s", *snapshot.key, action)
        if outcome.created_job:
            if snapshot.created is not None:
                seconds = (now() - snapshot.created).total_seconds()
                metrics.JOB_CREATION.observe(max(0.0, seconds))
            self.runtime.event(snapshot, "Normal", "JobCreated", outcome.actions[-1])
        self.runtime.children_ensured(snapshot)
        return JobView.from_manifest(outcome.batch_job) if outcome.batch_job else known

    @staticmethod
    def _expires_in(
        snapshot: Snapshot, state: str | None, completed: datetime | None
    ) -> float | None:
        """Seconds until a finished job's TTL has passed; ``None`` without one."""
        ttl = snapshot.finetunejob.spec.ttlSecondsAfterFinished if snapshot.finetunejob else None
        if ttl is None or state not in FINISHED_STATES:
            return None
        deadline = (completed or now()) + timedelta(seconds=ttl)
        return (deadline - now()).total_seconds()
