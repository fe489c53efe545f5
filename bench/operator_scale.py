"""Benchmark: what the operator costs per FineTuneJob, next to what the API server can take.

    python -m bench.operator_scale [--phases raw,burst,steady,progress] [--json]
    make bench-operator

Every phase starts a fresh test control plane (:mod:`devenv.cluster`) whose API server
audit-logs the requests of the operator's identity only (its own client certificate
user), installs the CRD and, except ``raw``, runs ``kubetune operator`` as its own
process. Jobs ask for one H100 and their pods keep running (KWOK's
``kubetune.io/test-phase: Running``), so 16 run and the rest wait Unschedulable, as a
sweep submitted to a busy cluster would.

Phases:

``raw``
    The API server's own pace: the same ConfigMaps and Jobs the operator renders,
    created by a plain client with the same concurrency (``--clients`` threads), no
    operator. Time until every Job exists; the operator phases report their ratio to it.
``burst``
    ``--burst`` FineTuneJobs created at once: time until every Job exists, p50/p95 from
    a FineTuneJob's create response to its Job's watch event, API requests per job by
    verb and resource (from the audit log, until every job's status is past the steps
    every job passes — Unschedulable or Running — plus ``--settle`` seconds), operator
    CPU over API-server CPU in that time, the operator's RSS then. Then the operator is
    killed (SIGKILL) and started again: time until it has resumed every job, and the
    requests that cost.
``steady``
    ``--rate`` FineTuneJobs per second for ``--seconds``: p50/p95 create -> Job, time
    until every Job exists, and the operator's RSS when it holds 100, 500 and 1,000 jobs
    (the slope in MB per 1,000 jobs).
``progress``
    ``--progress-jobs`` CPU jobs that all run; one local HTTP server answers for every
    pod address (KWOK gives pods loopback addresses here) with a trainer-format metrics
    page whose step grows by one per second. Over ``--progress-seconds``: operator CPU
    per minute, status writes (progress alone counted apart), and how stale
    ``status.progress`` is (seconds between a step being served and now, while it is
    what the status shows).

The machine is shared: each phase reports the load average and the CPU seconds used by
processes outside the bench (``foreign_cpu_seconds``), so numbers from a busy machine
can be told apart. Targets (printed next to the numbers, never asserted by a test):
burst of 1,000 -> every Job in <= 25 s; steady p95 <= 1 s; <= 3.0 writes per job;
operator CPU <= 0.30 of the API server's; RSS <= 150 MB at 1,000 jobs; the restart
resumes everything in < 10 s.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import signal
import statistics
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from kubernetes import client, config
from prometheus_client import generate_latest

from devenv import build
from devenv.cluster import DEFAULT_NODES, TEST_PHASE_ANNOTATION, ControlPlane, FakeNode
from devenv.process import Process, free_port, poll, wait_for
from kubetune.controller.kube import Kube
from kubetune.controller.status import in_transit
from kubetune.render.children import render_children
from kubetune.render.labels import JOB_LABEL
from kubetune.render.options import RenderOptions
from kubetune_contract.api import GROUP, PLURAL, VERSION, parse_finetunejob
from kubetune_contract.api.status import FineTuneJobStatus
from kubetune_trainer.metrics import TrainerMetrics

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
OPERATOR_USER = "kubetune-operator"
AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    users: ["{OPERATOR_USER}"]
  - level: None
"""
#: CPU nodes for the progress phase: room for 1,100 running pods besides the defaults.
PROGRESS_NODES = tuple(FakeNode(f"cpu-bench-{i}", cpu="1000", memory="8Ti") for i in range(10))
TARGETS = {
    "burst_all_jobs_seconds": 25.0,
    "steady_p95_seconds": 1.0,
    "writes_per_job": 3.0,
    "cpu_ratio": 0.30,
    "rss_mb_at_1000": 150.0,
    "restart_seconds": 10.0,
}


def operator_kubeconfig(cp: ControlPlane) -> Path:
    """A kubeconfig for the operator: its own user (in ``system:masters``), which the
    audit policy records."""
    return cp.client_kubeconfig("operator", OPERATOR_USER, ("system:masters",))


