"""Issue 8, item 10: finished runs are pruned after their retention, in batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from task_admin import periodic, retention, services
from task_admin.models import (
    NodeState,
    RunStatus,
    ScheduleFiring,
    TaskAttempt,
    TaskRun,
    WorkflowRun,
)
from tests.support.factories import SUMA, invocation, schedule, workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_run(django_capture_on_commit_callbacks):
    wf = workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))

    def make(status: str, age_days: float) -> WorkflowRun:
        with django_capture_on_commit_callbacks(execute=False):
            run = services.run_workflow(wf)
        finished = timezone.now() - timedelta(days=age_days)
        state = NodeState.SUCCESS if status == RunStatus.SUCCEEDED else NodeState.FAILURE
        run.nodes.update(state=state, finished_at=finished)
        for node in run.nodes.all():
            TaskAttempt.objects.create(task_run=node, number=1, state=state)
        unfinished = status in (RunStatus.RUNNING, RunStatus.PENDING)
        WorkflowRun.objects.filter(pk=run.pk).update(
            status=status, finished_at=None if unfinished else finished
        )
        run.refresh_from_db()
        return run

    return make


def test_prune_keeps_each_status_for_its_days_and_never_unfinished_runs(make_run, settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN,
                           "RETENTION_DAYS": {"succeeded": 7, "failed": 30}}
    old_ok = [make_run(RunStatus.SUCCEEDED, 8) for _ in range(5)]
    young_ok = make_run(RunStatus.SUCCEEDED, 6)
    make_run(RunStatus.FAILED, 31)
    young_failed = make_run(RunStatus.FAILED, 20)
    kept_for_ever = make_run(RunStatus.REVOKED, 400)  # no retention for "revoked"
    running = make_run(RunStatus.RUNNING, 400)
    # A re-run of a pruned run stays, its link emptied; a result it reused too.
    rerun = make_run(RunStatus.SUCCEEDED, 1)
    WorkflowRun.objects.filter(pk=rerun.pk).update(rerun_of=old_ok[0])
    rerun.nodes.update(reused_from=old_ok[0].nodes.first())

    with CaptureQueriesContext(connection) as queries:
        assert retention.due_counts() == {"succeeded": 5, "failed": 1}
    assert len(queries) == 1  # one bounded query, whatever the number of statuses
    assert retention.prune(batch_size=2) == {"succeeded": 5, "failed": 1}

    left = set(WorkflowRun.objects.values_list("pk", flat=True))
    assert left == {young_ok.pk, young_failed.pk, kept_for_ever.pk, running.pk, rerun.pk}
    assert not TaskRun.objects.exclude(run_id__in=left).exists()
    assert TaskAttempt.objects.count() == 2 * len(left)
    rerun.refresh_from_db()
    assert rerun.rerun_of is None and not rerun.nodes.filter(reused_from__isnull=False).exists()


def test_each_batch_is_one_short_transaction(make_run, settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RETENTION_DAYS": {"succeeded": 1}}
    for _ in range(6):
        make_run(RunStatus.SUCCEEDED, 2)
    with CaptureQueriesContext(connection) as queries:
        retention.prune(batch_size=2)
    deletes = [
        q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "task_admin_workflowrun"')
    ]
    assert len(deletes) == 3  # 6 runs, 2 a batch: no statement touches more than a batch
    # The same number of statements per batch, however many nodes a run has.
    assert len(queries) < 40


def test_prune_command_and_dry_run(make_run, settings, capsys):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RETENTION_DAYS": {"failed": 1}}
    make_run(RunStatus.FAILED, 2)
    call_command("task_admin", "prune", "--dry-run")
    assert "failed: would delete 1 run" in capsys.readouterr().out
    assert WorkflowRun.objects.count() == 1
    call_command("task_admin", "prune", "--batch-size", "10")
    assert "failed: deleted 1 run\n" in capsys.readouterr().out
    assert not WorkflowRun.objects.exists()
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RETENTION_DAYS": None}
    call_command("task_admin", "prune")
    assert "No retention is set" in capsys.readouterr().out


def test_old_due_time_claims_go_but_each_schedules_latest_stays(make_run):
    sched = schedule(workflow("w", ("group", [invocation(SUMA, [1, 1])])))
    now = timezone.now()
    for days in (5, 4, 3):
        ScheduleFiring.objects.create(schedule=sched, due_at=now - timedelta(days=days))
    ScheduleFiring.objects.update(fired_at=now - timedelta(days=3))
    retention.prune()
    assert list(sched.firings.values_list("due_at", flat=True)) == [now - timedelta(days=3)]


def test_the_changelist_shows_the_policy_and_the_counts(admin_client, make_run, settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RETENTION_DAYS": {"succeeded": 7}}
    make_run(RunStatus.SUCCEEDED, 8)
    make_run(RunStatus.SUCCEEDED, 9)
    html = admin_client.get(reverse("admin:task_admin_workflowrun_changelist")).content.decode()
    assert "Finished runs are kept for — succeeded: 7 days" in html
    assert "Past their retention, to be pruned:" in html and "succeeded: 2" in html


@pytest.mark.parametrize("task_name,every", [
    ("task_admin.prune", 3600), ("task_admin.reconcile", 30),
])
def test_migrate_installs_the_periodic_tasks_once(task_name, every):
    # Installed by post_migrate when the test database was created (as in the demo, whose beat
    # then sends them); installing again (a later migrate) adds no second one.
    periodic.install()
    task = PeriodicTask.objects.get(task=task_name)
    assert task.interval.every == every and task.enabled
