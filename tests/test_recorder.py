"""When the recorder writes what it holds: after the process's own quiet time, or its age."""

from __future__ import annotations

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


def add_every(recorder: Recorder, clock: Clock, seconds: float, count: int) -> None:
    for i in range(count):
        clock.now += seconds
        recorder.add(tracking.Event(tracking.STARTED, f"ta-{i}"))


def test_a_busy_process_writes_the_end_of_its_burst_soon_after_its_last_event(clock):
    recorder = buffering()
    add_every(recorder, clock, 0.002, 40)  # a task's events every 2 ms
    due = recorder._due_in()
    assert MIN_IDLE <= due < IDLE / 2  # about four gaps, not the 50 ms of a slow process


def test_a_slow_process_waits_the_whole_quiet_time_so_its_batches_stay_big(clock, settings):
    settings.TASK_ADMIN = {"FLUSH_INTERVAL": 5}
    recorder = buffering()
    add_every(recorder, clock, 0.02, 40)  # 20 ms between events: a loaded machine
    assert recorder._due_in() == pytest.approx(IDLE)


def test_a_lone_event_after_a_quiet_spell_waits_the_whole_quiet_time(clock):
    recorder = buffering()
    add_every(recorder, clock, 0.002, 40)
    recorder.flush()
    clock.now += 60  # a minute without tasks
    add_every(recorder, clock, 0.001, 2)  # one short task's started and succeeded
    assert recorder._due_in() > IDLE / 2


def test_the_worker_main_process_waits_the_whole_quiet_time_whatever_its_pace(clock):
    recorder = buffering(main_process=True)
    add_every(recorder, clock, 0.002, 40)
    assert recorder._due_in() == pytest.approx(IDLE)


def test_a_busy_process_still_writes_at_the_flush_interval(clock, settings):
    settings.TASK_ADMIN = {"FLUSH_INTERVAL": 0.1}
    recorder = buffering()
    add_every(recorder, clock, 0.002, 200)  # 0.4 s of events, never quiet
    assert recorder._due_in() == 0  # older than the interval: written now
