"""A seeded, bounded chaos run: FineTuneJob lifecycles while the operator and the control
plane are killed and restarted under them.

What happens (every random choice comes from one seed, printed, so a failure replays):

* **Lifecycles.** KWOK jobs (the trainer is imitated by KWOK; the run ends each one the
  way a kubelet reports it) follow one scenario each: succeed, fail with the trainer's
  "invalid data" code, be suspended and resumed, or be deleted while running. Trainer
  jobs on the real node really train; the first three are plain, suspended and resumed,
  and evicted (preempted) through the Eviction API. A suspend or an eviction that
  comes after training has ended (the trainer was quicker than the faulted control
  plane) did not exercise its scenario: the job must still succeed, and a new job gets
  the same fault, up to :data:`RETRIES` times.
* **Faults.** The operator is SIGKILLed every 2-10 s and started again at once;
  kube-apiserver and kube-controller-manager are each restarted a given number of times
  at random moments within the first 40 s (while the lifecycles are under way), and
  the run lasts until every restart is done.
* **Checks afterwards.** Every job ends in the state a fault-free run gives it; no Job
  is created twice (creates per FineTuneJob counted in the API server's audit log); no
  child of a deleted job is left; every status's ``observedGeneration`` equals the
  generation; real-node jobs end at ``maxSteps`` with an adapter in S3.

:class:`Figures` is what gets printed: lifecycles, kills, restarts, duplicates, orphans,
lost jobs, the seed and the wall time.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devenv.cluster import (
    TEST_EXIT_CODE_ANNOTATION,
    TEST_PHASE_ANNOTATION,
    TEST_TERMINATION_MESSAGE_ANNOTATION,
    ControlPlane,
)
from devenv.process import ComponentError, Process
from kubetune.render.labels import JOB_LABEL
from kubetune_contract.api import GROUP, PLURAL, VERSION
from tests.cases.jobs import INTERRUPTIBLE_STEPS

T = TypeVar("T")

#: Audit only what the duplicate count needs: successful and failed Job creates.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Request
    verbs: [create]
    resources: [{group: batch, resources: [jobs]}]
  - level: None
"""

KWOK_SCENARIOS = ("succeed", "fail", "suspend", "delete")
REAL_SCENARIOS = ("train", "suspend", "preempt")
#: New jobs a real-node suspend or eviction is tried on after one that came too late.
RETRIES = 2
#: The final state each scenario must reach (``None``: the job is deleted).
EXPECTED: dict[str, str | None] = {
    "succeed": "Succeeded",
    "fail": "Failed",
    "suspend": "Succeeded",
    "delete": None,
    "train": "Succeeded",
    "preempt": "Succeeded",
}
SUCCESS_SUMMARY = {
    "outcome": "Succeeded",
    "reason": "Succeeded",
    "message": "training finished",
    "exitCode": 0,
    "step": 20,
    "totalSteps": 20,
}
FAILURE_SUMMARY = {
    "outcome": "Failed",
    "reason": "InvalidData",
    "message": "train.jsonl line 3: missing 'messages'",
    "exitCode": 3,
}


@dataclass(frozen=True)
class Plan:
    """How big the run is; every random choice follows ``seed``."""

    seed: int
    kwok_jobs: int
    real_jobs: int = 3
    restarts_each: int = 2
    kill_interval: tuple[float, float] = (2.0, 10.0)
    #: Enough steps that a job is still training when the run suspends or evicts it.
    #: Both the step the run waits for (status.progress) and the suspend go through an
    #: operator that is SIGKILLed every few seconds, so the bigger the run, the later they
    #: land: at full size (50 lifecycles) 600 steps, 12 s of training, were over first.
    real_steps: int = INTERRUPTIBLE_STEPS
    timeout: float = 600.0
    #: Seconds from the start within which every control-plane restart begins: the
    #: lifecycles (a real-node job starts its trainer and trains in about 30 s) are
    #: under way that long, so the restarts fall under them.
    restart_window: float = 40.0

    @property
    def lifecycles(self) -> int:
        return self.kwok_jobs + self.real_jobs


