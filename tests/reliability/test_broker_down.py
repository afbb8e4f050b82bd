"""Issue 8, item 4: with the broker down, every trigger says the run was not sent.

The broker is really down here: the Celery app points at a port nothing listens on, so kombu's
publish fails after its retries, on commit, as it would in production.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from task_admin import scheduling, services
from task_admin.models import NodeState, RunStatus, WorkflowRun
from tests.support.celery_apps import closed_broker_app
from tests.support.factories import SUMA, invocation, schedule, workflow

pytestmark = pytest.mark.django_db(transaction=True)
TASKS = "tests.testapp.tasks."


@pytest.fixture
def broker_down(settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN,
                           "CELERY_APP": "tests.support.celery_apps.closed_broker_app"}
    return closed_broker_app


@pytest.fixture
def failed_run(django_capture_on_commit_callbacks) -> WorkflowRun:
    """A finished run with one failed node, recorded without sending anything."""
    wf = workflow("half", ("group", [invocation(SUMA, [2, 2]),
                                     invocation(TASKS + "always_fails", immutable=True)]))
    with django_capture_on_commit_callbacks(execute=False):
        run = services.run_workflow(wf)
    now = timezone.now()
    run.nodes.filter(path="root.0").update(state=NodeState.SUCCESS, result=4, finished_at=now)
    run.nodes.filter(path="root.1").update(state=NodeState.FAILURE, exception="ValueError: x",
                                           finished_at=now)
    WorkflowRun.objects.filter(pk=run.pk).update(
        status=RunStatus.PARTIALLY_FAILED, finished_nodes=2, finished_at=now
    )
    run.refresh_from_db()
    return run


def test_rerun_page_says_the_rerun_was_not_sent(admin_client, failed_run, broker_down):
    response = admin_client.post(
        reverse("admin:task_admin_workflowrun_rerun", args=[failed_run.pk]), follow=True
    )
    html = response.content.decode()
    new = WorkflowRun.objects.get(rerun_of=failed_run)
    assert new.status == RunStatus.DISPATCH_FAILED
    assert f"its re-run #{new.pk} could not be sent: OperationalError" in html
    assert "is re-running as" not in html


def test_rerun_action_says_the_rerun_was_not_sent(admin_client, failed_run, broker_down):
    response = admin_client.post(
        reverse("admin:task_admin_workflowrun_changelist"),
        {"action": "rerun_runs", "_selected_action": [failed_run.pk]},
        follow=True,
    )
    html = response.content.decode()
    new = WorkflowRun.objects.get(rerun_of=failed_run)
    assert f"its re-run #{new.pk} could not be sent: OperationalError" in html
    assert "Started 1 re-run" not in html


def test_run_page_says_the_run_was_not_sent(admin_client, broker_down):
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2])]))
    response = admin_client.post(
        reverse("admin:task_admin_workflow_run", args=[wf.pk]), follow=True
    )
    run = WorkflowRun.objects.get(workflow=wf)
    assert run.status == RunStatus.DISPATCH_FAILED
    assert f"Run #{run.pk} of “adds” could not be sent" in response.content.decode()


def test_a_schedule_firing_records_that_its_run_was_not_sent(broker_down):
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2])]))
    sched = schedule(wf)
    outcome = scheduling.fire(sched.pk, app=broker_down)
    run = WorkflowRun.objects.get(schedule=sched)
    assert run.status == RunStatus.DISPATCH_FAILED
    assert outcome.startswith(f"run #{run.pk} could not be sent: OperationalError")
    sched.refresh_from_db()
    assert sched.last_outcome == outcome[:255]
