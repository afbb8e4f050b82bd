"""The task-run table's indexes (migration 0007): only those the queries use, and the queries
the app runs by task id, run, workflow node or kept result are each served by one of them.

Every start inserts a row per leaf and every tracking batch updates rows, so an index that no
query needs is a cost on both hot paths (issue #7). How a plan is read: tests/support/plans.py.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from task_admin import retention, services
from task_admin.models import NodeState, TaskRun, WorkflowNode, WorkflowRun, batches
from tests.support.plans import assert_served, index_definitions, searches, statements
from tests.support.runs import finish, start_run

pytestmark = pytest.mark.django_db
POSTGRES = connection.vendor == "postgresql"
TABLE = TaskRun._meta.db_table

# (columns, unique) of every index, the primary key's and the unique constraints' included.
INTENDED = sorted([
    (("id",), True),
    (("node_id",), False),  # partial: WHERE node_id IS NOT NULL
    (("reused_from_id",), False),  # partial: WHERE reused_from_id IS NOT NULL
    (("run_id", "path"), True),  # also every lookup by run
    (("state", "started_at"), False),
    (("task_id",), True),  # and no LIKE (varchar_pattern_ops) index beside it
])


def _indexes() -> list[tuple[tuple[str, ...], bool]]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, TABLE)
    return sorted(
        (tuple(info["columns"]), bool(info["unique"] or info["primary_key"]))
        for info in found.values()
        if info["index"] or info["unique"] or info["primary_key"]
    )


def test_the_task_run_table_has_only_the_indexes_its_queries_use():
    assert _indexes() == INTENDED
    definitions = index_definitions(TABLE)
    partial = {name for name, sql in definitions.items() if " WHERE " in sql.upper()}
    assert partial == {"task_admin_taskrun_node", "task_admin_taskrun_reused_from"}
    assert "IS NOT NULL" in definitions["task_admin_taskrun_node"].upper()
    assert "IS NOT NULL" in definitions["task_admin_taskrun_reused_from"].upper()
    if POSTGRES:
        # What unique=True added on PostgreSQL, and the FK's own index on run_id.
        assert not [sql for sql in definitions.values() if "pattern_ops" in sql]
        assert "task_admin_taskrun_task_id_unique" in definitions
        assert not [sql for sql in definitions.values() if sql.endswith("(run_id)")]


def test_a_second_task_run_with_the_same_task_id_is_refused():
    from django.db import IntegrityError, transaction

    run = WorkflowRun.objects.create(workflow_name="w", spec={}, trigger="manual")
    TaskRun.objects.create(run=run, task_id="ta-1", path="root.0", position=0, task_name="t")
    with pytest.raises(IntegrityError), transaction.atomic():
        TaskRun.objects.create(run=run, task_id="ta-1", path="root.1", position=1, task_name="t")


@pytest.fixture
def failed_run(django_capture_on_commit_callbacks):
    run = start_run(django_capture_on_commit_callbacks, "half")
    return finish(run, root_0=(NodeState.SUCCESS, 4), root_1=(NodeState.FAILURE, "boom"))


@pytest.fixture
def rerun(failed_run, django_capture_on_commit_callbacks):
    """A re-run: its first task keeps the failed run's result (``reused_from`` set)."""
    with django_capture_on_commit_callbacks(execute=False):
        new = services.rerun_from_failure(failed_run)
    assert new.nodes.filter(reused_from__isnull=False).count() == 1
    return new


def test_the_tracking_batches_find_their_tasks_by_the_unique_index(failed_run):
    task_ids = list(failed_run.nodes.values_list("task_id", flat=True))
    with CaptureQueriesContext(connection) as ctx:
        assert list(batches.lock_runs_of(task_ids)) == [failed_run.pk]
        assert len(batches.read_nodes(task_ids)) == 2
    assert_served(statements(ctx, TABLE, "task_id"), TABLE, ("task_id",))