@dataclass
class Figures:
    """What a run did and found."""

    seed: int
    lifecycles: int = 0
    kills: int = 0
    restarts: Counter[str] = field(default_factory=Counter)
    duplicates: dict[str, int] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)
    generation_lag: list[str] = field(default_factory=list)
    real_problems: list[str] = field(default_factory=list)
    #: Real-node jobs whose suspend or eviction came after training had ended.
    too_late: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not (
            self.duplicates
            or self.orphans
            or self.lost
            or self.generation_lag
            or self.real_problems
        )

    def report(self) -> str:
        restarts = ", ".join(f"{name} {count}" for name, count in sorted(self.restarts.items()))
        found = (
            ("duplicate Jobs", sum(self.duplicates.values()), self.duplicates),
            ("orphaned children", len(self.orphans), self.orphans),
            ("lost (not in the expected state)", len(self.lost), self.lost),
            ("observedGeneration behind", len(self.generation_lag), self.generation_lag),
            ("real-node jobs short of their result", len(self.real_problems), self.real_problems),
        )
        lines = [
            f"chaos seed {self.seed}: {self.lifecycles} lifecycles in {self.seconds:.0f}s; "
            f"operator SIGKILLs {self.kills}; restarts: {restarts or 'none'}",
            f"  faults after training ended (tried again on a new job): {len(self.too_late)}"
            + (f" {self.too_late}" if self.too_late else ""),
            *(
                f"  {what}: {count}" + (f" {detail}" if detail else "")
                for what, count, detail in found
            ),
        ]
        if not self.clean:
            lines.append(f"  replay: KUBETUNE_CHAOS_SEED={self.seed} make chaos")
        return "\n".join(lines)


def retry(call: Callable[[], T], what: str, timeout: float = 120.0) -> T:
    """``call()``, retried while the API server is down or restarting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ApiException as error:
            if error.status not in (0, 500, 502, 503, 504) or time.monotonic() > deadline:
                raise
        except (
            urllib.error.URLError,
            urllib3.exceptions.HTTPError,  # the Kubernetes client's MaxRetryError
            ConnectionError,
            OSError,
        ) as error:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: the API server stayed unreachable: {error}") from None
        time.sleep(0.5)


def creates_per_job(audit_log: Path) -> Counter[tuple[str, str]]:
    """Successful Job creates per (namespace, name), from the API server's audit log."""
    counts: Counter[tuple[str, str]] = Counter()
    if not audit_log.exists():
        return counts
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("stage") != "ResponseComplete":
            continue
        if (event.get("responseStatus") or {}).get("code") != 201:
            continue
        ref = event.get("objectRef") or {}
        name = ref.get("name") or ((event.get("requestObject") or {}).get("metadata") or {}).get(
            "name"
        )
        counts[(ref.get("namespace", ""), name or "")] += 1
    return counts


