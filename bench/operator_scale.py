"""Benchmark: 500 FineTuneJobs applied at once to the test control plane.

    .venv/bin/python -m bench.operator_scale [--jobs 500] [--json]

Starts a fresh control plane (kube-apiserver with an audit log), installs the CRD,
runs ``kubetune operator`` as its own process, creates ``--jobs`` FineTuneJobs from
``--clients`` threads as fast as the API server takes them, and watches the Jobs
appear. Every job asks for one H100 and its pod keeps running (as training does for
hours; KWOK's ``kubetune.io/test-phase: Running``), so 16 run and the rest wait
Unschedulable: the operator creates Jobs while it reports scheduling failures, as it
would when a team submits a sweep to a busy cluster.

Reported:

* time from the first create until every Job exists (target: 60 s on 2 cores);
* p50/p95 latency from a FineTuneJob's create response to its Job's watch event;
* the operator's peak RSS (``VmHWM`` of its process; target: 250 MB);
* API requests per job made by the operator (its client and kopf, told apart from
  everything else by user agent in the audit log), by verb and resource, counted from
  the first create until ``--settle`` seconds after the last Job appeared;
* then the operator is killed (SIGKILL) and started again: time until it has resumed
  every job, and the requests that cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from devenv import build
from devenv.cluster import TEST_PHASE_ANNOTATION, ControlPlane
from devenv.process import Process, free_port, poll, wait_for
from kubetune.api import GROUP, PLURAL, VERSION
from kubetune.controller.kube import USER_AGENT
from kubetune.render.labels import JOB_LABEL

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
OPERATOR_AGENTS = (USER_AGENT, "kopf/")
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


class AuditedControlPlane(ControlPlane):
    """The test control plane with an API server audit log (every request, metadata)."""

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def _apiserver_args(self, *args: Any) -> list[str | Path]:
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        return [
            *super()._apiserver_args(*args),
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxsize=0",
        ]


def manifest(index: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": f"job-{index:04d}", "namespace": NAMESPACE},
        "spec": {
            "method": "sft",
            "model": {"uri": "hf://org/model"},
            "adapter": {"type": "lora"},
            "dataset": {"train": {"uri": "s3://data/train.jsonl", "format": "messages"}},
            "output": {"uri": f"s3://models/job-{index:04d}"},
            "resources": {"gpus": 1, "gpuType": "NVIDIA-H100-80GB-HBM3"},
        },
    }


def watch_jobs(api: client.ApiClient, seen: dict[str, float], stop: threading.Event) -> None:
    """Record when each Job is first seen (watch events, not polling)."""
    batch = client.BatchV1Api(api)
    while not stop.is_set():
        stream = watch.Watch()
        for event in stream.stream(
            batch.list_namespaced_job, NAMESPACE, label_selector=JOB_LABEL, timeout_seconds=5
        ):
            seen.setdefault(event["object"].metadata.name, time.monotonic())
            if stop.is_set():
                stream.stop()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def operator_requests(audit_log: Path, since: float, until: float) -> Counter[str]:
    """Operator requests in [since, until] (epoch seconds), by ``VERB resource``."""
    counts: Counter[str] = Counter()
    with audit_log.open() as lines:
        for line in lines:
            event = json.loads(line)
            if event.get("stage") != "ResponseComplete":
                continue
            if not str(event.get("userAgent", "")).startswith(OPERATOR_AGENTS):
                continue
            at = event["requestReceivedTimestamp"]
            stamp = time.mktime(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            if since - 1 <= stamp <= until + 1:
                ref = event.get("objectRef") or {}
                resource = ref.get("resource", "?") + (
                    "/" + ref["subresource"] if ref.get("subresource") else ""
                )
                counts[f"{event['verb']} {resource}"] += 1
    return counts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_operator(cp: ControlPlane, workers: int, name: str) -> tuple[Process, str]:
    """``kubetune operator`` for the bench namespace, once its /metrics answers."""
    port = free_port()
    operator = Process(
        name,
        [
            str(REPO / ".venv" / "bin" / "kubetune"),
            "operator",
            f"--namespace={NAMESPACE}",
            "--standalone",
            f"--metrics-port={port}",
            "--log-level=warning",
            f"--pod-annotation={TEST_PHASE_ANNOTATION}=Running",
            f"--workers={workers}",
        ],
        cp.workdir / f"{name}.log",
        env=cp.env(),
    )
    url = f"http://127.0.0.1:{port}/metrics"
    wait_for(operator, lambda: urllib.request.urlopen(url, timeout=2), what="up", timeout=60)
    return operator, url


def resumed(url: str) -> float:
    """FineTuneJobs the operator has reconciled (``kubetune_operator_reconciles``)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        page = response.read().decode()
    for line in page.splitlines():
        if line.startswith('kubetune_operator_reconciles_total{trigger="spec"}'):
            return float(line.split()[-1])
    return 0.0


