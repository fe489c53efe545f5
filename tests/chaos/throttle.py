"""A TCP proxy that slows a connection down to a given rate: a slow link to the store.

Why: uploads of the tiny test model's checkpoints and adapter take milliseconds, so a
test cannot act *while* one is under way. Put between the trainer and S3 (the job's
``AWS_ENDPOINT_URL`` points at the proxy), a few KB/s make every upload last seconds,
and "delete the job while it writes a checkpoint" becomes a moment a test can wait for.
The proxy forwards bytes unchanged in both directions; only the pace changes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rate: int) -> None:
    """Copy one direction at ``rate`` bytes/s until either side closes or the proxy stops
    (a peer hanging up mid-transfer is the normal end of a connection here, not an error)."""
    chunk = max(1, rate // 10)
    try:
        with suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(chunk):
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(len(data) / rate)
    finally:
        writer.close()


@contextmanager
def throttled(
    listen_host: str, target_host: str, target_port: int, bytes_per_second: int
) -> Iterator[int]:
    """Run the proxy on ``listen_host`` (a free port, returned) towards
    ``target_host:target_port`` until the block ends."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(target_host, target_port)
        await asyncio.gather(
            _pipe(client_r, server_w, bytes_per_second),
            _pipe(server_r, client_w, bytes_per_second),
        )

    async def serve() -> asyncio.Server:
        server = await asyncio.start_server(handle, listen_host, 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()
        return server

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(serve())
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