# -- measuring ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def machine_busy_seconds() -> float:
    """CPU seconds every core has been busy since boot (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of named processes over a window, and of everything else."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {**pids, "bench": os.getpid()}
        self.load_before = os.getloadavg()[0]
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine_before = machine_busy_seconds()

    def read(self) -> dict[str, Any]:
        used = {name: cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}
        machine = machine_busy_seconds() - self.machine_before
        return {
            "seconds": round(time.monotonic() - self.started, 1),
            "cpu_seconds": {name: round(value, 1) for name, value in used.items()},
            "foreign_cpu_seconds": round(max(0.0, machine - sum(used.values())), 1),
            "load_average_before": round(self.load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2),
        }


def operator_requests(audit_log: Path, since: float, until: float) -> Counter[str]:
    """Requests of the operator's identity in [since, until] (epoch seconds), by
    ``VERB resource[/subresource]``."""
    counts: Counter[str] = Counter()
    with audit_log.open() as lines:
        for line in lines:
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete":
                continue
            stamp = datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
            if since - 1 <= stamp <= until + 1:
                ref = event.get("objectRef") or {}
                resource = ref.get("resource", "?") + (
                    "/" + ref["subresource"] if ref.get("subresource") else ""
                )
                counts[f"{event['verb']} {resource}"] += 1
    return counts


def writes_per_job(requests: Counter[str], jobs: int) -> dict[str, float]:
    """Writes per job: of objects (children, status, FineTuneJob patches) and events."""
    writes = ("create", "patch", "update", "delete")
    objects = sum(n for what, n in requests.items() if what.startswith(writes))
    events = requests.get("create events", 0)
    return {
        "writes_per_job": round((objects - events) / jobs, 2),
        "events_per_job": round(events / jobs, 2),
        "requests_per_job": round(sum(requests.values()) / jobs, 2),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(created: dict[str, float], seen: dict[str, float]) -> dict[str, float]:
    values = [seen[name] - at for name, at in created.items() if name in seen]
    return {
        "p50_seconds": round(percentile(values, 0.5), 3),
        "p95_seconds": round(percentile(values, 0.95), 3),
        "mean_seconds": round(statistics.fmean(values), 3),
    }


# -- the cluster side -----------------------------------------------------------------


def watch_json(
    api: client.ApiClient, path: str, stop: threading.Event, **query: str
) -> Iterator[dict[str, Any]]:
    """Watch events of ``path`` as plain JSON (no model deserialisation: the bench
    shares the CPUs it measures), from the current state on, until ``stop``."""
    pool = api.rest_client.pool_manager
    version = ""
    while not stop.is_set():
        query = {**query, "watch": "true", "timeoutSeconds": "5"}
        if version:
            query["resourceVersion"] = version
        url = f"{api.configuration.host}{path}?{urlencode(query)}"
        response = pool.request("GET", url, preload_content=False)
        try:
            for line in response:
                event = json.loads(line)
                if event["type"] == "ERROR":  # e.g. 410 Gone: start over from now
                    version = ""
                    break
                version = event["object"]["metadata"]["resourceVersion"]
                yield event
        finally:
            response.release_conn()


class Observer:
    """When each Job first appeared, when each FineTuneJob's status first was past the
    steps every job passes (Unschedulable, Running, ...) and when Running, and the step
    its status.progress shows (two watches in threads)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.jobs: dict[str, float] = {}
        self.settled: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.steps: dict[str, int] = {}
        self._stop = threading.Event()
        jobs = f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
        ftjs = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
        self._threads = [
            threading.Thread(target=self._jobs, args=(api, jobs), daemon=True),
            threading.Thread(target=self._finetunejobs, args=(api, ftjs), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _jobs(self, api: client.ApiClient, path: str) -> None:
        for event in watch_json(api, path, self._stop, labelSelector=JOB_LABEL):
            self.jobs.setdefault(event["object"]["metadata"]["name"], time.monotonic())

    def _finetunejobs(self, api: client.ApiClient, path: str) -> None:
        for event in watch_json(api, path, self._stop):
            obj = event["object"]
            name, status = obj["metadata"]["name"], obj.get("status") or {}
            known = name in self.settled or not status.get("state")
            if not known and not in_transit(FineTuneJobStatus.model_validate(status)):
                self.settled[name] = time.monotonic()
            if status.get("state") == "Running":
                self.running.setdefault(name, time.monotonic())
            if (progress := status.get("progress")) is not None:
                self.steps[name] = int(progress.get("step", 0))

    def stop(self) -> None:
        self._stop.set()


def manifest(index: int, gpus: int = 1) -> dict[str, Any]:
    name = f"job-{index:04d}"
    resources: dict[str, Any] = {"gpus": gpus}
    if gpus:
        resources["gpuType"] = "NVIDIA-H100-80GB-HBM3"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "method": "sft",
            "model": {"uri": "hf://org/model"},
            "adapter": {"type": "lora"},
            "dataset": {"train": {"uri": "s3://data/train.jsonl", "format": "messages"}},
            "output": {"uri": f"s3://models/{name}"},
            "resources": resources,
        },
    }


