"""``manage.py task_admin run/status`` and ``services.start`` on a real worker."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from task_admin import services
from task_admin.cli.run import parse_assignments
from task_admin.compile import InvalidWorkflow
from task_admin.models import RunStatus, Trigger, WorkflowRun
from tests.support.factories import SUMA, invocation, workflow
from tests.support.workers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
FAILS = "tests.testapp.tasks.always_fails"


def run_command(*args) -> str:
    out = StringIO()
    call_command("task_admin", *args, stdout=out)
    return out.getvalue()


def test_run_waits_and_applies_one_off_arguments(worker):
    workflow("adding", ("chain", [invocation(SUMA, [2]), invocation(SUMA, [4])]))
    out = run_command("run", "adding", "--set", "root.0.b=5", "--wait", "--timeout", "60")
    run = WorkflowRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED and run.trigger == Trigger.API
    assert run.overrides == {"root.0": {"b": 5}}
    assert [n.result for n in run.nodes.order_by("position")] == [7, 11]
    assert f"Run #{run.pk} of “adding” was started." in out
    assert "succeeded, 2 of 2 tasks finished" in out

    status = json.loads(run_command("status", str(run.pk), "--json"))
    assert status["status"] == "succeeded"
    assert [t["result"] for t in status["tasks"]] == [7, 11]
    assert "root.1" in run_command("status", str(run.pk))


def test_a_failed_run_exits_non_zero(worker):
    """The real command line, as a script would call it: the exit status says it failed."""
    workflow("breaks", ("chain", [invocation(SUMA, [1, 1]), invocation(FAILS, [], immutable=True)]))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TASK_ADMIN_WORKER_DB": str(connection.settings_dict["NAME"]),
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "task_admin", "run", "breaks", "--wait", "--timeout", "60"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "failed" in done.stdout and "this task always fails" in done.stdout
    assert "CommandError" in done.stderr or "ended failed" in done.stderr


def test_run_refuses_what_the_admin_refuses(db):
    with pytest.raises(CommandError, match="no workflow named “missing”"):
        run_command("run", "missing")
    wf = workflow("off", ("chain", [invocation(SUMA, [1, 1])]), enabled=False)
    with pytest.raises(CommandError, match="is disabled"):
        run_command("run", wf.name)
    workflow("adding", ("chain", [invocation(SUMA, [1, 1])]))
    with pytest.raises(CommandError, match=r"root\.9: no task at this path"):
        run_command("run", "adding", "--set", "root.9.b=1")
    with pytest.raises(CommandError, match="has no parameter 'nope'"):
        run_command("run", "adding", "--set", "root.0.nope=1")
    with pytest.raises(CommandError, match=r"PATH\.KWARG=VALUE"):
        run_command("run", "adding", "--set", "b=1")
    with pytest.raises(CommandError, match="no run #999"):
        run_command("status", "999")
    assert not WorkflowRun.objects.exists()


def test_assignments_are_json_or_text():
    assert parse_assignments(["root.1.b=3", "root.1.c=x", "root.0.d=[1, 2]", "root.e="]) == {
        "root.1": {"b": 3, "c": "x"}, "root.0": {"d": [1, 2]}, "root": {"e": ""},
    }


def test_python_api_checks_the_users_permission_and_logs_the_run(
    db, django_capture_on_commit_callbacks
):
    workflow("adding", ("chain", [invocation(SUMA, [1, 1])]))
    clerk = User.objects.create_user("clerk", is_staff=True)
    with pytest.raises(services.CannotRun, match="may not run workflows"):
        services.start("adding", user=clerk)
    clerk.user_permissions.add(Permission.objects.get(codename="run_workflow"))
    clerk = User.objects.get(pk=clerk.pk)  # permissions are cached on the instance
    with pytest.raises(InvalidWorkflow):
        services.start("adding", user=clerk, overrides={"root": {"c": 1}})
    with django_capture_on_commit_callbacks(execute=False):
        run = services.start("adding", user=clerk, detail="nightly script")
    assert run.triggered_by == clerk and run.trigger == Trigger.API
    entry = LogEntry.objects.get()
    assert entry.user == clerk and entry.object_id == str(run.pk)
    assert "nightly script" in entry.change_message
