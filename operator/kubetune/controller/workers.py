"""The operator's own background work: queue workers and the progress reader.

kopf's handlers only file keys here (:mod:`kubetune.controller.handlers`); passes run
in a pool of ``workers`` threads (the API client is synchronous), at most one per job
at a time, and the one :class:`~kubetune.controller.progress.ProgressReader` reads
running trainers in the event loop. Started and stopped by kopf's startup and cleanup
handlers, so they live exactly as long as the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from kubetune.controller.progress import ProgressReader
from kubetune.controller.reconciler import API_RETRY_SECONDS, Reconciler
from kubetune.controller.runtime import now
from kubetune.controller.views import Key
from kubetune.controller.workqueue import WorkQueue

log = logging.getLogger("kubetune.operator")


class Controller:
    """A work queue of FineTuneJob keys, its workers, and the progress reader."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        workers: int,
        metrics_port: int,
        progress_interval: float,
    ) -> None:
        self.queue: WorkQueue[Key] = WorkQueue()
        self._reconciler = reconciler
        self._workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        runtime = reconciler.runtime
        self._reader = ProgressReader(
            running=runtime.running,
            pods=reconciler.views.pods,
            record=self._record,
            port=metrics_port,
            interval=progress_interval,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def enqueue(self, key: Key, trigger: str) -> None:
        self.queue.add(key, trigger)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        self._tasks.append(asyncio.create_task(self._reader.run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _record(self, key: Key, samples: dict[str, float]) -> None:
        self._reconciler.runtime.record(key, samples, now())
        self.queue.add(key, "progress")

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key, trigger = await self.queue.get()
            again: float | None
            try:
                again = await loop.run_in_executor(
                    self._executor, self._reconciler.reconcile, key, trigger
                )
            except Exception:  # a bug must not stop the worker: log it, try later
                log.exception("%s/%s: reconciliation failed", *key)
                again = API_RETRY_SECONDS
            finally:
                self.queue.done(key)
            if again is not None:
                self.queue.add(key, "timer", again)
