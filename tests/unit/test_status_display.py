"""``status.progress.display``: the short strings ``kubectl get ftj`` prints, derived from
the numbers wherever the operator builds a Progress."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from kubetune.controller.progress import progress_from_samples
from kubetune_contract.api.display import eta_text, loss_text, percent_text
from kubetune_contract.api.status import FineTuneJobStatus, Progress, ProgressDisplay
from tests.unit.test_status_derive import SUMMARY_OK, T0, job, observe, pod


@pytest.mark.parametrize(
    ("loss", "text"),
    [(3.034089279174805, "3.03"), (0.012345, "0.0123"), (12.3456, "12.3"), (2.5, "2.5")],
)
def test_loss_has_three_significant_digits(loss: float, text: str) -> None:
    assert loss_text(loss) == text


def test_progress_is_a_percentage() -> None:
    assert (percent_text(100), percent_text(0)) == ("100%", "0%")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (720, "12m"), (3599, "59m"), (3900, "1h05m")],
)
def test_eta_reads_in_seconds_minutes_then_hours(seconds: int, text: str) -> None:
    assert eta_text(seconds) == text


def test_display_follows_the_numbers_even_when_read_back_stale() -> None:
    progress = Progress(step=90, totalSteps=90, percent=100, loss=3.034089279174805, etaSeconds=0)
    assert progress.display == ProgressDisplay(percent="100%", loss="3.03", eta="0s")
    stale = progress.to_wire() | {"display": {"percent": "7%"}, "etaSeconds": 3900}
    assert Progress.model_validate(stale).display == ProgressDisplay(
        percent="100%", loss="3.03", eta="1h05m"
    )
    assert Progress(step=3).display == ProgressDisplay(), "nothing to show before a total"


def test_the_scraped_progress_carries_its_display() -> None:
    samples = {"step": 50.0, "total_steps": 200.0, "loss": 1.23456}
    progress = progress_from_samples(
        samples, now=T0 + timedelta(seconds=100), previous=None, started=T0
    )
    assert progress is not None
    assert progress.display == ProgressDisplay(percent="25%", loss="1.23", eta="5m")


def test_the_final_progress_is_written_with_its_display() -> None:
    done = pod(
        phase="Succeeded",
        terminated={"exitCode": 0, "reason": "Completed", "message": json.dumps(SUMMARY_OK)},
    )
    status = observe(job(conditions=[{"type": "Complete"}]), [done])
    written = status.model_dump(mode="json")  # what the operator patches
    assert written["progress"]["display"] == {"percent": "100%", "loss": "0.5", "eta": "0s"}
    assert FineTuneJobStatus.model_validate(written) == status
