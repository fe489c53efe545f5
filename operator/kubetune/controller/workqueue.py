"""Which FineTuneJobs need a reconciliation pass, and when (as client-go's work queue).

Every trigger (a watch event of the FineTuneJob, its Job or its pods; a progress
reading; a status write that waits; a retry; a TTL) only adds the job's key. A key is
queued at most once, at its earliest due time, and never handed to two workers at
once: a burst of pod events for one job becomes one pass that sees all of them, and a
key added while its pass runs gets one more pass after it, which sees what changed.

:class:`Schedule` is the bookkeeping (pure, the caller passes the time);
:class:`WorkQueue` wraps it for asyncio workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Schedule(Generic[K]):
    """Due times of keys; each key queued once and processed by one worker at a time."""

    def __init__(self) -> None:
        self._due: dict[K, float] = {}
        self._reasons: dict[K, str] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._active: set[K] = set()
        self._deferred: set[K] = set()

    def add(self, key: K, at: float, reason: str) -> None:
        """Queue ``key`` for ``at``; an earlier due time already queued stands. The
        reason kept is the first one since the key's last pass began."""
        self._reasons.setdefault(key, reason)
        if key in self._due and self._due[key] <= at:
            return
        self._due[key] = at
        heapq.heappush(self._heap, (at, next(self._order), key))

    def pop(self, now: float) -> tuple[K, str] | None:
        """A key due by ``now`` whose pass isn't running (it is then active), with the
        reason it was queued."""
        while self._heap and self._heap[0][0] <= now:
            at, _, key = heapq.heappop(self._heap)
            if self._due.get(key) != at:
                continue  # superseded: re-queued for an earlier time
            if key in self._active:
                self._deferred.add(key)  # handed out again when its pass is done
                continue
            del self._due[key]
            self._active.add(key)
            return key, self._reasons.pop(key, "")
        return None

    def next_at(self) -> float | None:
        """The earliest due time queued (perhaps of a superseded entry), if any."""
        return self._heap[0][0] if self._heap else None

    def done(self, key: K) -> None:
        """The pass of ``key`` is over; if it was due meanwhile, it is due again."""
        self._active.discard(key)
        if key in self._deferred:
            self._deferred.discard(key)
            heapq.heappush(self._heap, (self._due[key], next(self._order), key))


class WorkQueue(Generic[K]):
    """A :class:`Schedule` on the monotonic clock, for workers in one event loop."""

    def __init__(self) -> None:
        self._schedule: Schedule[K] = Schedule()
        self._wakeup = asyncio.Event()

    def add(self, key: K, reason: str, delay: float = 0.0) -> None:
        self._schedule.add(key, time.monotonic() + max(0.0, delay), reason)
        self._wakeup.set()

    def done(self, key: K) -> None:
        self._schedule.done(key)
        self._wakeup.set()

    async def get(self) -> tuple[K, str]:
        """Wait for a due key that no other worker holds; call :meth:`done` after."""
        while True:
            self._wakeup.clear()  # before looking: an add() from now on wakes us
            now = time.monotonic()
            found = self._schedule.pop(now)
            if found is not None:
                return found
            next_at = self._schedule.next_at()
            timeout = None if next_at is None else max(0.0, next_at - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