class Cluster:
    """A fresh control plane for one phase, with the bench's client."""

    def __init__(self, args: argparse.Namespace, nodes: tuple[FakeNode, ...] = ()) -> None:
        self.args = args
        qps = args.controller_qps
        # Pods on loopback addresses (127.64.0.0/16): one local server answers for all.
        self.cp = ControlPlane(
            nodes=(*DEFAULT_NODES, *nodes),
            binaries=build.ensure_built(),
            log=lambda _: None,
            pod_cidr="127.64.0.0/16",
            audit_policy=AUDIT_POLICY,
            controller_manager_flags=(f"--kube-api-qps={qps}", f"--kube-api-burst={qps}")
            if qps
            else (),
        )
        self.operator: Process | None = None
        self.operator_url = ""
        self.profiler: Process | None = None

    def __enter__(self) -> Cluster:
        self.cp.start()
        self.cp.kubectl("apply", "--server-side", "-f", str(self.args.crd))
        self.cp.kubectl("create", "namespace", NAMESPACE)
        poll(
            lambda: self.cp.kubectl("get", "ftj", "-n", NAMESPACE, check=False).returncode == 0,
            what="finetunejobs are served",
        )
        configuration = client.Configuration()
        config.load_kube_config(str(self.cp.kubeconfig), client_configuration=configuration)
        configuration.connection_pool_maxsize = self.args.clients + 4  # + the watches
        self.api = client.ApiClient(configuration)
        self.api.user_agent = "kubetune-bench"
        self.custom = client.CustomObjectsApi(self.api)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_profiler()
        if self.operator is not None:
            self.operator.stop()
        self.cp.stop()

    def profile(self, name: str) -> None:
        """Sample the operator's Python stacks with py-spy (``--py-spy DIR``) until
        :meth:`stop_profiler`: the GIL-holding stacks, collapsed, in ``DIR/name.txt``."""
        if self.args.py_spy is None or self.operator is None:
            return
        self.args.py_spy.mkdir(parents=True, exist_ok=True)
        self.profiler = Process(
            f"py-spy-{name}",
            [
                str(REPO / ".venv" / "bin" / "py-spy"),
                "record",
                "--nonblocking",
                "--gil",
                "--format=raw",
                f"--output={self.args.py_spy / f'{name}.txt'}",
                f"--pid={self.operator.pid}",
            ],
            self.cp.workdir / f"py-spy-{name}.log",
        )

    def stop_profiler(self) -> None:
        if self.profiler is not None:
            os.killpg(self.profiler.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
            self.profiler.popen.wait(30)
            self.profiler = None

    def start_operator(self, name: str, *extra: str) -> Process:
        """``kubetune operator`` for the bench namespace, once its /metrics answers."""
        port = free_port()
        env = {**self.cp.env(), "KUBECONFIG": str(operator_kubeconfig(self.cp))}
        self.operator = Process(
            name,
            [
                str(REPO / ".venv" / "bin" / "kubetune"),
                "operator",
                f"--namespace={NAMESPACE}",
                "--standalone",
                f"--metrics-port={port}",
                "--log-level=warning",
                f"--pod-annotation={TEST_PHASE_ANNOTATION}=Running",
                f"--workers={self.args.workers}",
                *extra,
            ],
            self.cp.workdir / f"{name}.log",
            env=env,
        )
        self.operator_url = f"http://127.0.0.1:{port}/metrics"
        wait_for(
            self.operator,
            lambda: urllib.request.urlopen(self.operator_url, timeout=2),
            what="up",
            timeout=60,
        )
        return self.operator

    def operator_metric(self, prefix: str) -> float:
        """Sum of the operator's samples whose line starts with ``prefix``."""
        with urllib.request.urlopen(self.operator_url, timeout=5) as response:
            page = response.read().decode()
        return sum(float(line.split()[-1]) for line in page.splitlines() if line.startswith(prefix))

    def pids(self) -> dict[str, int]:
        pids = {p.name: p.pid for p in self.cp.procs}
        if self.operator is not None:
            pids["operator"] = self.operator.pid
        return pids

    def create(
        self, indexes: range, gpus: int = 1, at: Callable[[int], float] | None = None
    ) -> dict[str, float]:
        """Create FineTuneJobs from ``--clients`` threads (each at ``at(index)`` on the
        monotonic clock, when given); the create response time of each, by name."""
        created: dict[str, float] = {}

        def one(index: int) -> None:
            if at is not None:
                time.sleep(max(0.0, at(index) - time.monotonic()))
            body = manifest(index, gpus)
            self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            created[body["metadata"]["name"]] = time.monotonic()

        with ThreadPoolExecutor(self.args.clients) as pool:
            list(pool.map(one, indexes))
        return created


# -- phases ---------------------------------------------------------------------------


def raw(args: argparse.Namespace) -> dict[str, Any]:
    """The operator's children, created by a plain client: the API server's pace."""
    options = RenderOptions(pod_annotations={TEST_PHASE_ANNOTATION: "Running"})
    pairs = []
    for index in range(args.burst):
        children = render_children(parse_finetunejob(manifest(index)), options)
        pairs.append([copy.deepcopy(children.configmap), copy.deepcopy(children.batch_job)])
    with Cluster(args) as cluster:
        observer = Observer(cluster.api)
        kube = Kube(cluster.api)
        meter = CpuMeter(cluster.pids())
        started = time.monotonic()

        def create(pair: list[dict[str, Any]]) -> None:
            for child in pair:
                kube.create(NAMESPACE, child)

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(create, pairs))
        poll(lambda: len(observer.jobs) >= args.burst, what="every Job", timeout=args.timeout)
        all_seconds = max(observer.jobs.values()) - started
        cpu = meter.read()
        observer.stop()
    return {"jobs": args.burst, "all_jobs_seconds": round(all_seconds, 2), **cpu}


