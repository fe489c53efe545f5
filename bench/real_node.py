"""Timings of the real node: node ready, a trainer-image pod's start, the quickstart.

    .venv/bin/python -m bench.real_node [--json]     # from the repository root, as root

Starts the dev installation (``python -m devenv dev``'s pieces: control plane, real node,
S3, CRD, Secret, the operator on the host), then measures, with the images already
built (``make images``; a stale image is rebuilt first and its build time reported):

* node ready: kubelet start -> the node's ``Ready`` condition;
* pod start: a pod of the trainer image created -> its container running, and -> the
  pod Succeeded after ``python -c pass`` (image unpacked, sandbox, CNI, runc);
* quickstart: ``examples/quickstart-cluster.yaml`` applied, unchanged -> ``Succeeded``
  (the operator's reaction, the trainer's start in its container, 60 training steps on
  the CPU, the adapter upload).

It prints numbers; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import yaml

from devenv.cluster import ControlPlane
from devenv.dev import EXAMPLES, DevEnvironment
from devenv.images import TRAINER
from devenv.process import poll


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": TRAINER.ref, "command": ["python", "-c", "pass"]}
            ],
        },
    }


def _pod_start(cp: ControlPlane) -> dict[str, float]:
    path = "/api/v1/namespaces/default/pods/bench-start"
    started = time.monotonic()
    cp.request("POST", "/api/v1/namespaces/default/pods", _pod("bench-start"))

    def container_started() -> bool:
        statuses = cp.request("GET", path).get("status", {}).get("containerStatuses") or []
        return any({"running", "terminated"} & set(s.get("state") or {}) for s in statuses)

    poll(container_started, what="the container started", timeout=120, interval=0.05)
    running = time.monotonic() - started
    poll(
        lambda: cp.request("GET", path).get("status", {}).get("phase") == "Succeeded",
        what="the pod succeeded",
        timeout=120,
        interval=0.05,
    )
    return {
        "pod_running_s": round(running, 2),
        "pod_succeeded_s": round(time.monotonic() - started, 2),
    }


def _quickstart(cp: ControlPlane) -> float:
    manifest = yaml.safe_load((EXAMPLES / "quickstart-cluster.yaml").read_text())
    started = time.monotonic()
    cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def state() -> str | None:
        found = cp.kubectl("get", "ftj", "quickstart", "-o", "jsonpath={.status.state}").stdout
        return found if found in ("Succeeded", "Failed") else None

    outcome = poll(state, what="the quickstart finishes", timeout=900, interval=0.5)
    if outcome != "Succeeded":
        raise SystemExit(f"the quickstart ended {outcome}")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with DevEnvironment(log=lambda m: None) as env:
        assert env.node is not None and env.cp is not None
        results: dict[str, Any] = {
            "environment_ready_s": round(env.ready_seconds or 0.0, 1),
            "node_ready_s": round(env.node.ready_seconds or 0.0, 1),
            "images_rebuilt": {
                i.ref: {"seconds": round(i.seconds), "gb": round(i.size_bytes / 1e9, 2)}
                for i in env.node.images
                if i.built
            },
            **_pod_start(env.cp),
            "quickstart_apply_to_succeeded_s": round(_quickstart(env.cp), 1),
        }
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:<36} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
