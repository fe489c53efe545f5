"""The kubelet's log endpoint, so that ``kubectl logs`` and ``kubetune logs`` work.

``GET /api/v1/namespaces/NS/pods/NAME/log`` is answered by the API server proxying to
the pod's node: ``https://<node InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/
containerLogs/NS/NAME/CONTAINER?follow=...&tailLines=...&limitBytes=...``. This server
answers that path from the pod runner's log files, on 127.0.0.1 with a self-signed
certificate (the API server verifies kubelet certificates only when given
``--kubelet-certificate-authority``, which the dev cluster doesn't set), and
:meth:`LogServer.advertise` writes its address and port into the local-exec nodes'
status, as a kubelet reports its own.

Dev/test only, like the rest of the pod runner: no authentication (loopback only), and
``sinceSeconds``/``timestamps``/``previous`` are ignored.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from devenv.certs import CertificateAuthority

log = logging.getLogger("devenv.podrunner")

#: (namespace, pod, container) -> (log file, "is the container still running?") or None.
Resolve = Callable[[str, str, str], tuple[Path, Callable[[], bool]] | None]

FOLLOW_POLL_SECONDS = 0.2


def tail_bytes(data: bytes, lines: int) -> bytes:
    """The last ``lines`` lines of ``data`` (a final line without newline counts)."""
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        log.debug("log server: " + format, *args)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "only /containerLogs/NS/POD/CONTAINER is served")
            return
        found = self.server.resolve(parts[1], parts[2], parts[3])
        if found is None:
            self.send_error(404, f"container {parts[3]!r} of pod {parts[1]}/{parts[2]} not found")
            return
        path, running = found
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        follow = query.get("follow") == "true"
        limit = int(query["limitBytes"]) if "limitBytes" in query else None
        data = path.read_bytes() if path.exists() else b""
        offset = len(data)
        if "tailLines" in query:
            data = tail_bytes(data, int(query["tailLines"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if not follow:
            data = data[:limit] if limit is not None else data
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        # HTTP/1.0 (the handler's protocol): the body ends when the connection closes.
        self.end_headers()
        self.close_connection = True
        sent = 0
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while True:
                if limit is not None:
                    data = data[: max(0, limit - sent)]
                if data:
                    self.wfile.write(data)
                    self.wfile.flush()
                    sent += len(data)
                if limit is not None and sent >= limit:
                    break
                alive = running()
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read()
                offset += len(data)
                if not data and not alive:
                    break
                if not data:
                    time.sleep(FOLLOW_POLL_SECONDS)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, resolve: Resolve) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.resolve = resolve


class LogServer:
    """HTTPS server of ``/containerLogs`` on 127.0.0.1 (a kernel-picked port)."""

    def __init__(self, resolve: Resolve, workdir: Path) -> None:
        pair = CertificateAuthority(workdir / "log-server-pki").issue(
            "kubelet", "kubetune-podrunner", dns_names=("localhost",), ips=("127.0.0.1",)
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pair.cert), str(pair.key))
        self.server = _Server(resolve)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="podrunner-logs", daemon=True
        )

    def start(self) -> LogServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def node_status(self) -> dict[str, object]:
        """What a node's status must say for the API server to reach this server.

        Only an ``InternalIP``: the API server prefers a ``Hostname`` address, which
        would be the node's (unresolvable) name.
        """
        return {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
        }