def test_the_lookups_by_run_use_the_run_and_path_index(failed_run):
    with CaptureQueriesContext(connection) as ctx:
        list(TaskRun.objects.filter(run_id=failed_run.pk))
        TaskRun.objects.filter(run_id=failed_run.pk).failed().count()
    assert_served(statements(ctx, TABLE, "run_id"), TABLE, ("run_id", "path"))


def test_deleting_a_workflow_node_unlinks_its_task_runs_through_the_partial_index(failed_run):
    node = WorkflowNode.objects.get(pk=failed_run.nodes.get(path="root.0").node_id)
    with CaptureQueriesContext(connection) as ctx:
        node.delete()
    assert failed_run.nodes.get(path="root.0").node_id is None
    assert_served(statements(ctx, TABLE, "UPDATE", "node_id"), TABLE, ("node_id",))


def test_deleting_a_run_unlinks_kept_results_through_the_partial_index(failed_run, rerun):
    with CaptureQueriesContext(connection) as ctx:
        failed_run.delete()  # Django's collector: what the admin's delete runs
    assert not rerun.nodes.filter(reused_from__isnull=False).exists()
    assert_served(statements(ctx, TABLE, "UPDATE", "reused_from_id"), TABLE,
                  ("reused_from_id",))


def test_retention_unlinks_kept_results_through_the_partial_index(failed_run, rerun):
    with CaptureQueriesContext(connection) as ctx:
        retention._delete_runs([failed_run.pk])
    assert not rerun.nodes.filter(reused_from__isnull=False).exists()
    # The first UPDATE joins the kept results to the runs going (the second one is by run).
    joined = [sql for sql in statements(ctx, TABLE, "UPDATE", "reused_from_id") if " JOIN " in sql]
    assert_served(joined, TABLE, ("reused_from_id",))


# -- the run table (migration 0008) -----------------------------------------------------------

RUNS = WorkflowRun._meta.db_table


def test_the_run_table_indexes_its_mostly_empty_foreign_keys_only_where_set():
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, RUNS)
    indexes = sorted(tuple(info["columns"]) for info in found.values()
                     if info["index"] and not info["primary_key"])
    assert indexes == [("alert_rule_id",), ("created_at",), ("rerun_of_id",), ("schedule_id",),
                       ("status",), ("triggered_by_id",), ("workflow_id", "created_at", "id")]
    definitions = index_definitions(RUNS)
    partial = {name for name, sql in definitions.items() if " WHERE " in sql.upper()}
    assert partial == {f"task_admin_run_{f}" for f in
                       ("triggered_by", "rerun_of", "schedule", "alert_rule")}
    assert not [sql for sql in definitions.values() if "pattern_ops" in sql]


def test_a_workflows_latest_run_is_found_by_its_own_index(failed_run, admin_client):
    """The workflow list and form show each workflow's latest run: found through
    (workflow, created_at, id), not by walking every run's ``created_at`` backwards."""
    from django.urls import reverse

    from task_admin.models import Workflow

    quiet = Workflow.objects.create(name="never run")
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(reverse("admin:task_admin_workflow_change",
                                            args=[quiet.pk]))
        admin_client.get(reverse("admin:task_admin_workflow_changelist"))
    assert response.status_code == 200
    latest = [q["sql"] for q in ctx.captured_queries
              if f'FROM "{RUNS}"' in q["sql"] and "LIMIT 1" in q["sql"].upper()]
    assert latest, [q["sql"][:120] for q in ctx.captured_queries]
    for sql in latest:
        used = searches(sql)
        assert "task_admin_run_latest" in used, (used, sql)


def test_deleting_a_schedule_unlinks_its_runs_through_the_partial_index(failed_run):
    from tests.support import factories

    schedule = factories.schedule(failed_run.workflow)
    WorkflowRun.objects.filter(pk=failed_run.pk).update(schedule=schedule)
    with CaptureQueriesContext(connection) as ctx:
        schedule.delete()
    assert WorkflowRun.objects.get(pk=failed_run.pk).schedule_id is None
    assert_served(statements(ctx, RUNS, "UPDATE", "schedule_id"), RUNS, ("schedule_id",))