def restart(cluster: Cluster, jobs: int, args: argparse.Namespace) -> dict[str, Any]:
    """SIGKILL the operator with every job in place; time until a new one has resumed
    them all (derived each job's status), and what that cost the API server."""
    assert cluster.operator is not None
    cluster.operator.popen.kill()
    cluster.operator.popen.wait(10)
    wall_start, started = time.time(), time.monotonic()
    cluster.start_operator("operator-restarted")
    poll(
        lambda: cluster.operator_metric("kubetune_operator_jobs{") >= jobs,
        what="every job resumed",
        timeout=args.timeout,
        interval=0.2,
    )
    seconds = time.monotonic() - started
    time.sleep(args.settle)
    requests = operator_requests(cluster.cp.audit_log, wall_start, time.time())
    return {
        "resume_seconds": round(seconds, 2),
        "requests_per_job": round(sum(requests.values()) / jobs, 2),
        "requests": dict(requests.most_common()),
    }


def burst(args: argparse.Namespace) -> dict[str, Any]:
    with Cluster(args) as cluster:
        cluster.start_operator("operator")
        observer = Observer(cluster.api)
        time.sleep(2)  # let the watches settle before the burst
        cluster.profile("burst")
        meter = CpuMeter(cluster.pids())
        wall_start, started = time.time(), time.monotonic()
        created = cluster.create(range(args.burst))
        poll(lambda: len(observer.jobs) >= args.burst, what="every Job", timeout=args.timeout)
        all_seconds = max(observer.jobs.values()) - started
        poll(
            lambda: len(observer.settled) >= args.burst,
            what="every status settled",
            timeout=args.timeout,
        )
        status_seconds = max(observer.settled.values()) - started
        time.sleep(args.settle)
        cpu = meter.read()
        assert cluster.operator is not None
        rss = {
            "rss_mb": round(rss_mb(cluster.operator.pid), 1),
            "peak_rss_mb": round(rss_mb(cluster.operator.pid, "VmHWM"), 1),
        }
        cluster.stop_profiler()
        requests = operator_requests(cluster.cp.audit_log, wall_start, time.time())
        observer.stop()
        result = {
            "jobs": args.burst,
            "create_seconds": round(max(created.values()) - started, 2),
            "all_jobs_seconds": round(all_seconds, 2),
            "all_settled_seconds": round(status_seconds, 2),
            **latency(created, observer.jobs),
            **cpu,
            "cpu_ratio": round(
                cpu["cpu_seconds"]["operator"] / cpu["cpu_seconds"]["kube-apiserver"], 3
            ),
            **rss,
            **writes_per_job(requests, args.burst),
            "requests": dict(requests.most_common()),
        }
        result["restart"] = restart(cluster, args.burst, args)
    return result