class Cluster:
    """The run's API access: FineTuneJobs, their pods and children, in one namespace."""

    def __init__(self, kube: Any, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(kube)
        self.core = client.CoreV1Api(kube)
        self.batch = client.BatchV1Api(kube)

    def create(self, manifest: dict[str, Any]) -> None:
        def create() -> None:
            try:
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, manifest
                )
            except ApiException as error:
                if error.status != 409:  # a create retried after the server restarted
                    raise

        retry(create, f"create {manifest['metadata']['name']}")

    def ftj(self, name: str) -> dict[str, Any] | None:
        def get() -> dict[str, Any] | None:
            try:
                found: Any = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name
                )
            except ApiException as error:
                if error.status == 404:
                    return None
                raise
            return dict(found)

        return retry(get, f"get {name}")

    def ftjs(self) -> list[dict[str, Any]]:
        found: Any = retry(
            lambda: self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL
            ),
            "list finetunejobs",
        )
        return list(found["items"])

    def state(self, name: str) -> str | None:
        ftj = self.ftj(name)
        return (ftj or {}).get("status", {}).get("state")

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        """The job's condition of type ``kind`` (empty while it has none)."""
        conditions = ((self.ftj(name) or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def running_pod(self, name: str, timeout: float = 240.0) -> str:
        """The name of the job's Running trainer pod, once there is one."""

        def running() -> str | None:
            pods = [p for p in self.pods(name) if p.status.phase == "Running"]
            return pods[0].metadata.name if pods else None

        return wait_until(running, f"{name} has a Running pod", timeout)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        retry(
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
            ),
            f"patch {name}",
        )

    def delete(self, name: str) -> None:
        def delete() -> None:
            try:
                self.custom.delete_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name
                )
            except ApiException as error:
                if error.status != 404:
                    raise

        retry(delete, f"delete {name}")

    def pods(self, name: str) -> list[Any]:
        listed: Any = retry(
            lambda: self.core.list_namespaced_pod(
                self.namespace, label_selector=f"{JOB_LABEL}={name}"
            ),
            f"list pods of {name}",
        )
        return [p for p in listed.items if p.metadata.deletion_timestamp is None]

    def children(self, name: str) -> list[str]:
        """Every child object (Job, ConfigMap, Service, pod) still labelled for ``name``."""
        selector = f"{JOB_LABEL}={name}"
        found: list[str] = []
        for kind, lister in (
            ("job", self.batch.list_namespaced_job),
            ("configmap", self.core.list_namespaced_config_map),
            ("service", self.core.list_namespaced_service),
            ("pod", self.core.list_namespaced_pod),
        ):
            items: Any = retry(
                lambda lister=lister: lister(self.namespace, label_selector=selector),
                f"list {kind}s of {name}",
            )
            found += [f"{kind}/{item.metadata.name}" for item in items.items]
        return found

    def end_kwok_trainer(self, pod: str, phase: str, code: int, summary: dict[str, Any]) -> None:
        """Make KWOK end the trainer as a kubelet would report it."""
        annotations = {
            TEST_PHASE_ANNOTATION: phase,
            TEST_EXIT_CODE_ANNOTATION: str(code),
            TEST_TERMINATION_MESSAGE_ANNOTATION: json.dumps(summary),
        }
        retry(
            lambda: self.core.patch_namespaced_pod(
                pod, self.namespace, {"metadata": {"annotations": annotations}}
            ),
            f"end {pod}",
        )

    def evict(self, pod: str) -> None:
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=self.namespace))
        retry(
            lambda: self.core.create_namespaced_pod_eviction(pod, self.namespace, body),
            f"evict {pod}",
        )


