"""Imported at start-up by every Python process the pod runner starts (it leads PYTHONPATH).

Why: in a real pod each container has its own network namespace, so a server that
binds ``0.0.0.0:9090`` listens on the pod's IP only, and two pods can use the same port.
Local processes share the host's network, so the pod runner gives each pod its own
loopback address (``127.x.y.z``, in ``$KUBETUNE_PODRUNNER_POD_IP``) and this hook turns
an IPv4 bind to the wildcard address into a bind to that address: the trainer's
metrics endpoint is then reachable at ``podIP:port``, like in a cluster, and pods don't
collide. Only Python-level sockets are affected; nothing happens outside the pod runner.
"""

from __future__ import annotations

import os
import socket
from typing import Any

_POD_IP = os.environ.get("KUBETUNE_PODRUNNER_POD_IP")

if _POD_IP:
    _bind = socket.socket.bind

    def _bind_pod_ip(self: socket.socket, address: Any) -> None:
        if (
            self.family == socket.AF_INET
            and isinstance(address, tuple)
            and address[0] in ("", "0.0.0.0")
        ):
            address = (_POD_IP, *address[1:])
        _bind(self, address)

    socket.socket.bind = _bind_pod_ip  # type: ignore[method-assign,assignment]
