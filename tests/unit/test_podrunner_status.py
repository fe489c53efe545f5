"""The Pod status the pod runner reports, checked against the kubelet's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from devenv.podrunner.logserver import tail_bytes
from devenv.podrunner.runner import loopback_addresses, runnable_node
from devenv.podrunner.status import (
    Running,
    Terminated,
    Waiting,
    pod_status,
    termination_message,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SCHEDULED = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-02T03:04:00Z"}


def _pod(conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "uid": "u-1"},
        "spec": {"containers": [{"name": "trainer", "image": "img:1"}]},
        "status": {"conditions": conditions or [SCHEDULED], "qosClass": "Burstable"},
    }


def _status(pod: dict[str, Any], state: Any, **kw: Any) -> dict[str, Any]:
    return pod_status(
        pod, state, pod_ip="127.0.0.5", host_ip="127.0.0.1", start_time=T0, now=T0, **kw
    )


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["type"]: (c["status"], c.get("reason")) for c in status["conditions"]}


def test_pending_running_succeeded_failed() -> None:
    pending = _status(_pod(), Waiting("ContainerCreating"))
    assert pending["phase"] == "Pending"
    assert pending["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert _conditions(pending)["Ready"] == ("False", "ContainersNotReady")
    assert pending["podIP"] == "127.0.0.5" and pending["podIPs"] == [{"ip": "127.0.0.5"}]

    running = _status(_pod(), Running(T0))
    container = running["containerStatuses"][0]
    assert running["phase"] == "Running"
    assert container["ready"] and container["started"]
    assert container["state"] == {"running": {"startedAt": "2026-01-02T03:04:05Z"}}
    assert _conditions(running)["Ready"] == ("True", None)
    assert running["qosClass"] == "Burstable"
    assert _conditions(running)["PodScheduled"] == ("True", None)

    done = Terminated(0, "Completed", T0, T0 + timedelta(seconds=9), '{"outcome":"Succeeded"}')
    succeeded = _status(_pod(), done)
    terminated = succeeded["containerStatuses"][0]["state"]["terminated"]
    assert succeeded["phase"] == "Succeeded"
    assert terminated == {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": "2026-01-02T03:04:05Z",
        "finishedAt": "2026-01-02T03:04:14Z",
        "message": '{"outcome":"Succeeded"}',
    }
    assert _conditions(succeeded)["Ready"] == ("False", "PodCompleted")

    killed = _status(_pod(), Terminated(143, "Error", T0, T0, signal=15))
    assert killed["phase"] == "Failed"
    assert killed["containerStatuses"][0]["state"]["terminated"]["signal"] == 15


def test_restarted_container_keeps_its_last_state_and_running_phase() -> None:
    last = Terminated(1, "Error", T0, T0)
    status = _status(_pod(), Waiting("CrashLoopBackOff"), restart_count=2, last_state=last)
    container = status["containerStatuses"][0]
    assert status["phase"] == "Running"
    assert container["restartCount"] == 2
    assert container["lastState"]["terminated"]["exitCode"] == 1


def test_condition_transition_time_changes_only_with_status() -> None:
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    status = _status(_pod([SCHEDULED, ready]), Running(T0))
    kept = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert kept["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    status = _status(_pod([SCHEDULED, ready]), Terminated(0, "Completed", T0, T0))
    flipped = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert flipped["lastTransitionTime"] == "2026-01-02T03:04:05Z"


def test_termination_message_file_first_then_log_tail_on_error() -> None:
    log = "\n".join(f"line {i}" for i in range(200))
    assert termination_message(b"summary", log, 3, "FallbackToLogsOnError") == "summary"
    assert termination_message(b"", log, 0, "FallbackToLogsOnError") == ""
    assert termination_message(b"", log, 3, "File") == ""
    tail = termination_message(b"", log, 3, "FallbackToLogsOnError")
    assert tail.splitlines() == [f"line {i}" for i in range(120, 200)]
    long_lines = "\n".join("x" * 100 + str(i) for i in range(80))
    capped = termination_message(b"", long_lines, 1, "FallbackToLogsOnError")
    assert len(capped.encode()) == 2048 and capped.endswith("x79")
    assert len(termination_message(b"y" * 5000, "", 0, "File")) == 4096


def test_loopback_addresses_skip_the_host_and_broadcast_like_octets() -> None:
    gen = loopback_addresses()
    first = [next(gen) for _ in range(260)]
    assert first[0] == "127.0.0.2"
    assert "127.0.0.1" not in first and "127.0.0.255" not in first and "127.0.1.0" not in first
    assert first[253] == "127.0.1.1"
    assert len(set(first)) == 260


def test_tail_lines_of_a_log_keep_line_ends_and_a_partial_last_line() -> None:
    assert tail_bytes(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert tail_bytes(b"a\nb\npartial", 1) == b"partial"
    assert tail_bytes(b"a\n", 5) == b"a\n"
    assert tail_bytes(b"a\n", 0) == b""


def test_only_fake_local_exec_nodes_are_run() -> None:
    def node(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
        return {"metadata": {"name": "n", "labels": labels, "annotations": annotations}}

    local = {"kubetune.io/local-exec": "true"}
    fake = {"kwok.x-k8s.io/node": "fake"}
    assert runnable_node(node(local, fake))
    assert not runnable_node(node(local, {})), "a real node labelled by mistake"
    assert not runnable_node(node({}, fake)), "a KWOK node for KWOK's own pod stages"
    assert not runnable_node(node({"kubetune.io/local-exec": "false"}, fake))
