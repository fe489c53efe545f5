"""Command line for the dev environment.

``python -m kubetune.devenv build``    build (or reuse) every pinned binary and list them.
``python -m kubetune.devenv cluster``  start a control plane with fake GPU nodes, print
the KUBECONFIG export line, wait for Ctrl-C, then tear it down.
``python -m kubetune.devenv s3``       start SeaweedFS on loopback and print its endpoint.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from kubetune.devenv import build, versions


def _cmd_build(_: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        bins = build.ensure_built()
    except build.BuildError as e:
        print(f"build failed:\n{e}", file=sys.stderr)
        return 1
    print(f"all binaries ready in {time.monotonic() - started:.1f}s:")
    for name, path in vars(bins).items():
        print(f"  {name:<24} {path}")
    return 0


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _cmd_cluster(args: argparse.Namespace) -> int:
    from kubetune.devenv.cluster import ComponentError, ControlPlane

    try:
        bins = build.ensure_built()
    except build.BuildError as e:
        print(f"build failed:\n{e}", file=sys.stderr)
        return 1
    workdir = Path(args.workdir) if args.workdir else None
    if workdir:
        workdir.mkdir(parents=True, exist_ok=True)
    cp = ControlPlane(workdir, binaries=bins)
    try:
        cp.start(timeout=args.timeout)
    except ComponentError as e:
        print(f"cluster failed to start:\n{e}", file=sys.stderr)
        return 1
    try:
        print(
            f"Kubernetes {versions.KUBERNETES_VERSION} control plane ready in "
            f"{cp.ready_seconds:.1f}s at {cp.server}"
        )
        print(f"kubectl: {bins.kubectl}")
        print(f"export KUBECONFIG={cp.kubeconfig}")
        print(f"export PATH={bins.kubectl.parent}{os.pathsep}{bins.helm.parent}{os.pathsep}$PATH")
        print("logs: " + ", ".join(str(p) for p in cp.component_logs().values()))
        print("Ctrl-C to stop.", flush=True)
        if args.ready_file:
            Path(args.ready_file).write_text(str(cp.kubeconfig) + "\n")
        _wait_for_interrupt()
    finally:
        print("stopping the control plane", flush=True)
        cp.stop()
    return 0


def _cmd_s3(args: argparse.Namespace) -> int:
    from kubetune.devenv.s3 import S3Server

    with S3Server(buckets=args.bucket or ["kubetune"]) as s3:
        print(
            f"S3 endpoint {s3.endpoint} (access key {s3.access_key}, secret "
            f"{s3.secret_key}), buckets: {', '.join(s3.buckets)}"
        )
        print("Ctrl-C to stop.", flush=True)
        _wait_for_interrupt()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m kubetune.devenv``."""
    parser = argparse.ArgumentParser(
        prog="python -m kubetune.devenv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build or reuse the pinned control-plane binaries")
    p = sub.add_parser("cluster", help="run a control plane until Ctrl-C")
    p.add_argument("--workdir", help="keep data and logs here (default: a temp dir)")
    p.add_argument("--timeout", type=float, default=120.0, help="start timeout (seconds)")
    p.add_argument("--ready-file", help="write the kubeconfig path here once ready")
    p = sub.add_parser("s3", help="run a SeaweedFS S3 server until Ctrl-C")
    p.add_argument("--bucket", action="append", help="bucket to create (repeatable)")
    args = parser.parse_args(argv)
    handlers = {"build": _cmd_build, "cluster": _cmd_cluster, "s3": _cmd_s3}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
