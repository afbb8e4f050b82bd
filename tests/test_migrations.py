"""Migrations: none missing, and those applied to a database that already holds data."""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from tests.support.plans import index_definitions

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def back_to_the_latest():
    """Leave the test database migrated to the end: the transactional tests that run after
    this module (pytest-django runs them last) use the current schema."""
    yield
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def test_0002_marks_stand_in_results_stored_before_it():
    old = migrate(("task_admin", "0001_initial"))
    run = old.get_model("task_admin", "WorkflowRun").objects.create(
        workflow_name="w", spec={}, trigger="manual"
    )
    TaskRun = old.get_model("task_admin", "TaskRun")
    for path, result in (("root.0", {"repr": "nan"}), ("root.1", 4), ("root.2", {"b": 1})):
        TaskRun.objects.create(run=run, task_id=path, path=path, position=int(path[-1]),
                               task_name="t", result=result)
    new = migrate(("task_admin", "0002_schedules"))
    stored = dict(new.get_model("task_admin", "TaskRun").objects.values_list(
        "path", "result_complete"))
    assert stored == {"root.0": False, "root.1": True, "root.2": True}


def test_no_missing_migrations(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _task_run_indexes(apps, model="TaskRun"):
    """(columns, unique) of the task-run table's indexes, and the names of those with a LIKE
    operator class (PostgreSQL)."""
    table = apps.get_model("task_admin", model)._meta.db_table
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
        like = []
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s"
                           " AND indexdef LIKE '%%pattern_ops%%'", [table])
            like = [row[0] for row in cursor.fetchall()]
    indexes = sorted((tuple(info["columns"]), bool(info["unique"] or info["primary_key"]))
                     for info in found.values()
                     if info["index"] or info["unique"] or info["primary_key"])
    return indexes, like


def test_0007_drops_three_indexes_keeps_the_rows_and_goes_back():
    old = migrate(("task_admin", "0006_attempt_count"))
    run = old.get_model("task_admin", "WorkflowRun").objects.create(
        workflow_name="w", spec={}, trigger="manual")
    TaskRun = old.get_model("task_admin", "TaskRun")
    first = TaskRun.objects.create(run=run, task_id="ta-1", path="root.0", position=0,
                                   task_name="t")
    TaskRun.objects.create(run=run, task_id="ta-2", path="root.1", position=1, task_name="t",
                           reused_from=first)
    postgres = connection.vendor == "postgresql"
    before, before_like = _task_run_indexes(old)
    # SQLite: no LIKE index beside the unique one on task_id.
    assert len(before) == (8 if postgres else 7)
    assert len(before_like) == (1 if postgres else 0)

    new = migrate(("task_admin", "0007_task_run_indexes"))
    after, like = _task_run_indexes(new)
    assert not like
    dropped = [(("run_id",), False), *([(("task_id",), False)] if postgres else [])]
    assert sorted(set(before) - set(after)) == dropped
    assert (("task_id",), True) in after and (("node_id",), False) in after
    assert len(after) == 6
    rows = new.get_model("task_admin", "TaskRun").objects.order_by("position")
    assert [(r.task_id, r.reused_from_id) for r in rows] == [("ta-1", None), ("ta-2", first.pk)]
    with pytest.raises(IntegrityError), transaction.atomic():  # still unique
        rows.model.objects.create(run_id=run.pk, task_id="ta-1", path="root.2", position=2,
                                  task_name="t")

    back = migrate(("task_admin", "0006_attempt_count"))
    assert _task_run_indexes(back) == (before, before_like)
    assert back.get_model("task_admin", "TaskRun").objects.count() == 2


def test_0008_makes_the_run_tables_foreign_key_indexes_partial_and_goes_back():
    old = migrate(("task_admin", "0007_task_run_indexes"))
    Run = old.get_model("task_admin", "WorkflowRun")
    first = Run.objects.create(workflow_name="w", spec={}, trigger="manual")
    Run.objects.create(workflow_name="w", spec={}, trigger="manual", rerun_of=first)
    table = Run._meta.db_table
    postgres = connection.vendor == "postgresql"
    before, before_like = _task_run_indexes(old, "WorkflowRun")
    # id, created_at, and one per foreign key and status (and status's LIKE on PostgreSQL).
    assert len(before) == (9 if postgres else 8)
    assert len(before_like) == (1 if postgres else 0)

    new = migrate(("task_admin", "0008_run_indexes"))
    after, like = _task_run_indexes(new, "WorkflowRun")
    assert not like
    assert after == sorted([
        (("alert_rule_id",), False), (("created_at",), False), (("id",), True),
        (("rerun_of_id",), False), (("schedule_id",), False), (("status",), False),
        (("triggered_by_id",), False), (("workflow_id", "created_at", "id"), False),
    ])
    partial = {name for name, sql in index_definitions(table).items() if " WHERE " in sql.upper()}
    assert partial == {"task_admin_run_triggered_by", "task_admin_run_rerun_of",
                       "task_admin_run_schedule", "task_admin_run_alert_rule"}
    rows = new.get_model("task_admin", "WorkflowRun").objects.order_by("pk")
    assert [r.rerun_of_id for r in rows] == [None, first.pk]
    # The foreign keys are still enforced (only their indexes changed).
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.model.objects.create(workflow_name="w", spec={}, trigger="manual",
                                  rerun_of_id=first.pk + 1000)

    back = migrate(("task_admin", "0007_task_run_indexes"))
    assert _task_run_indexes(back, "WorkflowRun") == (before, before_like)
    assert back.get_model("task_admin", "WorkflowRun").objects.count() == 2