def steady(args: argparse.Namespace) -> dict[str, Any]:
    jobs = round(args.rate * args.seconds)
    marks = sorted(n for n in (100, 500, 1000) if n <= jobs)
    with Cluster(args) as cluster:
        operator = cluster.start_operator("operator")
        observer = Observer(cluster.api)
        time.sleep(2)
        rss: dict[str, float] = {}
        done = threading.Event()

        def sample_rss() -> None:
            while not done.is_set() and len(rss) < len(marks):
                for mark in marks:
                    if str(mark) not in rss and len(observer.jobs) >= mark:
                        rss[str(mark)] = round(rss_mb(operator.pid), 1)
                time.sleep(0.1)

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        cluster.profile("steady")
        meter = CpuMeter(cluster.pids())
        wall_start, started = time.time(), time.monotonic()
        created = cluster.create(range(jobs), at=lambda i: started + i / args.rate)
        poll(lambda: len(observer.jobs) >= jobs, what="every Job", timeout=args.timeout)
        all_seconds = max(observer.jobs.values()) - started
        poll(lambda: len(observer.settled) >= jobs, what="every status", timeout=args.timeout)
        time.sleep(args.settle)
        done.set()
        cpu = meter.read()
        requests = operator_requests(cluster.cp.audit_log, wall_start, time.time())
        observer.stop()
    slope = None
    if len(rss) >= 2:
        low, high = marks[0], marks[-1]
        slope = round((rss[str(high)] - rss[str(low)]) / (high - low) * 1000, 1)
    return {
        "jobs": jobs,
        "rate_per_second": args.rate,
        "create_seconds": round(max(created.values()) - started, 2),
        "all_jobs_seconds": round(all_seconds, 2),
        "after_last_create_seconds": round(max(observer.jobs.values()) - max(created.values()), 2),
        **latency(created, observer.jobs),
        **cpu,
        "cpu_ratio": round(
            cpu["cpu_seconds"]["operator"] / cpu["cpu_seconds"]["kube-apiserver"], 3
        ),
        "rss_mb_at_jobs": rss,
        "rss_slope_mb_per_1000_jobs": slope,
        **writes_per_job(requests, jobs),
        "requests": dict(requests.most_common()),
    }


