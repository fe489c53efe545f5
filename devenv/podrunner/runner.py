"""The I/O part of the pod runner: watch pods, run processes, write status, finalise deletes.

One thread per local-exec node watches that node's pods (field selector
``spec.nodeName=<node>``, never every pod); one thread per pod runs its process. Nodes
are found by their label :data:`~devenv.cluster.LOCAL_EXEC_LABEL` (polled: a
dev cluster has a handful of nodes) unless the names are given.

What the runner does for a pod, in the kubelet's order:

1. report ``Pending`` with ``ContainerCreating``, the pod IP (``127.x.y.z``, one per
   pod, never reused while the runner lives) and the host IP ``127.0.0.1``;
2. resolve the environment and volumes (:mod:`.plan`); a missing Secret or ConfigMap
   is reported as the kubelet does (``CreateContainerConfigError`` /
   ``ContainerCreating`` with the message) and retried every few seconds;
3. start the process in its own session, stdout and stderr to the pod's log file;
   report ``Running``;
4. when it exits, report the terminated state (exit code, reason, termination message)
   and the phase; restart it under ``restartPolicy: OnFailure``/``Always`` (backoff
   1 s doubling to 30 s, ``restartCount`` and ``lastState`` kept);
5. when the pod gets a ``deletionTimestamp``: SIGTERM to the main process only (a
   container runtime signals PID 1 only; a program must forward signals to its
   children itself), wait ``deletionGracePeriodSeconds``, then SIGKILL to the whole
   process group; report the final status, then delete the pod with grace period 0
   and the pod's UID as precondition, as the kubelet does. Finalizers (the Job
   controller's ``batch.kubernetes.io/job-tracking``) are left to their owners.

Pods that are already running when the runner starts (a previous runner died with its
processes) are reported ``Failed`` with ``ContainerStatusUnknown``, as a kubelet does
for containers it lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devenv.podrunner import plan
from devenv.podrunner.logserver import LogServer
from devenv.podrunner.status import (
    ContainerState,
    Running,
    Terminated,
    Waiting,
    exit_reason,
    pod_status,
    termination_message,
)
from devenv.process import _die_with_parent

log = logging.getLogger("devenv.podrunner")

LOCAL_EXEC_LABEL = "kubetune.io/local-exec"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
HOST_IP = "127.0.0.1"
CONFIG_RETRY_SECONDS = 3.0
WATCH_TIMEOUT_SECONDS = 30
NODE_POLL_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0
DEFAULT_GRACE_SECONDS = 30
_STRATEGIC = "application/strategic-merge-patch+json"


def now() -> datetime:
    return datetime.now(UTC)


def loopback_addresses() -> Iterator[str]:
    """Pod addresses in order: 127.0.0.2, 127.0.0.3, ... (no .0/.255 last octets).

    127.0.0.1 is the host's. Linux routes all of 127/8 to the loopback interface, so
    binding any of these needs no configuration.
    """
    for i in range(2, 1 << 24):
        if i & 255 not in (0, 255):
            yield f"127.{i >> 16}.{(i >> 8) & 255}.{i & 255}"


def runnable_node(node: Mapping[str, Any]) -> bool:
    """Whether the runner may run ``node``'s pods: a fake (KWOK) node marked local-exec.

    A safety net against pointing the runner at a real cluster: a real node, even one
    labelled by mistake, has a kubelet, and two agents fighting over its pods' status
    would be worse than a pod that never starts.
    """
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return (
        labels.get(LOCAL_EXEC_LABEL) == "true" and annotations.get(KWOK_NODE_ANNOTATION) == "fake"
    )


class ApiLookup:
    """:class:`~devenv.podrunner.plan.Lookup` reading Secrets/ConfigMaps live."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def _get(self, read: Callable[..., Any], namespace: str, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            response = read(name, namespace, _preload_content=False)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return json.loads(response.data)

    def secret(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        obj = self._get(self.core.read_namespaced_secret, namespace, name)
        return None if obj is None else plan.secret_data(obj)

    def config_map(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        obj = self._get(self.core.read_namespaced_config_map, namespace, name)
        return None if obj is None else plan.config_map_data(obj)

    def service_account_token(
        self, pod: Mapping[str, Any], audience: str | None, expiration_seconds: int
    ) -> str:
        meta = pod["metadata"]
        spec: dict[str, Any] = {
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if audience:
            spec["audiences"] = [audience]
        response = self.core.create_namespaced_service_account_token(
            (pod.get("spec") or {}).get("serviceAccountName", "default"),
            meta["namespace"],
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            _preload_content=False,
        )
        return str(json.loads(response.data)["status"]["token"])


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase", "Pending"))


def _started_before(pod: Mapping[str, Any]) -> bool:
    """Whether some runner already started the pod's container."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if set(status.get("state") or {}) & {"running", "terminated"}:
            return True
    return False


class LocalPod:
    """One pod's process and its status reports; the work happens in :meth:`run`."""

    def __init__(self, runner: PodRunner, pod: Mapping[str, Any], pod_ip: str) -> None:
        self.runner = runner
        self.pod: Mapping[str, Any] = pod
        meta = pod["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.pod_ip = pod_ip
        self.dir = runner.workdir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.log_file = self.dir / "container.log"
        self.deleting = threading.Event()
        self.finished = threading.Event()
        self.gone = False
        self.start_time = now()
        self.restart_count = 0
        self.last_state: Terminated | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=self.run, name=f"pod-{self.name}", daemon=True)

    def __repr__(self) -> str:
        return f"<pod {self.namespace}/{self.name}>"

    # -- events from the watch -------------------------------------------------------

    def update(self, pod: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Newest object from the watch; a deletion starts the termination."""
        self.pod = pod
        if deleted:
            self.gone = True
        if deleted or pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()

    def grace_seconds(self) -> float:
        if self.gone:
            return 0.0
        meta, spec = self.pod["metadata"], self.pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
        return float(grace)

    # -- the pod's life --------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:
            # A bug here must not leave the pod Running forever: end it visibly.
            log.error("%r: pod runner error\n%s", self, traceback.format_exc())
            self.stop_process()
            with contextlib.suppress(Exception):
                message = f"pod runner error: {type(e).__name__}: {e}"
                self.report(Terminated(128, "StartError", self.start_time, now(), message))
        finally:
            self.finished.set()

    def _run(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.report(Waiting("ContainerCreating"))
        launch = self._prepare()
        if launch is None:  # deleted before it could start
            self.report(
                Terminated(
                    137,
                    "ContainerStatusUnknown",
                    self.start_time,
                    now(),
                    "the pod was deleted before its container started",
                )
            )
            self.finalize()
            return
        backoff = 1.0
        while True:
            started = now()
            launch.termination_path.write_bytes(b"")
            try:
                code, sig = self._execute(launch, started)
                message = termination_message(
                    launch.termination_path.read_bytes(),
                    self.log_file.read_text(errors="replace"),
                    code,
                    plan.main_container(self.pod).get("terminationMessagePolicy", "File"),
                )
                term = Terminated(code, exit_reason(code), started, now(), message, sig)
            except OSError as e:  # exec failed (permissions, a missing directory...)
                term = Terminated(128, "StartError", started, now(), str(e))
                code = term.exit_code
            log.info("%r: container exited with code %d", self, code)
            policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not restart or self.deleting.is_set():
                self.report(term)
                break
            self.last_state, self.restart_count = term, self.restart_count + 1
            self.report(Waiting("CrashLoopBackOff", f"back-off {backoff:.0f}s restarting"))
            if self.deleting.wait(backoff):
                self.report(term)
                break
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        self.finalize()

    def _prepare(self) -> plan.LaunchPlan | None:
        """Resolve env and volumes, retrying while references are missing."""
        while not self.deleting.is_set():
            try:
                launch = plan.build_launch(
                    self.pod,
                    self.runner.lookup,
                    self.dir,
                    pod_ip=self.pod_ip,
                    host_ip=HOST_IP,
                    memory_root=self.runner.memory_root(self.uid),
                )
                self._materialize(launch)
                return launch
            except plan.ConfigError as e:
                log.warning("%r: %s: %s", self, e.reason, e)
                self.report(Waiting(e.reason, str(e)))
            except Exception as e:  # the API server is unreachable or refuses: retry
                log.warning("%r: preparing failed: %s", self, e)
            self.deleting.wait(CONFIG_RETRY_SECONDS)
        return None

    def _materialize(self, launch: plan.LaunchPlan) -> None:
        for volume in launch.volumes.values():
            if not volume.create:
                continue
            volume.host_dir.mkdir(parents=True, exist_ok=True)
            for rel, data in volume.files.items():
                target = volume.host_dir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        for mount in launch.mounts:  # subPaths
            if not mount.host_path.exists():
                mount.host_path.mkdir(parents=True)
        (self.dir / "home").mkdir(exist_ok=True)
        launch.cwd.mkdir(parents=True, exist_ok=True)

    def _execute(self, launch: plan.LaunchPlan, started: datetime) -> tuple[int, int | None]:
        """Run the process once; return (exit code, signal or None)."""
        with self.log_file.open("ab") as out:
            self.process = subprocess.Popen(
                launch.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=launch.env,
                cwd=launch.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        log.info(
            "%r: started pid %d at %s: %s",
            self,
            self.process.pid,
            self.pod_ip,
            " ".join(launch.argv),
        )
        self.report(Running(started))
        returncode = self._wait(self.process)
        self.stop_process()  # the container ends with its main process: no orphans
        if returncode < 0:
            return 128 - returncode, -returncode
        return returncode, None

    def _wait(self, process: subprocess.Popen[bytes]) -> int:
        term_sent: float | None = None
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return process.wait(timeout=0.2)
            if not self.deleting.is_set():
                continue
            if term_sent is None:
                log.info("%r: deleted: SIGTERM, grace %.0fs", self, self.grace_seconds())
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
                term_sent = time.monotonic()
            if time.monotonic() - term_sent >= self.grace_seconds():
                log.info("%r: grace period over: SIGKILL", self)
                self.stop_process()

    def stop_process(self) -> None:
        """SIGKILL the whole process group (the container's cgroup, in a kubelet)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    # -- API writes ------------------------------------------------------------------

    def report(self, state: ContainerState) -> None:
        """Write the pod's status (strategic merge: others' conditions are kept)."""
        if self.gone:
            return
        body = {
            "status": pod_status(
                self.pod,
                state,
                pod_ip=self.pod_ip,
                host_ip=HOST_IP,
                start_time=self.start_time,
                now=now(),
                restart_count=self.restart_count,
                last_state=self.last_state,
            )
        }
        self.runner.patch_status(self.namespace, self.name, body)

    def finalize(self) -> None:
        """Once terminal: the final delete of a pod marked for deletion."""
        if self.deleting.is_set() and not self.gone:
            self.runner.delete_pod(self.namespace, self.name, self.uid)

    def cleanup(self) -> None:
        """Remove the pod's volumes (the log file stays for post-mortems)."""
        root = self.runner.memory_root(self.uid)
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(self.dir / "volumes", ignore_errors=True)


class PodRunner:
    """Runs the pods of local-exec nodes as local processes (see the package docstring).

    ``start()`` returns at once; ``stop()`` kills every process and stops the watches.
    """

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *,
        nodes: Sequence[str] | None = None,
    ) -> None:
        from kubernetes import client, config

        self.workdir = Path(workdir)
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.lookup = ApiLookup(self.core)
        self.fixed_nodes = list(nodes) if nodes is not None else None
        self.pods: dict[str, LocalPod] = {}
        self._by_name: dict[tuple[str, str], LocalPod] = {}
        self.log_server: LogServer | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watched: dict[str, threading.Thread] = {}
        self._finalized: set[str] = set()
        self._refused: set[str] = set()
        self._addresses = loopback_addresses()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PodRunner:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_server = LogServer(self._resolve_log, self.workdir).start()
        thread = threading.Thread(target=self._nodes_loop, name="podrunner-nodes", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            pods = list(self.pods.values())
        for pod in pods:
            pod.gone = True  # no more status writes
            pod.deleting.set()
            pod.stop_process()
            pod.cleanup()
        for pod in pods:
            pod.thread.join(timeout=5)
        if self.log_server is not None:
            self.log_server.stop()
        self.api.close()

    def memory_root(self, uid: str) -> Path | None:
        """Per-pod tmpfs directory for ``medium: Memory`` emptyDirs, if /dev/shm is usable."""
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK):
            return shm / f"kubetune-podrunner-{uid}"
        return None

    def log_file(self, namespace: str, name: str) -> Path | None:
        """The log file of the newest local pod with this name, also after the pod was
        deleted (for tests and ``kubetune dev``)."""
        with self._lock:
            local = self._by_name.get((namespace, name))
        return local.log_file if local else None

    def _resolve_log(
        self, namespace: str, name: str, container: str
    ) -> tuple[Path, Callable[[], bool]] | None:
        """For the log server: the newest pod's log file and whether it still runs."""
        with self._lock:
            local = self._by_name.get((namespace, name))
        if local is None:
            return None
        if (local.pod.get("spec") or {}).get("containers", [{}])[0].get("name") != container:
            return None
        return local.log_file, lambda: not local.finished.is_set()

    # -- watches ---------------------------------------------------------------------

    def _nodes(self) -> list[dict[str, Any]]:
        if self.fixed_nodes is None:
            listed = self._get_json(self.core.list_node, label_selector=f"{LOCAL_EXEC_LABEL}=true")
            nodes = list(listed["items"])
        else:
            nodes = [self._get_json(self.core.read_node, name=name) for name in self.fixed_nodes]
        runnable = [n for n in nodes if runnable_node(n)]
        for node in nodes:
            if node not in runnable and node["metadata"]["name"] not in self._refused:
                self._refused.add(node["metadata"]["name"])
                log.error(
                    "node %s is not a KWOK node with %s=true: its pods are left alone",
                    node["metadata"]["name"],
                    LOCAL_EXEC_LABEL,
                )
        return runnable

    def _advertise(self, node: Mapping[str, Any]) -> None:
        """Put the log server's address in the node's status once KWOK made it Ready
        (KWOK adds its own addresses while initialising the node)."""
        if self.log_server is None:
            return
        status = node.get("status") or {}
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
        )
        wanted = self.log_server.node_status()
        current = {k: status.get(k) for k in wanted}
        if ready and current != wanted:
            self.core.patch_node_status(
                node["metadata"]["name"],
                {"status": wanted},
                _content_type="application/merge-patch+json",
            )

    def _nodes_loop(self) -> None:
        while not self._stop.is_set():
            try:
                for obj in self._nodes():
                    node = obj["metadata"]["name"]
                    self._advertise(obj)
                    if node not in self._watched:
                        log.info("running the pods of node %s", node)
                        thread = threading.Thread(
                            target=self._watch_node,
                            args=(node,),
                            name=f"watch-{node}",
                            daemon=True,
                        )
                        self._watched[node] = thread
                        thread.start()
            except Exception as e:  # API not reachable (yet): try again
                log.warning("listing local-exec nodes failed: %s", e)
            self._stop.wait(NODE_POLL_SECONDS)

    def _get_json(self, call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        response = call(_preload_content=False, **kwargs)
        return dict(json.loads(response.data))

    def _watch_node(self, node: str) -> None:
        """List, then watch from the list's resourceVersion; re-list when it expires."""
        from kubernetes.watch.watch import iter_resp_lines

        selector = f"spec.nodeName={node}"
        while not self._stop.is_set():
            try:
                listed = self._get_json(
                    self.core.list_pod_for_all_namespaces, field_selector=selector
                )
                version = listed["metadata"]["resourceVersion"]
                for pod in listed["items"]:
                    self._on_pod(pod, deleted=False)
                while not self._stop.is_set():
                    response: Any = self.core.list_pod_for_all_namespaces(
                        field_selector=selector,
                        watch=True,
                        resource_version=version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=WATCH_TIMEOUT_SECONDS,
                        _preload_content=False,
                    )
                    try:
                        for line in iter_resp_lines(response):
                            if self._stop.is_set():
                                return
                            event = json.loads(line)
                            obj = event["object"]
                            if event["type"] == "ERROR":
                                raise _Expired(str(obj.get("message")))
                            version = obj["metadata"]["resourceVersion"]
                            if event["type"] != "BOOKMARK":
                                self._on_pod(obj, deleted=event["type"] == "DELETED")
                    finally:
                        response.release_conn()
            except _Expired as e:
                log.info("watch of node %s expired (%s): listing again", node, e)
            except Exception:
                if self._stop.is_set():
                    return
                log.warning("watch of node %s failed:\n%s", node, traceback.format_exc())
                self._stop.wait(1.0)

    def _on_pod(self, pod: dict[str, Any], *, deleted: bool) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self._lock:
            local = self.pods.get(uid)
            if local is not None:
                local.update(pod, deleted=deleted)
                if deleted:
                    local.cleanup()
                    del self.pods[uid]
                return
            if deleted:
                return
            if _phase(pod) in ("Succeeded", "Failed") or _started_before(pod):
                self._adopt_finished(pod)
                return
            local = LocalPod(self, pod, next(self._addresses))
            self.pods[uid] = local
            self._by_name[(local.namespace, local.name)] = local
            local.update(pod)
        log.info("%r: new pod, pod IP %s", local, local.pod_ip)
        local.thread.start()

    def _adopt_finished(self, pod: Mapping[str, Any]) -> None:
        """A pod this runner didn't start: lost if it looks alive; finalise if deleted."""
        meta = pod["metadata"]
        if _phase(pod) not in ("Succeeded", "Failed"):
            status = pod.get("status") or {}
            ip = status.get("podIP", HOST_IP)
            lost = Terminated(
                137,
                "ContainerStatusUnknown",
                now(),
                now(),
                "The container could not be located when the pod was terminated",
            )
            started = (
                datetime.fromisoformat(status["startTime"].replace("Z", "+00:00"))
                if status.get("startTime")
                else now()
            )
            body = {
                "status": pod_status(
                    pod, lost, pod_ip=ip, host_ip=HOST_IP, start_time=started, now=now()
                )
            }
            self.patch_status(meta["namespace"], meta["name"], body)
        if meta.get("deletionTimestamp") and meta["uid"] not in self._finalized:
            self._finalized.add(meta["uid"])
            self.delete_pod(meta["namespace"], meta["name"], meta["uid"])

    # -- writes ----------------------------------------------------------------------

    def patch_status(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        for attempt in range(5):
            try:
                self.core.patch_namespaced_pod_status(
                    name, namespace, dict(body), _content_type=_STRATEGIC
                )
                return
            except ApiException as e:
                if e.status == 404:
                    return
                if attempt == 4 or e.status not in (409, 429, 500, 503, 504):
                    log.warning(
                        "status of %s/%s not written: %s %s", namespace, name, e.status, e.body
                    )
                    return
            time.sleep(0.2 * (attempt + 1))

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet's final delete: grace period 0, only this incarnation (UID)."""
        from kubernetes.client import V1DeleteOptions, V1Preconditions
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.delete_namespaced_pod(
                name,
                namespace,
                body=V1DeleteOptions(
                    grace_period_seconds=0, preconditions=V1Preconditions(uid=uid)
                ),
            )
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("final delete of %s/%s failed: %s", namespace, name, e.status)


class _Expired(Exception):
    """The watch's resourceVersion is too old (410) or the server sent an error event."""
