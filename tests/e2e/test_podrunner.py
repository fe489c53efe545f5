"""The pod runner against the real control plane, with plain pods and a Job.

Each test's container is a short ``python -c`` program that checks what it was given
(environment from Secrets, ConfigMaps and the downward API; volume files; its pod IP)
and reports through the termination message, so the assertions read what a controller
would read: the Pod's status.
"""

from __future__ import annotations

import json
import textwrap
import urllib.request
from functools import partial
from typing import Any

import pytest
from kubernetes import client

from devenv.podrunner import PodRunner
from devenv.process import free_port, poll
from tests.e2e.conftest import LOCAL_NODE_SELECTOR

pytestmark = pytest.mark.e2e


def _get(core: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        response = core.read_namespaced_pod(name, namespace, _preload_content=False)
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise
    return dict(json.loads(response.data))


def _pod(name: str, program: str, **spec: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": "local",
        "command": ["python", "-c", textwrap.dedent(program)],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        **spec.pop("container", {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"note": "hello"}},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": LOCAL_NODE_SELECTOR,
            "containers": [container],
            **spec,
        },
    }


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"]["terminated"])


def _wait_phase(core: Any, namespace: str, name: str, *phases: str, timeout: float = 60) -> Any:
    def check() -> dict[str, Any] | None:
        pod = _get(core, namespace, name)
        return pod if pod and pod.get("status", {}).get("phase") in phases else None

    return poll(check, what=f"pod {name} is {'/'.join(phases)}", timeout=timeout)


