"""kopf's API session with a bounded connection pool.

kopf opens one TLS connection per concurrent API call (its connector is unlimited),
and every TLS connection holds ~130 KiB of buffers: a burst of 500 new jobs took the
operator's peak RSS from ~170 to ~300 MB (``bench/operator_scale.py``). kopf's own
``settings.queueing.worker_limit`` would bound that too, but deadlocks a restart with
more objects than workers (workers hold their slots while they wait for the indexes,
which need the other objects' workers). So the bound is on connections instead: calls
beyond it wait for a free connection.

Watch streams hold a connection each for their whole life: the pool is sized for them
(:func:`connection_limit`) and left unbounded when the watched namespaces are globs
(their number is unknown in advance).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import kopf

#: Connections for short API calls (patches, creates, events), beyond the watches.
CALL_CONNECTIONS = 32
#: Watch streams per watched namespace: FineTuneJobs, Jobs, pods, peering.
WATCHES_PER_NAMESPACE = 4
#: Cluster-wide watches: CRDs and namespaces (kopf's resource and namespace discovery).
CLUSTER_WATCHES = 2


def connection_limit(namespaces: Sequence[str], all_namespaces: bool) -> int:
    """Connections kopf may open; 0 (unlimited) when globs make the watch count unknown."""
    if any(char in pattern for pattern in namespaces for char in "*?[!"):
        return 0
    watched = 1 if all_namespaces else len(namespaces)
    return CALL_CONNECTIONS + CLUSTER_WATCHES + WATCHES_PER_NAMESPACE * watched


class Sessions:
    """The session made for the newest credentials, handed out again while they stay
    the same.

    kopf keeps the credentials the API server refused (401) and stops, with a
    ``LoginError``, when a login returns one of them again. It compares them by value,
    and a session is equal only to itself: a new session per login is never "the same"
    credentials, so once the operator's ServiceAccount was deleted (``helm uninstall``)
    kopf logged in again about 60 times a second and the pod ran out its 30 s grace
    period. New credentials (a rotated token) get a new session.
    """

    def __init__(self) -> None:
        self._newest: tuple[kopf.ConnectionInfo, kopf.AiohttpSession] | None = None

    def for_credentials(self, info: kopf.ConnectionInfo, limit: int) -> kopf.AiohttpSession:
        if self._newest is not None and self._newest[0] == info:
            return self._newest[1]
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
            headers=info.as_http_headers(),
            proxy=info.proxy_url,
            trust_env=info.trust_env,
        )
        wrapped = kopf.AiohttpSession(
            server=info.server,
            default_namespace=info.default_namespace,
            priority=info.priority,
            aiohttp_session=session,
        )
        self._newest = (info, wrapped)
        return wrapped


@kopf.on.login()
async def login(*, memo: Any, **kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's usual credentials (in-cluster, else kubeconfig) in a bounded session."""
    info = kopf.login_via_client(memo=memo, **kwargs)
    if info is None:
        return None
    return memo.sessions.for_credentials(info, memo.connections)
