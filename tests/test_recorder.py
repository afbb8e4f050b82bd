"""When the recorder writes what it holds: after the process's own quiet time, or its age."""

from __future__ import annotations

import random

import pytest

from task_admin import recorder as recorder_module
from task_admin import tracking
from task_admin.recorder import IDLE, MIN_IDLE, Recorder


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(recorder_module.time, "monotonic", clock)
    return clock


def buffering(*, main_process: bool = False) -> Recorder:
    recorder = Recorder(write=lambda events: None)
    recorder.buffered = True
    recorder._start = lambda: None  # no thread: the test asks when it would write
    recorder.min_quiet = IDLE if main_process else MIN_IDLE
    return recorder


def run_tasks(recorder: Recorder, clock: Clock, gaps, runtime: float = 0.0003,
              *, write: bool = True) -> int:
    """A pool process's events for tasks ``gaps`` seconds apart (started, then succeeded
    ``runtime`` later); how many batches the writer thread writes meanwhile (``write``: else
    it never wakes)."""
    writes = 0

    def event(kind: str, at: float) -> None:
        nonlocal writes
        due = recorder._due_in()
        if write and due is not None and at > clock.now + due:
            writes += 1  # the thread woke at clock.now + due and wrote the buffer
            recorder._events = []
        clock.now = at
        recorder.add(tracking.Event(kind, "ta-task"))

    at = clock.now
    for gap in gaps:
        at += gap
        event(tracking.STARTED, at)
        at += runtime
        event(tracking.SUCCEEDED_EVENT, at)
    return writes


def test_a_busy_process_writes_the_end_of_its_burst_soon_after_its_last_event(clock):
    recorder = buffering()
    assert run_tasks(recorder, clock, [0.002] * 40) == 0  # a task every 2 ms
    assert MIN_IDLE - 1e-9 <= recorder._due_in() < IDLE / 2


@pytest.mark.parametrize(("gap", "quiet"), [(0.01, 0.02), (0.03, IDLE)])
def test_a_slower_process_waits_longer_and_never_between_even_tasks(clock, settings, gap,
                                                                    quiet):
    settings.TASK_ADMIN = {"FLUSH_INTERVAL": 5}
    recorder = buffering()
    assert run_tasks(recorder, clock, [gap] * 40) == 0
    assert recorder._due_in() == pytest.approx(quiet, rel=0.1)


def test_a_task_after_a_quiet_spell_waits_the_whole_quiet_time(clock):
    recorder = buffering()
    run_tasks(recorder, clock, [0.002] * 40)
    recorder.flush()
    run_tasks(recorder, clock, [60])  # one short task after a minute without any
    assert recorder._due_in() == pytest.approx(IDLE)


def test_the_worker_main_process_waits_the_whole_quiet_time_whatever_its_pace(clock):
    recorder = buffering(main_process=True)
    run_tasks(recorder, clock, [0.002] * 40)
    assert recorder._due_in() == pytest.approx(IDLE)


def test_a_busy_process_still_writes_at_the_flush_interval(clock, settings):
    settings.TASK_ADMIN = {"FLUSH_INTERVAL": 0.1}
    recorder = buffering()
    run_tasks(recorder, clock, [0.002] * 200, write=False)  # 0.4 s of events, never quiet
    assert recorder._due_in() == 0  # older than the interval: written now


@pytest.mark.parametrize("mean_gap", [0.002, 0.005, 0.01, 0.02])
def test_uneven_gaps_do_not_shrink_the_batches(clock, mean_gap):
    """Tasks arriving at random (exponential gaps, as a loaded worker sees them): the quiet
    time widens with the gaps' spread, so the process writes about as many batches as with a
    fixed 50 ms wait, not one at every pause a little longer than usual."""
    draw = random.Random(7)
    gaps = [draw.expovariate(1 / mean_gap) for _ in range(1000)]
    adaptive = run_tasks(buffering(), clock, gaps)
    assert adaptive <= 2 * writes_with_a_fixed_wait(gaps) + 25


def writes_with_a_fixed_wait(gaps, runtime: float = 0.0003, interval: float = 0.25) -> int:
    """``run_tasks``'s count for a process that always waits IDLE (the rule before)."""
    writes, first, last, start = 0, None, 0.0, 0.0
    for gap in gaps:
        start += gap
        for at in (start, start + runtime):
            if first is not None and at > min(first + interval, last + IDLE):
                writes, first = writes + 1, None
            first = at if first is None else first
            last = at
        start += runtime
    return writes
