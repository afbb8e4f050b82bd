"""Migrations: none missing, and those applied to a database that already holds data."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

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
