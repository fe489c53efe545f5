"""When a derived status is written (pacing) and when a job gets its next pass (schedule)."""

from __future__ import annotations

from datetime import UTC, datetime

from kubetune.controller.pacing import Pacing, WriteLog, due, only_progress
from kubetune.controller.workqueue import Schedule
from kubetune_contract.api.status import Condition, FineTuneJobStatus, Progress

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PACING = Pacing(settle=10.0, progress=15.0, rewording=15.0)


def status(
    state: str, reason: str, message: str = "", step: int | None = None
) -> FineTuneJobStatus:
    kind = {"Running": "Running", "Queued": "Queued", "Pending": "Queued"}[state]
    condition = Condition(
        type=kind,  # type: ignore[arg-type]
        status="True",
        reason=reason,
        message=message,
        lastTransitionTime=T0,
        observedGeneration=1,
    )
    progress = Progress(step=step, updatedAt=T0) if step is not None else None
    return FineTuneJobStatus(state=state, conditions=[condition], progress=progress)  # type: ignore[arg-type]


def test_equal_status_needs_no_write() -> None:
    running = status("Running", "Running")
    assert due(running, running.model_copy(), WriteLog(), 100.0, PACING) is None


def test_a_new_state_is_written_at_once() -> None:
    assert (
        due(status("Pending", "Pending"), status("Running", "Running"), WriteLog(), 100.0, PACING)
        == 100.0
    )


def test_a_transient_step_waits_from_when_it_was_first_seen() -> None:
    log = WriteLog()
    assert due(FineTuneJobStatus(), status("Pending", "Pending"), log, 100.0, PACING) == 110.0
    log.pending(100.0)
    assert due(FineTuneJobStatus(), status("Pending", "Creating"), log, 104.0, PACING) == 110.0
    log.settled()
    assert log.changed_at is None


def test_progress_alone_waits_for_its_interval_since_the_last_progress_write() -> None:
    before, after = status("Running", "Running", step=1), status("Running", "Running", step=2)
    assert only_progress(before, after)
    assert due(before, after, WriteLog(), 100.0, PACING) == 100.0, "no progress written yet"
    log = WriteLog()
    log.wrote(95.0, progress=True)
    assert due(before, after, log, 100.0, PACING) == 110.0
    log.wrote(99.0, progress=False)
    assert due(before, after, log, 100.0, PACING) == 110.0, "other writes don't count"


def test_scheduler_rewording_waits_for_its_interval_since_the_last_write() -> None:
    before = status("Queued", "Unschedulable", "0/4 nodes: 4 Insufficient gpu")
    after = status("Queued", "Unschedulable", "0/4 nodes: 3 Insufficient gpu")
    assert not only_progress(before, after)
    log = WriteLog()
    log.wrote(90.0, progress=False)
    assert due(before, after, log, 100.0, PACING) == 105.0
    assert due(before, status("Running", "Running"), log, 100.0, PACING) == 100.0


def test_schedule_hands_out_each_key_once_at_its_earliest_time() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add("a", 5.0, "child")
    schedule.add("a", 2.0, "timer")
    schedule.add("a", 9.0, "spec")
    schedule.add("b", 3.0, "spec")
    assert schedule.pop(1.0) is None and schedule.next_at() == 2.0
    assert schedule.pop(4.0) == ("a", "child"), "the first reason since the last pass"
    assert schedule.pop(4.0) == ("b", "spec")
    assert schedule.pop(100.0) is None, "superseded entries are skipped"


def test_a_key_added_during_its_pass_gets_one_more_pass_after_it() -> None:
    schedule: Schedule[str] = Schedule()
    schedule.add("a", 0.0, "spec")
    assert schedule.pop(0.0) == ("a", "spec")
    schedule.add("a", 1.0, "child")
    schedule.add("a", 1.5, "child")
    assert schedule.pop(2.0) is None, "never two passes of one key at a time"
    schedule.done("a")
    assert schedule.pop(2.0) == ("a", "child")
    schedule.done("a")
    assert schedule.pop(3.0) is None
