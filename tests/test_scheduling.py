"""``scheduling.fire``: what beat's ``task_admin.run_workflow`` does, policy by policy.

The canvas is not sent here (on_commit callbacks are captured, not run); that beat and a real
worker carry a schedule through is proven in tests/integration/test_beat.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from task_admin import scheduling
from task_admin.models import NodeState, Overlap, RunStatus, Trigger, WorkflowRun
from tests.support.factories import SUMA, invocation, next_due, schedule, workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def adds():
    return workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))


@pytest.fixture
def fire(django_capture_on_commit_callbacks):
    def fire(sched):
        next_due(sched)
        with django_capture_on_commit_callbacks(execute=False) as sent:
            outcome = scheduling.fire(sched.pk)
        sched.refresh_from_db()
        return outcome, len(sent)

    return fire


def test_a_fired_schedule_starts_a_run_it_owns(fire):
    adds = workflow("adds", ("chain", [invocation(SUMA, [2], {"b": 2}), invocation(SUMA, [4])]))
    sched = schedule(adds, name="adds hourly", overrides={"root.0": {"b": 6}})
    outcome, sent = fire(sched)
    run = WorkflowRun.objects.get()
    assert outcome == f"started run #{run.pk}" == sched.last_outcome
    assert sent == 1 and sched.last_fired_at is not None
    assert (run.trigger, run.trigger_detail, run.schedule) == (
        Trigger.SCHEDULE, "adds hourly", sched
    )
    assert run.overrides == {"root.0": {"b": 6}}
    assert run.spec["root"]["tasks"][0]["kwargs"] == {"b": 6}


def test_skip_while_the_previous_run_is_unfinished(adds, fire):
    sched = schedule(adds, overlap=Overlap.SKIP)
    fire(sched)
    first = WorkflowRun.objects.get()
    outcome, sent = fire(sched)
    assert outcome == f"skipped: run #{first.pk} is unfinished"
    assert (sent, sched.skipped_count, WorkflowRun.objects.count()) == (0, 1, 1)
    WorkflowRun.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED)
    outcome, sent = fire(sched)
    assert outcome.startswith("started run #") and WorkflowRun.objects.count() == 2


def test_allow_starts_runs_side_by_side(adds, fire):
    sched = schedule(adds, overlap=Overlap.ALLOW)
    fire(sched)
    fire(sched)
    assert WorkflowRun.objects.filter(schedule=sched, status=RunStatus.PENDING).count() == 2
    assert sched.skipped_count == 0


def test_replace_revokes_the_unfinished_run_once_the_new_one_is_committed(
    adds, django_capture_on_commit_callbacks, monkeypatch
):
    from task_admin import services

    monkeypatch.setattr(services, "dispatch", lambda run_id, signature: None)  # no broker
    sched = schedule(adds, overlap=Overlap.REPLACE)
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.fire(sched.pk)
    first = WorkflowRun.objects.get()
    next_due(sched)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        scheduling.fire(sched.pk)
    first.refresh_from_db()
    assert first.status == RunStatus.PENDING  # nothing revoked before the commit
    for callback in pending:
        callback()
    first.refresh_from_db()
    assert first.status == RunStatus.REVOKED
    assert set(first.nodes.values_list("state", flat=True)) == {NodeState.REVOKED}
    second = WorkflowRun.objects.exclude(pk=first.pk).get()
    assert second.status == RunStatus.PENDING and second.schedule == sched


def test_replace_leaves_the_old_run_alone_when_the_new_one_cannot_start(adds, fire):
    sched = schedule(adds, overlap=Overlap.REPLACE)
    fire(sched)
    first = WorkflowRun.objects.get()
    adds.enabled = False
    adds.save()
    outcome, sent = fire(sched)  # no dispatch and no revoke waiting for the commit
    assert outcome.startswith("not run:") and sent == 0
    first.refresh_from_db()
    assert first.status == RunStatus.PENDING


def test_a_disabled_workflow_is_not_run_and_says_why(adds, fire):
    sched = schedule(adds)
    adds.enabled = False
    adds.save()
    outcome, sent = fire(sched)
    assert outcome == "not run: The workflow “adds” is disabled." == sched.last_outcome
    assert sent == 0 and not WorkflowRun.objects.exists()


def test_a_workflow_broken_after_scheduling_is_not_run(adds, fire):
    sched = schedule(adds)
    adds.nodes.filter(parent__isnull=False).delete()  # an empty chain
    outcome, _sent = fire(sched)
    assert outcome.startswith("not run:") and "root" in outcome
    assert not WorkflowRun.objects.exists()


def test_a_deleted_schedule_runs_nothing(adds):
    sched = schedule(adds)
    pk = sched.pk
    sched.delete()
    assert scheduling.fire(pk) == f"schedule {pk} no longer exists"
    assert not WorkflowRun.objects.exists()


def test_a_run_unfinished_for_too_long_no_longer_holds_back_skip(adds, fire, settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "SKIP_STALE_AFTER": 3600}
    sched = schedule(adds, overlap=Overlap.SKIP)
    fire(sched)
    stuck = WorkflowRun.objects.get()
    WorkflowRun.objects.filter(pk=stuck.pk).update(
        created_at=stuck.created_at - timedelta(hours=2)
    )
    outcome, sent = fire(sched)
    assert outcome.startswith("started run #") and sent == 1
    assert WorkflowRun.objects.filter(schedule=sched).count() == 2


def test_an_unreadable_result_backend_does_not_stop_the_schedule(adds, fire, monkeypatch):
    from task_admin import services

    sched = schedule(adds, overlap=Overlap.SKIP)
    fire(sched)

    def unreachable(run, app=None):
        raise ConnectionError("result backend down")

    monkeypatch.setattr(services, "reconcile_run", unreachable)
    outcome, _sent = fire(sched)
    assert outcome.startswith("skipped: run #") and sched.skipped_count == 1
