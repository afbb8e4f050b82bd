"""Schedules run through a real ``celery beat`` (django-celery-beat's DatabaseScheduler) and a
real worker, on the test database and this run's Redis database."""

from __future__ import annotations

import itertools

import pytest
from django_celery_beat.models import PeriodicTask

from task_admin.models import Overlap, RunStatus, Trigger, WorkflowRun
from tests.support.factories import SUMA, invocation, schedule, workflow
from tests.support.workers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SLOW = "tests.testapp.tasks.slow"


def finished_runs(sched) -> list[WorkflowRun]:
    return list(
        WorkflowRun.objects.filter(schedule=sched, status__in=[
            RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.PARTIALLY_FAILED
        ]).order_by("pk")
    )


def test_beat_runs_a_scheduled_group_on_the_worker(beat):
    wf = workflow("tutorial group", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])]))
    sched = schedule(wf, name="group every second", every=1, overlap=Overlap.ALLOW)
    process = beat()
    runs = wait_for(lambda: len(finished_runs(sched)) >= 2 and finished_runs(sched),
                    timeout=60, what="two scheduled runs to finish")
    process.stop()
    for run in runs[:2]:
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert (run.trigger, run.trigger_detail) == (Trigger.SCHEDULE, "group every second")
        assert [n.result for n in run.nodes.order_by("position")] == [4, 8]
    sched.refresh_from_db()
    assert sched.last_outcome.startswith("started run #")
    assert "Sending due task group every second (task_admin.run_workflow)" in process.log()
    # Beat keeps its own bookkeeping on the PeriodicTask.
    assert PeriodicTask.objects.get(pk=sched.periodic_task_id).total_run_count >= 2


def test_overlap_skip_never_runs_two_at_once(beat):
    wf = workflow("slow", ("chain", [invocation(SLOW, kwargs={"seconds": 3})]))
    sched = schedule(wf, name="slow every second", every=1, overlap=Overlap.SKIP)
    process = beat()

    def skipped_and_done():
        sched.refresh_from_db()
        return sched.skipped_count >= 2 and len(finished_runs(sched)) >= 1

    wait_for(skipped_and_done, timeout=60, what="a finished run and two skipped firings")
    process.stop()
    runs = list(WorkflowRun.objects.filter(schedule=sched).order_by("created_at"))
    assert runs[0].status == RunStatus.SUCCEEDED
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None and later.created_at >= earlier.finished_at, (
            "a run started while the previous one was unfinished"
        )
