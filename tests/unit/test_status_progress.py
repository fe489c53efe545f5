"""Progress from the trainer's real metrics page, ETA, and termination message parsing."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest

from kubetune.api.status import Progress
from kubetune.controller.progress import parse_metrics, progress_from_samples, scrape
from kubetune.controller.summary import checkpoints_of, parse_summary, result_of
from kubetune_trainer.metrics import TrainerMetrics
from kubetune_trainer.termination import Summary

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


def test_scrape_reads_a_live_endpoint_and_tolerates_unreachable_ones() -> None:
    metrics = TrainerMetrics()
    metrics.set("step", 7)
    port = metrics.serve(free_port())
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert samples is not None and samples["step"] == 7
    assert scrape(f"http://127.0.0.1:{free_port()}/metrics", timeout=0.5) is None
    assert scrape("http://10.255.255.1:9090/metrics", timeout=0.2) is None


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
