"""The kopf handlers: indexes, and watch events filed as work for the controller.

* Indexes hold compact views of the FineTuneJobs, Jobs and pods, so a reconciliation
  pass (:mod:`kubetune.controller.reconciler`) reads nothing from the API server.
* The FineTuneJobPolicy named by ``--policy`` is indexed (so no pass judges a job before
  the policy is known) and a change of it files every job without a Job for a pass:
  a refused job starts once the policy allows it.
* The FineTuneJob CRD is indexed too, for its schema version
  (:mod:`kubetune.controller.schema`: no pass runs before it is known), and a change
  of it files every job for a pass: jobs held for an outdated CRD start once it is
  upgraded.
* Every watch event of a FineTuneJob, its Job (watched by label ``kubetune.io/job``
  only, see :mod:`kubetune.controller.settings`) or its pods files the job's key in
  the controller's work queue (:mod:`kubetune.controller.workers`). Children of a
  deleted FineTuneJob are garbage-collected by owner.

Only low-level event handlers and indexes: kopf then keeps no state in the objects
(no diff-base or progress annotations, no finalizer — there is no daemon to stop), so
a job's writes from create to Running are its children and one status write. Every
handler is a coroutine that does no I/O: it runs in kopf's event loop without a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import kopf

from kubetune.controller.reconciler import Reconciler, Views
from kubetune.controller.runtime import Runtime, Snapshot
from kubetune.controller.schema import CRD_NAME
from kubetune.controller.views import JobView, Key, PodView
from kubetune.controller.workers import Controller
from kubetune.render.labels import JOB_LABEL
from kubetune_contract.api import GROUP, KIND, PLURAL, VERSION
from kubetune_contract.api.policy import POLICY_PLURAL

FTJ = (GROUP, VERSION, PLURAL)
CRDS = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
OWNED = {JOB_LABEL: kopf.PRESENT}

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

    def batch_job(self, key: Key) -> JobView | None:
        return _first(self.trainer_jobs, key)

    def pods(self, key: Key) -> list[PodView]:
        store = self.trainer_pods.get(key)
        return list(store) if store else []

    def views(self) -> Views:
        return Views(snapshot=self.snapshot, batch_job=self.batch_job, pods=self.pods)


def _first(index: kopf.Index[Key, T], key: Key) -> T | None:
    store = index.get(key)
    return next(iter(store), None) if store else None


def _key(namespace: str | None, name: str) -> Key:
    """Every object here is namespaced; ``None`` only satisfies kopf's signature."""
    return (namespace or "", name)


def _controller(memo: Any) -> Controller:
    controller: Controller = memo.controller
    return controller


# -- lifecycle of the controller's workers --------------------------------------------


@kopf.on.startup()
async def start_controller(*, memo: Any, **kwargs: Any) -> None:
    """Start the workers and the progress reader on the (still empty, live) indexes."""
    runtime: Runtime = memo.runtime
    reconciler = Reconciler(runtime, Indexes.of(kwargs).views())
    memo.controller = Controller(
        reconciler,
        workers=memo.workers,
        metrics_port=runtime.options.metrics_port,
        progress_interval=memo.progress_interval,
    )
    memo.controller.start()


@kopf.on.cleanup()
async def stop_controller(*, memo: Any, **_: Any) -> None:
    await _controller(memo).stop()


# -- indexes ------------------------------------------------------------------------


@kopf.index(*FTJ)
async def finetunejobs(*, body: kopf.Body, **_: Any) -> dict[Key, Snapshot]:
    snapshot = Snapshot.from_body(body)
    return {snapshot.key: snapshot}


def _owned_by_finetunejob(meta: kopf.Meta, **_: Any) -> bool:
    """A Job someone else labelled ``kubetune.io/job`` is not one of ours."""
    return any(
        ref.get("kind") == KIND and ref.get("controller") for ref in meta.get("ownerReferences", [])
    )


@kopf.index("batch", "v1", "jobs", labels=OWNED, when=_owned_by_finetunejob)
async def trainer_jobs(
    *, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> Any:
    return {_key(namespace, labels[JOB_LABEL]): JobView.from_manifest(body)}


@kopf.index("v1", "pods", labels=OWNED)
async def trainer_pods(
    *, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> Any:
    return {_key(namespace, labels[JOB_LABEL]): PodView.from_manifest(body)}


# -- watch events -------------------------------------------------------------------


@kopf.on.event(*FTJ)
async def finetunejob_changed(
    *, type: str, namespace: str | None, name: str, meta: kopf.Meta, memo: Any, **_: Any
) -> None:
    """File the job for a pass, unless the event is the echo of what a pass knows (a
    deleted job's pass finds it gone from the index and forgets it)."""
    key = _key(namespace, name)
    if type == "DELETED" or not memo.runtime.seen(key, str(meta.get("resourceVersion", ""))):
        _controller(memo).enqueue(key, "spec")


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
@kopf.on.event("v1", "pods", labels=OWNED)
async def child_changed(*, namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any) -> None:
    """A Job or pod of a FineTuneJob changed: file the job for a pass."""
    _controller(memo).enqueue(_key(namespace, labels[JOB_LABEL]), "child")


# -- the platform policy ------------------------------------------------------------


def _the_policy(name: str, memo: Any, **_: Any) -> bool:
    runtime: Runtime = memo.runtime
    return name == runtime.policy.name


@kopf.index(GROUP, VERSION, POLICY_PLURAL, when=_the_policy)
async def finetunejob_policy(*, body: kopf.Body, memo: Any, **_: Any) -> dict[str, bool]:
    """Record the policy. An index, because kopf runs no handler before every index has
    seen its first listing: no job is filed for a pass before the policy is known."""
    memo.runtime.policy.observe(body)
    return {"seen": True}


@kopf.on.event(GROUP, VERSION, POLICY_PLURAL, when=_the_policy)
async def policy_changed(*, type: str, memo: Any, **kwargs: Any) -> None:
    """Re-judge the jobs that have not started (those without a Job)."""
    if type == "DELETED":
        memo.runtime.policy.forget()
    elif type is None:  # the initial listing: the index recorded it
        return
    indexes = Indexes.of(kwargs)
    for key in list(indexes.finetunejobs):
        if indexes.batch_job(key) is None:
            _controller(memo).enqueue(key, "policy")


# -- the FineTuneJob CRD's schema version -------------------------------------------


def _our_crd(name: str, **_: Any) -> bool:
    return name == CRD_NAME


@kopf.index(*CRDS, when=_our_crd)
async def finetunejob_crd(*, body: kopf.Body, memo: Any, **_: Any) -> dict[str, bool]:
    """Record the CRD's schema version; an index, as the policy's, so that no job is
    filed for a pass before it is known."""
    memo.runtime.schema.observe(body)
    return {"seen": True}


@kopf.on.event(*CRDS, when=_our_crd)
async def crd_changed(*, type: str, memo: Any, **kwargs: Any) -> None:
    """File every job: the held ones start, the others ensure the children they skipped."""
    if type is None:  # the initial listing: the index recorded it
        return
    for key in list(Indexes.of(kwargs).finetunejobs):
        _controller(memo).enqueue(key, "crd")
