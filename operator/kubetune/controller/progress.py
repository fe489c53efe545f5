"""Training progress from the trainer's Prometheus endpoint (rank 0), with an ETA.

Only the rank-0 pod is read: every rank reports the same step, and one small request
per running job per interval keeps the operator's traffic flat. One
:class:`ProgressReader` reads every running job of the process on one aiohttp session
(no thread, no task per job), each job every ``interval`` seconds; what it reads is
handed to the job's next reconciliation pass, which decides when it is written
(:mod:`kubetune.controller.pacing`). A trainer that isn't serving yet (loading the
model), a network policy, or a pod IP that can't be reached from the operator is
normal, so failures return ``None`` and are not logged as errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from kubetune.controller.views import Key, PodView
from kubetune_contract.api.status import Progress
from kubetune_contract.metrics import PREFIX

#: Bytes read from the endpoint at most: a trainer's page is ~2 KiB; anything far
#: larger is not ours.
_MAX_BYTES = 256 * 1024
#: Reads in flight at most (each holds a connection to a trainer).
CONCURRENT_READS = 16
#: Seconds one read may take.
READ_TIMEOUT = 2.0


def parse_metrics(text: str) -> dict[str, float]:
    """``kubetune_trainer_*`` samples (prefix removed) from a Prometheus text page."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(PREFIX):
                found[sample.name[len(PREFIX) :]] = float(sample.value)
    return found


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float] | None:
    """The trainer's samples at ``url``; ``None`` when unreachable or not a metrics page."""
    try:
        async with session.get(url) as response:
            if response.status != 200:
                return None
            page = await response.content.read(_MAX_BYTES)
        return parse_metrics(page.decode("utf-8", "replace"))
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return None


def rank0_url(pods: Sequence[PodView], port: int) -> str | None:
    """The metrics URL of the lowest-index running pod (rank 0 once it runs)."""
    running = sorted((p for p in pods if p.phase == "Running" and p.ip), key=lambda p: p.index)
    return f"http://{running[0].ip}:{port}/metrics" if running else None


class ProgressReader:
    """Reads rank 0 of every running job every ``interval`` seconds.

    ``running`` says which jobs run now, ``pods`` gives a job's pods (from the
    operator's index) and ``record`` takes each reading (samples and when they were
    read).
    """

    def __init__(
        self,
        *,
        running: Callable[[], Collection[Key]],
        pods: Callable[[Key], Sequence[PodView]],
        record: Callable[[Key, dict[str, float]], None],
        port: int,
        interval: float,
    ) -> None:
        self._running = running
        self._pods = pods
        self._record = record
        self._port = port
        self._interval = interval
        self._next: dict[Key, float] = {}
        self._reads: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Read until cancelled: each job when its interval is over (first at once)."""
        connector = aiohttp.TCPConnector(limit=CONCURRENT_READS)
        timeout = aiohttp.ClientTimeout(total=READ_TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while True:
                self._start_due_reads(session, time.monotonic())
                await asyncio.sleep(min(1.0, self._interval))

    def _start_due_reads(self, session: aiohttp.ClientSession, now: float) -> None:
        running = set(self._running())
        for key in [key for key in self._next if key not in running]:
            del self._next[key]
        for key in running:
            if self._next.get(key, now) > now:
                continue
            self._next[key] = now + self._interval
            url = rank0_url(self._pods(key), self._port)
            if url is not None:
                task = asyncio.create_task(self._read(session, key, url))
                self._reads.add(task)
                task.add_done_callback(self._reads.discard)

    async def _read(self, session: aiohttp.ClientSession, key: Key, url: str) -> None:
        samples = await scrape(session, url)
        if samples:
            self._record(key, samples)


def _eta_seconds(
    step: int, total: int | None, now: datetime, previous: Progress | None, started: datetime | None
) -> int | None:
    """Seconds to the last step at the recent rate (since the last sample), falling back
    to the average rate since the start."""
    if not total or step <= 0:
        return None
    if step >= total:
        return 0
    rate: float | None = None
    if previous and previous.updatedAt and step > previous.step:
        elapsed = (now - previous.updatedAt).total_seconds()
        rate = (step - previous.step) / elapsed if elapsed > 0 else None
    if rate is None and started is not None:
        elapsed = (now - started).total_seconds()
        rate = step / elapsed if elapsed > 0 else None
    return round((total - step) / rate) if rate else None


def _reported(samples: Mapping[str, float], name: str) -> float | None:
    """A gauge's value, ``None`` while it still holds its initial 0 (not reported yet)."""
    value = samples.get(name)
    return value if value else None


def progress_from_samples(
    samples: Mapping[str, float],
    *,
    now: datetime,
    previous: Progress | None,
    started: datetime | None,
) -> Progress | None:
    """``status.progress`` from the trainer's samples; ``None`` without a step gauge."""
    if "step" not in samples:
        return None
    step = max(0, int(samples["step"]))
    total = int(samples.get("total_steps", 0)) or None
    return Progress(
        step=step,
        totalSteps=total,
        percent=min(100, step * 100 // total) if total else None,
        epoch=samples.get("epoch"),
        loss=_reported(samples, "loss"),
        evalLoss=_reported(samples, "eval_loss"),
        tokensPerSecond=_reported(samples, "tokens_per_second"),
        etaSeconds=_eta_seconds(step, total, now, previous, started),
        updatedAt=now,
    )
