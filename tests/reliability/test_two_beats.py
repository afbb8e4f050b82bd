"""Issue 8, item 3: two beat processes never double a firing.

A firing claims its due time (``ScheduleFiring``, unique per schedule and due time) in the
transaction that starts or skips its run, so the message the second beat sends for the same due
time changes nothing. Two real ``celery beat`` processes, the session's real worker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule

from task_admin import scheduling
from task_admin.models import Overlap, ScheduleFiring, WorkflowRun, WorkflowSchedule
from tests.support.factories import SUMA, invocation, schedule, workflow
from tests.support.workers import start_celery, wait_for

EVERY = 2  # seconds; a due time tolerates half an interval of lag between the two beats


def firings(sched: WorkflowSchedule) -> int:
    """How many times the schedule acted: runs started plus firings skipped."""
    sched.refresh_from_db()
    return WorkflowRun.objects.filter(schedule=sched).count() + sched.skipped_count


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_beats_start_each_due_time_once(worker, celery_app, tmp_path):
    adds = workflow("adds", ("group", [invocation(SUMA, [2, 2])]))
    slow = workflow("slow", ("chain", [
        invocation("tests.testapp.tasks.slow", kwargs={"seconds": 3}, immutable=True),
    ]))
    allow = schedule(adds, name="adds", every=EVERY, overlap=Overlap.ALLOW)
    skip = schedule(slow, name="slow", every=EVERY, overlap=Overlap.SKIP)
    beats = []

    def sent(name: str) -> list[int]:
        return [beat.log().count(f"Sending due task {name} ") for beat in beats]

    try:
        for _ in range(2):
            beats.append(start_celery(
                "beat", log_dir=tmp_path, app=celery_app,
                extra=("--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                       "--max-interval", "1", "--pidfile", ""),
            ))
        wait_for(lambda: min(sent("adds") + sent("slow")) >= 3, timeout=90,
                 what="each beat to send each schedule three times")
    finally:
        for beat in beats:
            beat.stop()
    # Both beats sent every due time; each due time acted once (started or skipped): no more
    # firings than the busier beat sent (one more for a beat's first, out-of-step send).
    for sched, name in ((allow, "adds"), (skip, "slow")):
        assert firings(sched) <= max(sent(name)) + 1, (name, firings(sched), sent(name))
    assert ScheduleFiring.objects.filter(schedule=allow).count() == firings(allow)


# -- due times, without processes ---------------------------------------------------------------


@pytest.mark.django_db
def test_interval_due_times_count_whole_intervals_from_the_last_firing():
    sched = schedule(workflow("adds", ("group", [invocation(SUMA, [2, 2])])), every=60)
    first = timezone.now()
    assert scheduling.due_time(sched, first) == first
    ScheduleFiring.objects.create(schedule=sched, due_at=first)
    assert scheduling.due_time(sched, first + timedelta(seconds=20)) is None  # a second beat
    assert scheduling.due_time(sched, first + timedelta(seconds=50)) == first + timedelta(
        seconds=60
    )  # a beat sending a little early
    assert scheduling.due_time(sched, first + timedelta(seconds=185)) == first + timedelta(
        seconds=180
    )


@pytest.mark.django_db
def test_crontab_and_clocked_due_times_are_the_scheduled_ones():
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2])]))
    every_5 = CrontabSchedule.objects.create(minute="*/5", hour="*", timezone="UTC")
    cron = scheduling.save_schedule(WorkflowSchedule(workflow=wf), name="cron", crontab=every_5)
    at = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    clocked = scheduling.save_schedule(
        WorkflowSchedule(workflow=wf), name="once",
        clocked=ClockedSchedule.objects.create(clocked_time=at),
    )
    assert scheduling.due_time(clocked, timezone.now()) == at
    noon = datetime(2030, 1, 1, 12, 5, tzinfo=UTC)
    for lag in (0.2, 3, 25):  # whichever beat, however late within the look-back
        assert scheduling.due_time(cron, noon + timedelta(seconds=lag)) == noon
    # Not near a scheduled time (a beat restarted with a stale last run): the second it came.
    odd = noon + timedelta(minutes=2, seconds=3, microseconds=5)
    assert scheduling.due_time(cron, odd) == odd.replace(microsecond=0)
