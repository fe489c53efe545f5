"""Command line for the dev environment (run from the repository root).

``python -m devenv build``    build (or reuse) every pinned binary and list them.
``python -m devenv cluster``  start a control plane with fake GPU nodes, print
the KUBECONFIG export line, wait for Ctrl-C, then tear it down.
``python -m devenv s3``       start SeaweedFS on loopback and print its endpoint.
``python -m devenv images``   build (or reuse) the trainer and operator images and put
them into the real node's image store (``make images``).
``python -m devenv dev``      a whole kubetune installation that really trains
(``make dev-cluster``): control plane, S3, the operator, a node for the trainer pods.
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

from devenv import build, versions


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
    from devenv.cluster import ComponentError, ControlPlane

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
    from devenv.s3 import S3Server

    with S3Server(buckets=args.bucket or ["kubetune"]) as s3:
        print(
            f"S3 endpoint {s3.endpoint} (access key {s3.access_key}, secret "
            f"{s3.secret_key}), buckets: {', '.join(s3.buckets)}"
        )
        print("Ctrl-C to stop.", flush=True)
        _wait_for_interrupt()
    return 0


def _cmd_images(_: argparse.Namespace) -> int:
    from devenv.images import ensure_images
    from devenv.process import ComponentError

    started = time.monotonic()
    try:
        report = ensure_images()
    except (build.BuildError, ComponentError) as e:
        print(f"images failed:\n{e}", file=sys.stderr)
        return 1
    for item in report:
        what = (
            f"built in {item.seconds:.0f}s, {item.size_bytes / 1e9:.2f} GB"
            if item.built
            else "up to date"
        )
        print(f"  {item.ref:<40} {what} (inputs {item.key[:12]})")
    print(f"images ready in {time.monotonic() - started:.1f}s")
    return 0


def _cmd_dev(args: argparse.Namespace) -> int:
    from devenv.dev import DevEnvironment, write_env_file
    from devenv.process import ComponentError

    if args.workdir is not None and args.workdir.exists() and any(args.workdir.iterdir()):
        # An old etcd, PKI and S3 volume would be half reused: start clean instead.
        print(f"devenv dev: --workdir {args.workdir} is not empty", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    env = DevEnvironment(args.workdir, operator=args.operator, crd=args.crd)
    try:
        env.start()
    except (build.BuildError, ComponentError, TimeoutError) as e:
        print(f"devenv dev: failed to start: {e}", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(env.settings())
        print(f"# the same, to source in another shell: {write_env_file(env)}")
        print(
            "# try: kubectl apply -f examples/quickstart-cluster.yaml && kubetune watch quickstart"
        )
        print("# Ctrl-C stops everything.", flush=True)
        while not stop.wait(2.0):
            env.check_alive()
    except ComponentError as e:
        print(f"devenv dev: {e}", file=sys.stderr)
        return 1
    finally:
        env.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m devenv``."""
    parser = argparse.ArgumentParser(
        prog="python -m devenv",
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
    sub.add_parser("images", help="build or reuse the images; import them for the real node")
    p = sub.add_parser("dev", help="run a local dev installation that trains, until Ctrl-C")
    p.add_argument(
        "--workdir",
        type=Path,
        help="an empty or new directory to keep everything in (logs, S3 data, pod dirs) "
        "instead of a temporary directory that is removed at exit",
    )
    p.add_argument(
        "--no-operator",
        dest="operator",
        action="store_false",
        help="don't start the operator (run your own `kubetune operator` against it)",
    )
    p.add_argument(
        "--crd",
        type=Path,
        metavar="FILE",
        help="apply this CRD instead of the one generated from the API models "
        "(a CRD under development)",
    )
    args = parser.parse_args(argv)
    handlers = {
        "build": _cmd_build,
        "cluster": _cmd_cluster,
        "s3": _cmd_s3,
        "images": _cmd_images,
        "dev": _cmd_dev,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