def wait_until(check: Callable[[], T | None], what: str, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s: {what}")
        time.sleep(0.5)


@dataclass
class Job:
    """One lifecycle of the run."""

    name: str
    scenario: str
    real: bool
    manifest: dict[str, Any]
    error: str = ""
    #: Its suspend or eviction came after training had ended (see :data:`RETRIES`).
    too_late: bool = False
    #: 1 for the run's own jobs; ``n`` for the ``n - 1``-th new job a late fault is tried on.
    attempt: int = 1


class Run:
    """The chaos run over ``cluster`` (see the module docstring)."""

    def __init__(
        self,
        plan: Plan,
        cp: ControlPlane,
        cluster: Cluster,
        operator: Callable[[], Process],
        kwok_manifest: Callable[[str], dict[str, Any]],
        real_manifest: Callable[[str, int], dict[str, Any]],
        real_output: Callable[[str], list[str]],
        log: Callable[[str], None] = print,
    ) -> None:
        self.plan = plan
        self.cp = cp
        self.cluster = cluster
        self.start_operator = operator
        self.random = random.Random(plan.seed)
        self.log = log
        self.real_manifest = real_manifest
        self.real_output = real_output
        self.figures = Figures(seed=plan.seed, lifecycles=plan.lifecycles)
        self.jobs = [
            Job(f"kwok-{i}", self.random.choice(KWOK_SCENARIOS), False, kwok_manifest(f"kwok-{i}"))
            for i in range(plan.kwok_jobs)
        ] + [
            Job(
                f"real-{i}",
                REAL_SCENARIOS[i % len(REAL_SCENARIOS)],
                True,
                real_manifest(f"real-{i}", plan.real_steps),
            )
            for i in range(plan.real_jobs)
        ]
        self.random.shuffle(self.jobs)
        #: (seconds from the start, component): drawn here, before the fault threads
        #: share the generator, so a seed replays the same restarts.
        self.restart_moments = sorted(
            (self.random.uniform(5.0, plan.restart_window), name)
            for name in ("kube-apiserver", "kube-controller-manager")
            for _ in range(plan.restarts_each)
        )
        self._stop = threading.Event()
        self.operator: Process | None = None

    # -- faults ----------------------------------------------------------------------------

    def _operator_up(self) -> None:
        """Start the operator; while the API server restarts it may exit at once, so
        try again until it serves."""
        deadline = time.monotonic() + 120
        while True:
            try:
                self.operator = self.start_operator()
                return
            except ComponentError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def _kill_operator_repeatedly(self) -> None:
        low, high = self.plan.kill_interval
        while not self._stop.wait(self.random.uniform(low, high)):
            if self.operator is not None:
                self.operator.kill()
                self.figures.kills += 1
            self._operator_up()

    def _restart_control_plane(self) -> None:
        started = time.monotonic()
        for at, name in self.restart_moments:
            if self._stop.wait(max(0.0, at - (time.monotonic() - started))):
                return
            seconds = self.cp.restart(name)
            self.figures.restarts[name] += 1
            self.log(f"chaos: restarted {name} ({seconds:.1f}s to ready)")

    # -- lifecycles --------------------------------------------------------------------------

    def _progress(self, job: Job, step: int, timeout: float) -> None:
        def reached() -> bool:
            ftj = self.cluster.ftj(job.name) or {}
            progress = ftj.get("status", {}).get("progress") or {}
            return int(progress.get("step") or 0) >= step

        wait_until(reached, f"{job.name} reached step {step}", timeout)

    def _suspend_and_resume(self, job: Job, timeout: float) -> bool:
        """Suspend the job, then resume it; whether it was suspended (``False``: it had
        Succeeded first)."""
        self.cluster.patch_spec(job.name, {"suspend": True})

        def suspended() -> str | None:
            state = self.cluster.state(job.name)
            if state == "Suspended" and not self.cluster.pods(job.name):
                return "suspended"
            return "finished" if state == "Succeeded" else None

        outcome = wait_until(suspended, f"{job.name} is Suspended without pods", timeout)
        self.cluster.patch_spec(job.name, {"suspend": False})
        return outcome == "suspended"

    def _evict(self, job: Job, timeout: float) -> bool:
        """Evict the job's trainer pod; whether that interrupted it (a replacement pod
        follows) rather than ending a trainer that had finished."""

        def running() -> tuple[str | None] | None:
            pods = [p for p in self.cluster.pods(job.name) if p.status.phase == "Running"]
            if pods:
                return (str(pods[0].metadata.name),)
            return (None,) if self.cluster.state(job.name) == "Succeeded" else None

        (pod,) = wait_until(running, f"{job.name} has a Running pod, or Succeeded", timeout)
        if pod is None:
            return False
        self.cluster.evict(pod)

        def after() -> str | None:
            if any(p.metadata.name != pod for p in self.cluster.pods(job.name)):
                return "replaced"
            return "finished" if self.cluster.state(job.name) == "Succeeded" else None

        outcome = wait_until(after, f"{job.name} replaced its evicted pod, or Succeeded", timeout)
        return outcome == "replaced"

    def _interrupt(self, job: Job, timeout: float) -> None:
        """Suspend and resume, or evict, a real-node job once it trains; when that came
        after training had ended, do the same to a new job (:data:`RETRIES`)."""
        self._progress(job, 2, timeout)
        if job.scenario == "suspend":
            landed = self._suspend_and_resume(job, timeout)
        else:
            landed = self._evict(job, timeout)
        if landed:
            return
        job.too_late = True
        self.figures.too_late.append(job.name)
        if job.attempt > RETRIES:
            raise RuntimeError(f"the {job.scenario} came after training ended {job.attempt} times")
        name = f"{job.name}-again"
        manifest = self.real_manifest(name, self.plan.real_steps)
        again = Job(name, job.scenario, True, manifest, attempt=job.attempt + 1)
        self.jobs.append(again)
        self.figures.lifecycles += 1
        self._lifecycle(again)

    def _lifecycle(self, job: Job) -> None:
        timeout = self.plan.timeout
        try:
            self.cluster.create(job.manifest)
            if job.real:
                if job.scenario != "train":
                    self._interrupt(job, timeout)
                return
            pod = self.cluster.running_pod(job.name, timeout)
            if job.scenario == "fail":
                self.cluster.end_kwok_trainer(pod, "Failed", 3, FAILURE_SUMMARY)
            elif job.scenario == "delete":
                self.cluster.delete(job.name)
            else:
                if job.scenario == "suspend":
                    self._suspend_and_resume(job, timeout)
                    pod = self.cluster.running_pod(job.name, timeout)
                self.cluster.end_kwok_trainer(pod, "Succeeded", 0, SUCCESS_SUMMARY)
        except Exception as error:  # a lifecycle that could not be driven is "lost"
            job.error = f"{type(error).__name__}: {error}"

    # -- the run -----------------------------------------------------------------------------

    def run(self, audit_log: Path) -> Figures:
        started = time.monotonic()
        self._operator_up()
        faults = [
            threading.Thread(target=self._kill_operator_repeatedly, daemon=True),
            threading.Thread(target=self._restart_control_plane, daemon=True),
        ]
        restarts = faults[1]
        lifecycles = [threading.Thread(target=self._lifecycle, args=(j,)) for j in self.jobs]
        try:
            for thread in faults:
                thread.start()
            for thread in lifecycles:
                thread.start()
                time.sleep(self.random.uniform(0.0, 0.3))
            for thread in lifecycles:
                thread.join(self.plan.timeout)
            restarts.join(self.plan.timeout)  # every planned restart happens
            self._wait_for_outcomes(started)
        finally:
            self._stop.set()
            for thread in faults:
                thread.join(120)
        # Faults over: one steady operator settles what is left, then the checks.
        try:
            self._settle()
            self._check(audit_log)
        finally:
            if self.operator is not None:
                self.operator.stop()
        self.figures.seconds = time.monotonic() - started
        return self.figures

    def _outcome_reached(self, job: Job) -> bool:
        expected = EXPECTED[job.scenario]
        if expected is None:
            return self.cluster.ftj(job.name) is None
        return self.cluster.state(job.name) == expected

    def _wait_for_outcomes(self, started: float) -> None:
        deadline = started + self.plan.timeout
        while time.monotonic() < deadline:
            if all(job.error or self._outcome_reached(job) for job in self.jobs):
                return
            time.sleep(1.0)

    def _settle(self) -> None:
        if self.operator is None or not self.operator.alive():
            self._operator_up()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(job.error or self._outcome_reached(job) for job in self.jobs):
                break
            time.sleep(1.0)

    def _check(self, audit_log: Path) -> None:
        figures = self.figures
        for job in self.jobs:
            expected = EXPECTED[job.scenario]
            if job.error:
                figures.lost[job.name] = job.error[:300]
            elif not self._outcome_reached(job):
                figures.lost[job.name] = (
                    f"{job.scenario}: expected {expected or 'deleted'}, "
                    f"state {self.cluster.state(job.name)}"
                )
            if expected is None:
                try:
                    wait_until(
                        lambda job=job: not self.cluster.children(job.name),
                        "children collected",
                        60,
                    )
                except TimeoutError:
                    figures.orphans += self.cluster.children(job.name)
            if job.real and expected == "Succeeded":
                figures.real_problems += self._real_problems(job)
        for (namespace, name), count in creates_per_job(audit_log).items():
            if namespace == self.cluster.namespace and count > 1:
                figures.duplicates[name] = count - 1
        for ftj in self.cluster.ftjs():
            meta, status = ftj["metadata"], ftj.get("status") or {}
            if status.get("observedGeneration") != meta.get("generation"):
                figures.generation_lag.append(
                    f"{meta['name']}: {status.get('observedGeneration')} != {meta['generation']}"
                )

    def _real_problems(self, job: Job) -> list[str]:
        status = (self.cluster.ftj(job.name) or {}).get("status") or {}
        step = (status.get("progress") or {}).get("step")
        problems = []
        # A pod deleted as it ended, while the operator was down, takes the trainer's
        # summary (the final step) with it; the operator says so (controller/status.py).
        unread = job.too_late and "read the trainer's summary" in (
            self.cluster.condition(job.name, "Succeeded").get("message", "")
        )
        if step != self.plan.real_steps and not unread:
            problems.append(f"{job.name}: final step {step}, expected {self.plan.real_steps}")
        keys = set(self.real_output(job.name))
        if not {"adapter_model.safetensors", "manifest.json"} <= keys:
            problems.append(f"{job.name}: no adapter and manifest in S3 ({sorted(keys)[:5]})")
        if job.scenario == "preempt" and not job.too_late and not status.get("restarts"):
            problems.append(f"{job.name}: evicted, but restarts is {status.get('restarts')}")
        return problems