class TrainerPages:
    """One HTTP server answering for every pod address with a trainer's metrics page;
    its step grows by one per second from start (so a step says when it was served)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        metrics = TrainerMetrics()
        for name, value in {"total_steps": 1e6, "epoch": 0.1, "loss": 1.5}.items():
            metrics.set(name, value)
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                metrics.set("step", pages.step())
                body = generate_latest(metrics.registry)
                # a reader that gave up (its 2 s timeout) has closed the connection
                with contextlib.suppress(ConnectionError):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def step(self) -> int:
        return 1 + int(time.monotonic() - self.started)

    def staleness(self, shown: int) -> float:
        """Seconds since step ``shown`` was first served."""
        return time.monotonic() - (self.started + shown - 1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def progress(args: argparse.Namespace) -> dict[str, Any]:
    jobs = args.progress_jobs
    pages = TrainerPages()
    try:
        with Cluster(args, nodes=PROGRESS_NODES) as cluster:
            cluster.start_operator(
                "operator",
                f"--trainer-metrics-port={pages.port}",
                f"--progress-interval={args.progress_interval}",
            )
            observer = Observer(cluster.api)
            time.sleep(2)
            cluster.create(range(jobs), gpus=0)
            poll(
                lambda: len(observer.running) >= jobs,
                what="every job Running",
                timeout=args.timeout,
            )
            time.sleep(args.progress_interval)  # every job read once: the steady state
            writes_before = cluster.operator_metric("kubetune_operator_status_writes_total")
            progress_before = cluster.operator_metric(
                'kubetune_operator_status_writes_total{change="progress"}'
            )
            cluster.profile("progress")
            meter = CpuMeter(cluster.pids())
            wall_start = time.time()
            stale: list[float] = []
            deadline = time.monotonic() + args.progress_seconds
            while time.monotonic() < deadline:
                time.sleep(5)
                stale += [pages.staleness(step) for step in list(observer.steps.values())]
            cpu = meter.read()
            writes = (
                cluster.operator_metric("kubetune_operator_status_writes_total") - writes_before
            )
            progress_writes = (
                cluster.operator_metric('kubetune_operator_status_writes_total{change="progress"}')
                - progress_before
            )
            requests = operator_requests(cluster.cp.audit_log, wall_start, time.time())
            observer.stop()
    finally:
        pages.close()
    minutes = cpu["seconds"] / 60
    return {
        "jobs": jobs,
        "progress_interval_seconds": args.progress_interval,
        **cpu,
        "operator_cpu_seconds_per_minute": round(cpu["cpu_seconds"]["operator"] / minutes, 2),
        "apiserver_cpu_seconds_per_minute": round(
            cpu["cpu_seconds"]["kube-apiserver"] / minutes, 2
        ),
        "status_writes_per_job_per_minute": round(writes / jobs / minutes, 2),
        "progress_writes_per_job_per_minute": round(progress_writes / jobs / minutes, 2),
        "staleness_p50_seconds": round(percentile(stale, 0.5), 1),
        "staleness_p95_seconds": round(percentile(stale, 0.95), 1),
        "staleness_max_seconds": round(max(stale), 1),
        "requests": dict(requests.most_common()),
    }


PHASES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "raw": raw,
    "burst": burst,
    "steady": steady,
    "progress": progress,
}


def report(results: dict[str, Any]) -> Iterator[str]:
    """Human-readable lines, each number next to its target."""
    t = TARGETS

    def machine(p: dict[str, Any]) -> str:
        load = f"{p['load_average_before']} -> {p['load_average_after']}"
        return f"    machine: load {load}, {p['foreign_cpu_seconds']} CPU-s used outside the bench"

    def cpu(p: dict[str, Any]) -> str:
        used = ", ".join(f"{k} {v}" for k, v in p["cpu_seconds"].items())
        return f"    CPU-s in {p['seconds']} s: {used}"

    def requests(counts: dict[str, int]) -> Iterator[str]:
        for what, count in counts.items():
            yield f"      {count:6d}  {what}"

    raw_seconds = results.get("raw", {}).get("all_jobs_seconds")
    if "raw" in results:
        p = results["raw"]
        yield f"raw: {p['jobs']} ConfigMap+Job pairs, plain client: every Job in {raw_seconds} s"
        yield cpu(p)
        yield machine(p)
    for name in ("burst", "steady"):
        if name not in results:
            continue
        p = results[name]
        ratio = f" = {p['all_jobs_seconds'] / raw_seconds:.2f} x raw" if raw_seconds else ""
        if name == "burst":
            head = f"{p['jobs']} at once"
            ratio += f" (target {t['burst_all_jobs_seconds']} s)"
        else:
            head = f"{p['rate_per_second']}/s for {p['jobs'] / p['rate_per_second']:.0f} s"
        yield f"{name}: {head}: every Job after {p['all_jobs_seconds']} s{ratio}"
        p95 = f"p95 {p['p95_seconds']} s"
        if name == "steady":
            p95 += f" (target {t['steady_p95_seconds']} s)"
        yield f"    create -> Job: p50 {p['p50_seconds']} s, {p95}"
        yield (
            f"    writes per job {p['writes_per_job']} (target {t['writes_per_job']}), "
            f"events {p['events_per_job']}, all requests {p['requests_per_job']}"
        )
        yield from requests(p["requests"])
        yield f"    operator CPU / API server CPU: {p['cpu_ratio']} (target {t['cpu_ratio']})"
        yield cpu(p)
        yield machine(p)
        if name == "burst":
            yield f"    operator RSS settled {p['rss_mb']} MB, peak {p['peak_rss_mb']} MB"
            again = p["restart"]
            yield (
                f"    after SIGKILL: every job resumed in {again['resume_seconds']} s "
                f"(target {t['restart_seconds']} s), {again['requests_per_job']} requests per job"
            )
            yield from requests(again["requests"])
        else:
            marks = ", ".join(f"{mb} MB at {n}" for n, mb in p["rss_mb_at_jobs"].items())
            yield (
                f"    operator RSS: {marks} (target {t['rss_mb_at_1000']} MB at 1000); "
                f"{p['rss_slope_mb_per_1000_jobs']} MB per 1000 jobs"
            )
    if "progress" in results:
        p = results["progress"]
        yield (
            f"progress: {p['jobs']} running jobs, read every {p['progress_interval_seconds']} s: "
            f"operator {p['operator_cpu_seconds_per_minute']} CPU-s/min, "
            f"API server {p['apiserver_cpu_seconds_per_minute']} CPU-s/min"
        )
        yield (
            f"    status writes per job per minute {p['status_writes_per_job_per_minute']} "
            f"(progress alone {p['progress_writes_per_job_per_minute']})"
        )
        yield (
            f"    status.progress staleness: p50 {p['staleness_p50_seconds']} s, "
            f"p95 {p['staleness_p95_seconds']} s, max {p['staleness_max_seconds']} s"
        )
        yield from requests(p["requests"])
        yield cpu(p)
        yield machine(p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default="raw,burst,steady,progress")
    parser.add_argument("--burst", type=int, default=1000, help="jobs created at once")
    parser.add_argument("--rate", type=float, default=20.0, help="steady: jobs per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady: for how long")
    parser.add_argument("--progress-jobs", type=int, default=1000)
    parser.add_argument("--progress-seconds", type=float, default=90.0)
    parser.add_argument("--progress-interval", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8, help="threads creating objects")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds counted after")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--crd", type=Path, default=REPO / "crds" / "finetunejob.yaml")
    parser.add_argument("--workers", type=int, default=8, help="the operator's --workers")
    parser.add_argument(
        "--controller-qps",
        type=int,
        default=0,
        help="kube-controller-manager's API requests per second (0: its default, 20; the Job "
        "controller then creates pods more slowly than a burst creates Jobs)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="profile the operator with py-spy in each phase (bench/profile_summary.py reads it)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for name in args.phases.split(","):
        results[name] = PHASES[name](args)
        print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(results))
    else:
        for line in report(results):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
