"""Progress from the trainer's real metrics page (read by the operator's reader), ETA, and
termination message parsing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from datetime import UTC, datetime, timedelta

import aiohttp
from prometheus_client import generate_latest

from kubetune.controller.progress import (
    ProgressReader,
    parse_metrics,
    progress_from_samples,
    rank0_url,
    scrape,
)
from kubetune.controller.summary import checkpoints_of, parse_summary, result_of
from kubetune.controller.views import PodView
from kubetune_contract.api.status import Progress
from kubetune_contract.termination import Summary
from kubetune_trainer.metrics import TrainerMetrics

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def trainer_page(**values: float) -> str:
    metrics = TrainerMetrics()
    for name, value in values.items():
        metrics.set(name, value)
    return generate_latest(metrics.registry).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_samples_are_read_from_the_trainers_own_page() -> None:
    page = trainer_page(step=50, total_steps=200, epoch=0.25, loss=1.5, tokens_per_second=900)
    samples = parse_metrics(page + "\nother_metric 3\n")
    assert samples["step"] == 50 and samples["total_steps"] == 200
    assert samples["loss"] == 1.5 and "other_metric" not in samples


def test_progress_with_eta_from_the_average_rate_since_start() -> None:
    samples = parse_metrics(trainer_page(step=50, total_steps=200, epoch=0.25, loss=1.5))
    progress = progress_from_samples(
        samples, now=T0 + timedelta(seconds=100), previous=None, started=T0
    )
    assert progress is not None
    assert (progress.step, progress.totalSteps, progress.percent) == (50, 200, 25)
    assert progress.etaSeconds == 300  # 0.5 steps/s, 150 steps left
    assert progress.loss == 1.5 and progress.epoch == 0.25
    assert progress.evalLoss is None, "an eval loss of 0 means no evaluation yet"
    assert progress.tokensPerSecond is None


def test_eta_prefers_the_recent_rate() -> None:
    previous = Progress(step=40, totalSteps=200, updatedAt=T0 + timedelta(seconds=90))
    samples = {"step": 50.0, "total_steps": 200.0}
    progress = progress_from_samples(
        samples, now=T0 + timedelta(seconds=100), previous=previous, started=T0
    )
    assert progress is not None and progress.etaSeconds == 150  # 1 step/s recently


def test_no_eta_without_total_or_steps_and_none_without_a_step_gauge() -> None:
    assert progress_from_samples({}, now=T0, previous=None, started=T0) is None
    unknown = progress_from_samples({"step": 5.0}, now=T0, previous=None, started=None)
    assert unknown is not None and unknown.etaSeconds is None and unknown.percent is None
    done = progress_from_samples(
        {"step": 200.0, "total_steps": 200.0}, now=T0, previous=None, started=T0
    )
    assert done is not None and done.etaSeconds == 0 and done.percent == 100


async def scrape_once(url: str, timeout: float = 2.0) -> dict[str, float] | None:
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        return await scrape(session, url)


def test_scrape_reads_a_live_endpoint_and_tolerates_unreachable_ones() -> None:
    metrics = TrainerMetrics()
    metrics.set("step", 7)
    port = metrics.serve(free_port())
    samples = asyncio.run(scrape_once(f"http://127.0.0.1:{port}/metrics"))
    assert samples is not None and samples["step"] == 7
    assert asyncio.run(scrape_once(f"http://127.0.0.1:{free_port()}/metrics", 0.5)) is None
    assert asyncio.run(scrape_once("http://10.255.255.1:9090/metrics", 0.2)) is None


def running_pod(name: str, index: int, ip: str | None, phase: str = "Running") -> PodView:
    return PodView.from_manifest(
        {
            "metadata": {
                "name": name,
                "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
            },
            "status": {"phase": phase, **({"podIP": ip} if ip else {})},
        }
    )


def test_rank0_is_the_lowest_index_running_pod_with_an_ip() -> None:
    pods = [
        running_pod("b", 1, "127.0.0.3"),
        running_pod("a", 0, "127.0.0.2", phase="Pending"),
        running_pod("c", 2, None),
    ]
    assert rank0_url(pods, 9090) == "http://127.0.0.3:9090/metrics"
    assert rank0_url(pods[1:], 9090) is None


def test_reader_reads_each_running_job_once_per_interval() -> None:
    metrics = TrainerMetrics()
    metrics.set("step", 3)
    port = metrics.serve(free_port())
    running = {("ml", "a"), ("ml", "b")}
    readings: list[tuple[str, str]] = []
    reader = ProgressReader(
        running=lambda: running,
        pods=lambda key: [running_pod(key[1], 0, "127.0.0.1")],
        record=lambda key, samples: readings.append(key),
        port=port,
        interval=0.4,
    )

    async def run_for(seconds: float) -> None:
        task = asyncio.create_task(reader.run())
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run_for(1.0))  # reads at 0 s, 0.4 s and 0.8 s
    assert sorted(set(readings)) == [("ml", "a"), ("ml", "b")]
    assert 2 * 2 <= len(readings) <= 2 * 3


def test_summary_round_trips_from_the_trainers_writer() -> None:
    written = Summary(
        outcome="Succeeded",
        reason="Succeeded",
        message="ok",
        exitCode=0,
        step=10,
        totalSteps=10,
        metrics={"loss": 0.1, "evalLoss": float("nan")},
        result={"adapterUri": "s3://b/a", "manifestUri": "s3://b/m.json", "mergedUri": None},
        checkpoints=[{"step": 5, "uri": "s3://b/c5", "evalLoss": 0.3}, {"step": 10, "uri": "x"}],
    )
    summary = parse_summary(written.to_json())
    assert summary is not None
    result = result_of(summary)
    assert result.adapterUri == "s3://b/a" and result.mergedUri is None
    assert result.metrics == {"loss": 0.1}, "NaN can't be stored in status"
    assert [(c.step, c.evalLoss) for c in checkpoints_of(summary)] == [(5, 0.3), (10, None)]


def test_log_tails_and_partial_json_are_not_summaries() -> None:
    assert parse_summary("Traceback (most recent call last): ...") is None
    assert parse_summary(json.dumps({"outcome": "Failed"})) is None
    assert parse_summary(json.dumps([1, 2])) is None
    extra = {
        "outcome": "Failed",
        "reason": "InternalError",
        "exitCode": 1,
        "message": "x",
        "new": 1,
    }
    parsed = parse_summary(json.dumps(extra))
    assert parsed is not None and parsed.reason == "InternalError"