def test_environment_volumes_and_termination_message(
    kube: Any, namespace: str, pod_runner: PodRunner
) -> None:
    core: Any = client.CoreV1Api(kube)
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"KEY_ID": "id-1", "TOKEN": "t0"}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "cfg"}, "data": {"config.json": '{"steps": 3}', "X": "x"}}
    )
    program = """
        import json, os, pathlib, tempfile
        cfg = json.loads(pathlib.Path(os.environ["CONFIG"]).read_text())
        pathlib.Path(os.environ["WORK"], "out.txt").write_text("written")
        report = {k: os.environ.get(k) for k in (
            "KEY_ID", "TOKEN", "FROM_CM", "POD_NAME", "POD_NAMESPACE", "POD_IP", "NOTE",
            "GREETING", "HOSTNAME", "AWS_SECRET_ACCESS_KEY")}
        report["steps"] = cfg["steps"]
        report["tmp"] = tempfile.gettempdir()
        report["index"] = pathlib.Path(os.environ["INFO"], "name").read_text()
        pathlib.Path(os.environ["MSG"]).write_text(json.dumps(report))
    """
    pod = _pod(
        "envcheck",
        program,
        container={
            "envFrom": [{"secretRef": {"name": "creds"}}],
            "env": [
                {"name": "CONFIG", "value": "/etc/cfg/config.json"},
                {"name": "WORK", "value": "/work"},
                {"name": "MSG", "value": "/dev/termination-log"},
                {"name": "INFO", "value": "/etc/info"},
                {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "X"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {
                    "name": "POD_NAMESPACE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                },
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {
                    "name": "NOTE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}},
                },
                {"name": "GREETING", "value": "hi $(POD_NAME)"},
            ],
            "volumeMounts": [
                {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                {"name": "work", "mountPath": "/work"},
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "info", "mountPath": "/etc/info"},
            ],
        },
        volumes=[
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "work", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            {
                "name": "info",
                "downwardAPI": {
                    "items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]
                },
            },
        ],
    )
    core.create_namespaced_pod(namespace, pod)
    done = _wait_phase(core, namespace, "envcheck", "Succeeded", "Failed")
    terminated = _terminated(done)
    assert (done["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0), terminated
    report = json.loads(terminated["message"])
    pod_ip = done["status"]["podIP"]
    assert pod_ip.startswith("127.") and pod_ip != "127.0.0.1"
    assert report == {
        "KEY_ID": "id-1",
        "TOKEN": "t0",
        "FROM_CM": "x",
        "POD_NAME": "envcheck",
        "POD_NAMESPACE": namespace,
        "POD_IP": pod_ip,
        "NOTE": "hello",
        "GREETING": "hi envcheck",
        "HOSTNAME": "envcheck",
        "AWS_SECRET_ACCESS_KEY": None,  # the runner's own environment does not leak
        "steps": 3,
        "tmp": report["tmp"],
        "index": "envcheck",
    }
    assert report["tmp"].startswith(str(pod_runner.workdir)), "/tmp maps to the pod's emptyDir"
    assert terminated["reason"] == "Completed"
    assert terminated["startedAt"] <= terminated["finishedAt"]
    conditions = {c["type"]: (c["status"], c.get("reason")) for c in done["status"]["conditions"]}
    assert conditions["Ready"] == ("False", "PodCompleted")
    assert conditions["PodScheduled"][0] == "True"


def test_failure_falls_back_to_the_log_tail(
    kube: Any, namespace: str, pod_runner: PodRunner
) -> None:
    core: Any = client.CoreV1Api(kube)
    program = """
        import sys
        for i in range(100):
            print(f"line {i}")
        sys.stdout.flush()  # stdout to a file is block-buffered, in a container too
        print("bad dataset: row 7 has no 'messages'", file=sys.stderr)
        sys.exit(3)
    """
    core.create_namespaced_pod(namespace, _pod("fails", program))
    done = _wait_phase(core, namespace, "fails", "Succeeded", "Failed")
    terminated = _terminated(done)
    assert done["status"]["phase"] == "Failed"
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    lines = terminated["message"].splitlines()
    assert lines[-1] == "bad dataset: row 7 has no 'messages'"
    assert len(lines) == 80 and lines[0] == "line 21", "the kubelet keeps the last 80 lines"
    # The pods/log API, through the API server to the runner's log server.
    logs = core.read_namespaced_pod_log("fails", namespace, tail_lines=2)
    assert logs.splitlines() == ["line 99", "bad dataset: row 7 has no 'messages'"]
    assert core.read_namespaced_pod_log("fails", namespace).startswith("line 0\n")


def test_pod_logs_follow_until_the_container_exits(
    kube: Any, namespace: str, pod_runner: PodRunner
) -> None:
    core: Any = client.CoreV1Api(kube)
    program = """
        import time
        for i in range(5):
            print(f"step {i}", flush=True)
            time.sleep(0.5)
    """
    core.create_namespaced_pod(namespace, _pod("talks", program))
    _wait_phase(core, namespace, "talks", "Running", "Succeeded")
    stream = core.read_namespaced_pod_log("talks", namespace, follow=True, _preload_content=False)
    lines = [line.decode() for line in stream.stream() for line in line.splitlines()]
    assert lines == [f"step {i}" for i in range(5)]
    assert _get(core, namespace, "talks")["status"]["phase"] == "Succeeded"  # type: ignore[index]


def test_missing_secret_waits_then_starts(kube: Any, namespace: str, pod_runner: PodRunner) -> None:
    core: Any = client.CoreV1Api(kube)
    program = "import os, sys; sys.exit(0 if os.environ['K'] == 'v' else 1)"
    pod = _pod(
        "waits",
        program,
        container={
            "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
        },
    )
    core.create_namespaced_pod(namespace, pod)

    def waiting() -> dict[str, Any] | None:
        found = _get(core, namespace, "waits")
        statuses = (found or {}).get("status", {}).get("containerStatuses") or []
        return statuses[0]["state"].get("waiting") if statuses else None

    state = poll(
        lambda: (w := waiting()) and w.get("reason") == "CreateContainerConfigError" and w,
        what="the pod reports the missing secret",
        timeout=30,
    )
    assert state["message"] == 'secret "s" not found'
    assert _get(core, namespace, "waits")["status"]["phase"] == "Pending"  # type: ignore[index]
    core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    done = _wait_phase(core, namespace, "waits", "Succeeded", "Failed")
    assert done["status"]["phase"] == "Succeeded"


#: The port every serving pod binds on 0.0.0.0 (free on the host: a host process on
#: the wildcard address would collide with the pods' loopback addresses).
PORT = free_port()
SERVE_AND_TRAP = """
    import http.server, os, pathlib, signal, sys, threading, time
    def stop(*_):
        if os.environ.get("IGNORE_TERM"):
            return
        pathlib.Path(os.environ["MSG"]).write_text("saved checkpoint on SIGTERM")
        sys.exit(5)
    signal.signal(signal.SIGTERM, stop)  # before serving: an answer means it is trapped
    address = ("0.0.0.0", int(os.environ["PORT"]))
    server = http.server.HTTPServer(address, http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("serving", flush=True)
    while True:
        time.sleep(0.1)
"""


def _serving_pod(name: str, *, ignore_term: bool = False, grace: int = 30) -> dict[str, Any]:
    env = [
        {"name": "MSG", "value": "/dev/termination-log"},
        {"name": "PORT", "value": str(PORT)},
    ]
    if ignore_term:
        env.append({"name": "IGNORE_TERM", "value": "1"})
    pod = _pod(name, SERVE_AND_TRAP, container={"env": env}, terminationGracePeriodSeconds=grace)
    pod["metadata"]["finalizers"] = [HOLD]
    return pod


HOLD = "kubetune.io/test-hold"


def _finally_deleted(core: Any, namespace: str, name: str) -> dict[str, Any]:
    """The pod after the runner's final delete (grace 0), kept by the :data:`HOLD`
    finalizer as the Job controller's finalizer keeps Job pods; then released."""

    def final() -> dict[str, Any] | None:
        pod = _get(core, namespace, name)
        done = pod and pod["metadata"].get("deletionGracePeriodSeconds") == 0
        return pod if done else None

    pod = poll(final, what=f"the runner deleted {name} with grace period 0", timeout=30)
    core.patch_namespaced_pod(name, namespace, {"metadata": {"finalizers": None}})
    poll(lambda: _get(core, namespace, name) is None, what=f"{name} is gone", timeout=10)
    assert pod["status"]["phase"] == "Failed", "the terminal status precedes the final delete"
    return pod


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def test_pods_serve_on_their_own_ip_and_sigterm_on_delete(
    kube: Any, namespace: str, pod_runner: PodRunner
) -> None:
    core: Any = client.CoreV1Api(kube)
    # Two pods bind 0.0.0.0:PORT like two trainers on a node: each gets its own IP.
    for name in ("srv-a", "srv-b"):
        core.create_namespaced_pod(namespace, _serving_pod(name))
    running = [_wait_phase(core, namespace, n, "Running") for n in ("srv-a", "srv-b")]
    ips = [p["status"]["podIP"] for p in running]
    assert len(set(ips)) == 2
    for url in (f"http://{ip}:{PORT}/" for ip in ips):
        poll(partial(_http_ok, url), what=f"{url} answers", timeout=20)
    status = running[0]["status"]["containerStatuses"][0]
    assert status["ready"] and "running" in status["state"]

    core.delete_namespaced_pod("srv-a", namespace)
    final = _finally_deleted(core, namespace, "srv-a")
    terminated = _terminated(final)
    assert terminated["exitCode"] == 5
    assert terminated["message"] == "saved checkpoint on SIGTERM"
    assert _get(core, namespace, "srv-b")["status"]["phase"] == "Running"  # type: ignore[index]
    core.delete_namespaced_pod("srv-b", namespace)
    assert _terminated(_finally_deleted(core, namespace, "srv-b"))["exitCode"] == 5


def test_grace_period_ends_with_sigkill(kube: Any, namespace: str, pod_runner: PodRunner) -> None:
    core: Any = client.CoreV1Api(kube)
    core.create_namespaced_pod(namespace, _serving_pod("stubborn", ignore_term=True, grace=1))
    ip = _wait_phase(core, namespace, "stubborn", "Running")["status"]["podIP"]
    poll(partial(_http_ok, f"http://{ip}:{PORT}/"), what="stubborn serves", timeout=20)
    core.delete_namespaced_pod("stubborn", namespace)
    terminated = _terminated(_finally_deleted(core, namespace, "stubborn"))
    assert (terminated["exitCode"], terminated["signal"]) == (137, 9)


def test_job_replaces_an_interrupted_pod_without_counting_a_failure(
    kube: Any, namespace: str, pod_runner: PodRunner, tmp_path: Any
) -> None:
    """podFailurePolicy ``Ignore`` on exit 5 works on the runner's terminal status."""
    batch: Any = client.BatchV1Api(kube)
    program = """
        import os, pathlib, sys
        marker = pathlib.Path(os.environ["STATE"], "first-attempt-done")
        if not marker.exists():
            marker.write_text("")
            sys.exit(5)
    """
    template = _pod(
        "unused", program, volumes=[{"name": "state", "hostPath": {"path": str(tmp_path)}}]
    )
    container = template["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "state", "mountPath": "/state"}]
    container["env"] = [{"name": "STATE", "value": "/state"}]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "retry"},
        "spec": {
            "backoffLimit": 0,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "Ignore",
                        "onExitCodes": {"containerName": "main", "operator": "In", "values": [5]},
                    }
                ]
            },
            "template": {"spec": template["spec"]},
        },
    }
    batch.create_namespaced_job(namespace, job)

    def complete() -> Any:
        status = batch.read_namespaced_job_status("retry", namespace).status
        kinds = {c.type for c in status.conditions or [] if c.status == "True"}
        return status if kinds & {"Complete", "Failed"} else None

    status = poll(complete, what="job retry finishes", timeout=60)
    assert {c.type for c in status.conditions if c.status == "True"} >= {"Complete"}
    assert (status.succeeded, status.failed or 0) == (1, 0)


