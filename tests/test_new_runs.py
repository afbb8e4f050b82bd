"""Starting a run writes the run and its nodes in one statement (PostgreSQL), whatever the size.

The canvas is not sent here (on_commit callbacks are captured, not run) except where a test
says so; a real worker runs started workflows in tests/integration.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from task_admin import services
from task_admin.models import AlertRule, NodeState, RunStatus, TaskRun, Trigger, WorkflowRun
from task_admin.models.new_runs import insert_run
from tests.support import factories

pytestmark = pytest.mark.django_db
POSTGRES = connection.vendor == "postgresql"


def _group(name: str, leaves: int):
    return factories.workflow(
        name, ("group", [factories.invocation(args=[i], kwargs={"b": i}) for i in range(leaves)])
    )


def _start_queries(workflow) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        services.run_workflow(workflow, overrides={"root.0": {"b": 5}}, detail="from a test")
    return [q["sql"] for q in ctx.captured_queries]


def test_a_start_costs_the_same_queries_for_2_and_for_60_leaves(django_capture_on_commit_callbacks):
    small, big = _group("small", 2), _group("big", 60)
    with django_capture_on_commit_callbacks():
        _start_queries(_group("warm", 1))  # the first start of a process builds the allowed tasks
        first = {leaves: _start_queries(wf) for leaves, wf in ((2, small), (60, big))}
        again = {leaves: _start_queries(wf) for leaves, wf in ((2, small), (60, big))}
    assert len(first[2]) == len(first[60]), (first[2], [q[:60] for q in first[60]])
    assert len(again[2]) == len(again[60]), (again[2], [q[:60] for q in again[60]])
    if POSTGRES:
        # The tree (one query), then the run and its nodes with their alert settings (one).
        assert len(first[2]) == 2, first[2]
        assert first[2][1].startswith("WITH new_run AS (INSERT")
        # Started before by this process: the insert alone, conditional on an unchanged tree
        # (tests/test_spec_cache.py).
        assert len(again[2]) == 1 and again[2][0].startswith("WITH new_run AS (INSERT")


def test_the_nodes_are_written_whole(django_capture_on_commit_callbacks):
    wf = _group("whole", 3)
    with django_capture_on_commit_callbacks() as sent:
        run = services.run_workflow(wf, overrides={"root.1": {"b": 9}}, detail="why")
    assert len(sent) == 1  # the canvas goes after the commit
    stored = WorkflowRun.objects.get(pk=run.pk)
    assert (stored.workflow_id, stored.workflow_name, stored.status, stored.trigger) == (
        wf.pk, "whole", RunStatus.PENDING, Trigger.MANUAL)
    assert stored.overrides == {"root.1": {"b": 9}}
    assert stored.spec == run.spec and stored.spec["root"]["type"] == "group"
    assert (stored.total_nodes, stored.finished_nodes, stored.trigger_detail) == (3, 0, "why")
    assert stored.created_at is not None and stored.dispatched_at is not None
    assert stored.alert_rule_id is None and stored.started_at is None
    nodes = list(stored.nodes.order_by("position"))
    assert [n.path for n in nodes] == ["root.0", "root.1", "root.2"]
    assert all(n.task_id.startswith("ta-") for n in nodes)
    assert [n.node_id for n in nodes] == list(
        wf.nodes.filter(parent__isnull=False).order_by("position").values_list("pk", flat=True))
    for node in nodes:  # every other column has the model's default
        assert node.state == NodeState.PENDING and node.attempt_count == 0
        assert node.result is None and node.result_complete is True
        assert node.worker == node.exception == node.traceback == ""
        assert node.received_at is node.started_at is node.finished_at is node.runtime is None
        assert node.reused_from_id is None and node.task_name == factories.SUMA
    # A JSON null result would read back as None too: the column itself must be SQL NULL.
    assert TaskRun.objects.filter(run=stored, result__isnull=True).count() == 3


def test_the_alert_settings_are_the_schedules_own_else_the_workflows(
        django_capture_on_commit_callbacks):
    wf = _group("alerted", 2)
    other = _group("quiet", 2)
    sched = factories.schedule(wf)
    with django_capture_on_commit_callbacks():
        assert services.run_workflow(other).alert_rule_id is None
        workflow_rule = AlertRule.objects.create(workflow=wf)
        assert services.run_workflow(wf).alert_rule_id == workflow_rule.pk
        assert services.run_workflow(wf, schedule=sched).alert_rule_id == workflow_rule.pk
        schedule_rule = AlertRule.objects.create(schedule=sched)
        run = services.run_workflow(wf, schedule=sched)
    assert run.alert_rule_id == schedule_rule.pk
    assert WorkflowRun.objects.get(pk=run.pk).alert_rule_id == schedule_rule.pk


def test_a_rerun_keeps_the_links_to_the_results_it_reuses(django_capture_on_commit_callbacks):
    wf = _group("again", 2)
    with django_capture_on_commit_callbacks():
        first = services.run_workflow(wf)
    TaskRun.objects.filter(run=first, path="root.0").update(state=NodeState.SUCCESS, result=2)
    TaskRun.objects.filter(run=first, path="root.1").update(state=NodeState.FAILURE)
    WorkflowRun.objects.filter(pk=first.pk).update(status=RunStatus.PARTIALLY_FAILED)
    first.refresh_from_db()
    with django_capture_on_commit_callbacks():
        again = services.rerun_from_failure(first)
    kept = TaskRun.objects.get(run=first, path="root.0")
    nodes = {n.path: n for n in again.nodes.all()}
    assert nodes["root.0"].reused_from_id == kept.pk
    assert nodes["root.1"].reused_from_id is None
    assert again.rerun_of_id == first.pk and again.trigger == Trigger.RERUN


def _insert_sql(**kwargs) -> str:
    run = WorkflowRun(workflow_name="x", spec={"version": 1}, trigger=Trigger.API)
    task_id = f"ta-{WorkflowRun.objects.count()}"
    with CaptureQueriesContext(connection) as ctx:
        insert_run(run, [(task_id, "root", 0, factories.SUMA, "", None, None)], **kwargs)
    return " ".join(q["sql"] for q in ctx.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_the_commit_waits_for_the_disk_only_when_asked_and_only_in_its_own_transaction():
    if not POSTGRES:  # nothing to relax elsewhere
        assert "synchronous_commit" not in _insert_sql(async_commit=True)
        return
    assert "synchronous_commit" in _insert_sql(async_commit=True)
    assert "synchronous_commit" not in _insert_sql(async_commit=False)
    with transaction.atomic():
        # The caller's transaction may hold writes of its own: its commit is not ours to relax.
        assert "synchronous_commit" not in _insert_sql(async_commit=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('synchronous_commit')")
            assert cursor.fetchone()[0] == "on"