def restart(cp: AuditedControlPlane, operator: Process, args: argparse.Namespace) -> dict[str, Any]:
    """Kill the operator (SIGKILL) with every job in place; time until a new one has
    resumed them all, and what that cost the API server."""
    operator.popen.kill()
    operator.popen.wait(10)
    wall_start, started = time.time(), time.monotonic()
    second, url = start_operator(cp, args.workers, "operator-restarted")
    try:
        poll(lambda: resumed(url) >= args.jobs, what="every job resumed", timeout=args.timeout)
        seconds = time.monotonic() - started
        time.sleep(args.settle)
        requests = operator_requests(cp.audit_log, wall_start, time.time())
    finally:
        second.stop()
    return {
        "restart_resume_seconds": round(seconds, 2),
        "restart_requests_per_job": round(sum(requests.values()) / args.jobs, 2),
        "restart_requests": dict(requests.most_common()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    cp = AuditedControlPlane(binaries=build.ensure_built(), log=lambda _: None)
    cp.start()
    operator: Process | None = None
    stop = threading.Event()
    try:
        cp.kubectl("apply", "--server-side", "-f", str(args.crd))
        cp.kubectl("create", "namespace", NAMESPACE)
        poll(
            lambda: cp.kubectl("get", "ftj", "-n", NAMESPACE, check=False).returncode == 0,
            what="finetunejobs are served",
        )
        operator, _ = start_operator(cp, args.workers, "operator")
        time.sleep(2)  # let the operator's watches settle before the burst

        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        api.user_agent = "kubetune-bench"
        seen: dict[str, float] = {}
        watcher = threading.Thread(target=watch_jobs, args=(api, seen, stop), daemon=True)
        watcher.start()
        custom = client.CustomObjectsApi(api)
        created: dict[str, float] = {}

        def create(index: int) -> None:
            body = manifest(index)
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
            created[body["metadata"]["name"]] = time.monotonic()

        cpu_before = {p.name: cpu_seconds(p.pid) for p in [*cp.procs, operator]}
        wall_start, started = time.time(), time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(create, range(args.jobs)))
        create_seconds = time.monotonic() - started
        poll(
            lambda: len(seen) >= args.jobs,
            what=f"{args.jobs} Jobs exist",
            timeout=args.timeout,
            interval=0.2,
        )
        all_seconds = max(seen.values()) - started
        cpu_burst = {
            p.name: round(cpu_seconds(p.pid) - cpu_before[p.name], 1) for p in [*cp.procs, operator]
        }
        time.sleep(args.settle)
        rss = peak_rss_mb(operator.pid)
        requests = operator_requests(cp.audit_log, wall_start, time.time())
        latencies = [seen[name] - created[name] for name in created]
        restarted = restart(cp, operator, args)
        return {
            "jobs": args.jobs,
            "create_seconds": round(create_seconds, 2),
            "all_jobs_seconds": round(all_seconds, 2),
            "latency_p50_seconds": round(percentile(latencies, 0.5), 3),
            "latency_p95_seconds": round(percentile(latencies, 0.95), 3),
            "latency_mean_seconds": round(statistics.fmean(latencies), 3),
            "cpu_seconds_until_all_jobs": cpu_burst,
            "operator_peak_rss_mb": round(rss, 1),
            "operator_requests_per_job": round(sum(requests.values()) / args.jobs, 2),
            "operator_requests": dict(requests.most_common()),
            **restarted,
        }
    finally:
        stop.set()
        if operator is not None:
            operator.stop()
        cp.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8, help="threads creating jobs")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds counted after")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--crd", type=Path, default=REPO / "crds" / "finetunejob.yaml")
    parser.add_argument("--workers", type=int, default=8, help="the operator's --workers")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['jobs']} FineTuneJobs created in {result['create_seconds']} s")
    print(f"every Job exists after {result['all_jobs_seconds']} s (target 60 s)")
    print(
        f"create -> Job latency: p50 {result['latency_p50_seconds']} s, "
        f"p95 {result['latency_p95_seconds']} s"
    )
    print(f"operator peak RSS: {result['operator_peak_rss_mb']} MB (target 250 MB)")
    cpu = ", ".join(f"{name} {s} s" for name, s in result["cpu_seconds_until_all_jobs"].items())
    print(f"CPU used until every Job existed: {cpu}")
    print(f"operator API requests per job: {result['operator_requests_per_job']}")
    for what, count in result["operator_requests"].items():
        print(f"  {count:6d}  {what}")
    print(
        f"after SIGKILL, a new operator resumed every job in {result['restart_resume_seconds']} s "
        f"with {result['restart_requests_per_job']} API requests per job"
    )
    for what, count in result["restart_requests"].items():
        print(f"  {count:6d}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