def test_on_failure_restarts_the_process_with_its_last_state(
    kube: Any, namespace: str, pod_runner: PodRunner, tmp_path: Any
) -> None:
    core: Any = client.CoreV1Api(kube)
    program = """
        import os, pathlib, sys
        marker = pathlib.Path(os.environ["STATE"], "tried")
        if not marker.exists():
            marker.write_text("")
            sys.exit(7)
    """
    pod = _pod(
        "flaky",
        program,
        restartPolicy="OnFailure",
        volumes=[{"name": "state", "hostPath": {"path": str(tmp_path)}}],
        container={
            "env": [{"name": "STATE", "value": "/state"}],
            "volumeMounts": [{"name": "state", "mountPath": "/state"}],
        },
    )
    core.create_namespaced_pod(namespace, pod)
    done = _wait_phase(core, namespace, "flaky", "Succeeded", "Failed")
    status = done["status"]["containerStatuses"][0]
    assert done["status"]["phase"] == "Succeeded"
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 7
    assert status["state"]["terminated"]["exitCode"] == 0


def test_a_command_that_cannot_start_fails_the_pod(
    kube: Any, namespace: str, pod_runner: PodRunner
) -> None:
    core: Any = client.CoreV1Api(kube)
    pod = _pod("nostart", "", container={"command": ["/no/such/program"]})
    core.create_namespaced_pod(namespace, pod)
    done = _wait_phase(core, namespace, "nostart", "Succeeded", "Failed")
    terminated = _terminated(done)
    assert done["status"]["phase"] == "Failed"
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    assert "/no/such/program" in terminated["message"]
