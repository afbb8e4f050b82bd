"""Issue 8, item 1: "fix it, then re-run" after the workflow changed is no server error.

A re-run sends what the old run sent (its snapshot); links to tree nodes that are gone are
empty. Real worker, real commits (the foreign keys are checked at commit).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from task_admin import services
from task_admin.models import NodeState, RunStatus, WorkflowRun
from tests.support.factories import SUMA, invocation, workflow
from tests.support.runs import finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
FAILS = "tests.testapp.tasks.always_fails"


def test_rerun_after_nodes_were_deleted_runs_the_snapshot(worker, admin_client):
    wf = workflow("fix then re-run", ("group", [
        invocation(SUMA, [2, 2]), invocation(FAILS, immutable=True),
    ]))
    first = finished(services.run_workflow(wf), timeout=150)
    assert first.status == RunStatus.PARTIALLY_FAILED
    kept_node, failed_node = first.nodes.order_by("position")
    # Staff delete the failing node in the node editor, then re-run from failure.
    failed_node.node.delete()

    response = admin_client.post(
        reverse("admin:task_admin_workflowrun_rerun", args=[first.pk])
    )
    assert response.status_code == 302
    again = finished(WorkflowRun.objects.get(rerun_of=first), timeout=150)
    replayed, ran_again = again.nodes.order_by("position")
    assert (replayed.task_name, replayed.result) == (services.REPLAY_TASK, 4)
    assert replayed.node_id == kept_node.node_id  # still there: still linked
    assert (ran_again.task_name, ran_again.node_id) == (FAILS, None)  # gone: empty link
    assert ran_again.state == NodeState.FAILURE  # the snapshot ran, not the edited tree

    # The whole tree replaced (a re-import, a demo restart): the list action re-runs too.
    wf.nodes.all().delete()
    response = admin_client.post(
        reverse("admin:task_admin_workflowrun_changelist"),
        {"action": "rerun_runs", "_selected_action": [first.pk]}, follow=True,
    )
    third = WorkflowRun.objects.filter(rerun_of=first).latest("pk")
    assert third.pk != again.pk
    assert f"Started 1 re-run: #{third.pk}." in response.content.decode()
    assert not third.nodes.filter(node__isnull=False).exists()
    assert finished(third, timeout=150).status == RunStatus.PARTIALLY_FAILED
