"""Workflows and invocations as files (django-import-export): round trips and refused rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tablib
from django.core.management import call_command
from django.urls import reverse

from task_admin import canvas
from task_admin.compile import workflow_to_spec
from task_admin.models import TaskInvocation, Workflow, WorkflowNode
from task_admin.resources import TaskInvocationResource, WorkflowResource
from tests.support.demo import FIXTURE
from tests.support.factories import SUMA, invocation, without_refs, workflow

pytestmark = pytest.mark.django_db




def specs() -> dict[str, dict]:
    return {
        wf.name: without_refs(canvas.to_dict(workflow_to_spec(wf)))
        for wf in Workflow.objects.all()
    }


def dataset(rows: list[dict]) -> tablib.Dataset:
    data = tablib.Dataset(headers=list(rows[0]))
    for row in rows:
        data.append([row[h] for h in data.headers])
    return data


def invalid(result) -> dict[int, str]:
    """Row number → the messages of each refused row."""
    return {
        row.number: " ".join(m for ms in row.error_dict.values() for m in ms)
        for row in result.invalid_rows
    }


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_demo_workflows_round_trip_through_a_file(fmt, demo_project):
    call_command("loaddata", FIXTURE, verbosity=0)
    before = specs()
    invocations = getattr(TaskInvocationResource().export(), fmt)
    # By name, "Slow task beside a reused chain" comes before "Tutorial: chain", which it
    # reuses: the export puts reused workflows first so that the file imports as it is.
    workflows = getattr(WorkflowResource().export(queryset=Workflow.objects.order_by("name")),
                        fmt)
    WorkflowNode.objects.all().delete()
    Workflow.objects.all().delete()
    TaskInvocation.objects.all().delete()

    loaded = TaskInvocationResource().import_data(tablib.Dataset().load(invocations, fmt))
    assert not loaded.has_errors() and not loaded.has_validation_errors(), invalid(loaded)
    loaded = WorkflowResource().import_data(tablib.Dataset().load(workflows, fmt))
    assert not loaded.has_errors() and not loaded.has_validation_errors(), invalid(loaded)
    assert specs() == before


def test_export_takes_the_same_queries_for_one_or_many(django_assert_max_num_queries):
    two = invocation(SUMA, [2, 2])
    workflow("one", ("chain", [two, invocation(SUMA, [4])]))
    with django_assert_max_num_queries(10) as one:
        WorkflowResource().export()
    for i in range(20):
        workflow(f"many {i}", ("group", [two, ("chain", [two, two])]))
    with django_assert_max_num_queries(len(one.captured_queries)):
        exported = WorkflowResource().export()
    assert len(exported) == 21
    tree = json.loads(exported.dict[1]["tree"])
    assert tree == {"group": [{"invocation": two.name},
                              {"chain": [{"invocation": two.name}, {"invocation": two.name}]}]}


def test_import_replaces_the_tree_of_an_existing_workflow():
    a = invocation(SUMA, [1, 1], name="a")
    invocation(SUMA, [2], name="b")
    wf = workflow("w", ("group", [a, a, a]))
    tree = {"chain": [{"invocation": "a", "label": "first"}, {"invocation": "b"}]}
    result = WorkflowResource().import_data(dataset([
        {"name": "w", "description": "now a chain", "enabled": "1", "tree": json.dumps(tree)},
    ]))
    assert not result.has_validation_errors(), invalid(result)
    wf.refresh_from_db()
    assert wf.description == "now a chain" and wf.nodes.count() == 3
    exported = json.loads(WorkflowResource().export().dict[0]["tree"])
    assert exported == tree
    assert WorkflowResource().import_data(dataset([
        {"name": "w", "description": "", "enabled": "1",
         "tree": json.dumps({"chord": [{"invocation": "a"}], "body": {"invocation": "b"}})},
    ])).totals["update"] == 1


@pytest.mark.parametrize(("tree", "message"), [
    ("{not json", "not valid JSON"),
    (json.dumps(["a"]), "root: a node must be a JSON object"),
    (json.dumps({"chain": [{"invocation": "a", "group": []}]}), "root.0: a node has exactly one"),
    (json.dumps({"chain": [{"invocation": "nope"}]}), "no invocation named “nope”"),
    (json.dumps({"chain": [{"workflow": "later"}]}), "no workflow named “later” (import it"),
    (json.dumps({"chord": [{"invocation": "a"}]}), "chord without a body"),
    (json.dumps({"group": []}), "empty"),
    (json.dumps({"chain": [{"invocation": "a"}, {"invocation": "a"}]}), "root.1"),  # arity
    (json.dumps({"chain": {"invocation": "a"}}), "root: chain must be a list of nodes"),
])
def test_bad_trees_are_refused_row_by_row_and_nothing_is_kept(tree, message):
    invocation(SUMA, [1, 1], name="a")
    workflow("kept", ("chain", [TaskInvocation.objects.get(name="a")]))
    before = specs()
    result = WorkflowResource().import_data(dataset([
        {"name": "fine", "description": "", "enabled": "1",
         "tree": json.dumps({"group": [{"invocation": "a"}]})},
        {"name": "kept", "description": "", "enabled": "1", "tree": tree},
    ]), rollback_on_validation_errors=True)
    refused = invalid(result)
    assert list(refused) == [2] and message in refused[2], refused
    assert specs() == before  # the good row was rolled back too


def test_a_reuse_cycle_through_a_file_is_refused():
    a = invocation(SUMA, [1, 1], name="a")
    workflow("A", ("chain", [a]))
    workflow("B", ("chain", [a]))
    result = WorkflowResource().import_data(dataset([
        {"name": "A", "description": "", "enabled": "1",
         "tree": json.dumps({"chain": [{"workflow": "B"}]})},
        {"name": "B", "description": "", "enabled": "1",
         "tree": json.dumps({"chain": [{"workflow": "A"}]})},
    ]), rollback_on_validation_errors=True)
    assert "reuse cycle" in invalid(result)[2]
    assert WorkflowNode.objects.filter(reuse__isnull=False).count() == 0


def test_invocation_rows_are_checked_like_the_admin_form():
    result = TaskInvocationResource().import_data(dataset([
        {"name": "ok", "task": SUMA, "args": "[1, 2]", "kwargs": ""},
        {"name": "arity", "task": SUMA, "args": "[1, 2, 3]", "kwargs": ""},
        {"name": "hidden", "task": "celery.backend_cleanup", "args": "", "kwargs": ""},
        {"name": "quotes", "task": SUMA, "args": "['1', '2']", "kwargs": ""},
    ]), rollback_on_validation_errors=True)
    refused = invalid(result)
    assert set(refused) == {2, 3, 4}
    assert "too many positional arguments" in refused[2]
    assert "is not a task that may be run from the admin" in refused[3]
    assert "not valid JSON" in refused[4]
    assert not TaskInvocation.objects.exists()


def test_admin_import_shows_the_report_then_imports_on_confirm(admin_client):
    invocation(SUMA, [1, 1], name="a")
    url = reverse("admin:task_admin_workflow_import")
    good = "name,description,enabled,tree\n" + 'w,,1,"{""chain"": [{""invocation"": ""a""}]}"\n'
    bad = good.replace('""a""', '""<b>x</b>""')
    formats = admin_client.get(url).context["form"].fields["format"].choices
    csv = next(value for value, label in formats if label.lower() == "csv")
    from django.core.files.uploadedfile import SimpleUploadedFile

    page = admin_client.post(url, {
        "format": csv, "resource": 0,
        "import_file": SimpleUploadedFile("w.csv", bad.encode(), "text/csv"),
    })
    html = page.content.decode()
    assert "no invocation named “&lt;b&gt;x&lt;/b&gt;”" in html and "<b>x</b>" not in html
    assert "confirm_form" not in page.context or page.context["confirm_form"] is None
    assert not Workflow.objects.exists()

    page = admin_client.post(url, {
        "format": csv, "resource": 0,
        "import_file": SimpleUploadedFile("w.csv", good.encode(), "text/csv"),
    })
    confirm = page.context["confirm_form"]
    done = admin_client.post(reverse("admin:task_admin_workflow_process_import"),
                             {**confirm.initial})
    assert done.status_code == 302
    assert Workflow.objects.get(name="w").nodes.count() == 2


def test_importing_a_workflow_may_not_break_one_that_reuses_it():
    a = invocation(SUMA, [2, 2], name="a")
    email = invocation("tests.testapp.tasks.send_report_email", ["ops@example.com"],
                       name="email", immutable=True)
    leaf = workflow("Leaf", ("chain", [email]))
    workflow("C", ("chain", [a, ("workflow", leaf)]))
    workflow("Outer", ("group", [("workflow", Workflow.objects.get(name="C"))]))
    result = WorkflowResource().import_data(dataset([
        {"name": "Leaf", "description": "", "enabled": "1",
         "tree": json.dumps({"chain": [{"invocation": "a"}]})},  # suma(2, 2) after a result
    ]), rollback_on_validation_errors=True)
    message = invalid(result)[1]
    assert "this breaks workflow “C” at root.1" in message
    assert "this breaks workflow “Outer”" in message
    kept = Workflow.objects.get(name="Leaf").nodes.get(parent=None).children.get()
    assert kept.invocation == email


def test_the_confirm_step_reads_only_a_file_this_session_uploaded(admin_client, tmp_path,
                                                                  settings):
    import tempfile

    victim = Path(tempfile.gettempdir()) / f"task-admin-victim-{tmp_path.name}.txt"
    victim.write_text("name,description,enabled,tree\n")
    try:
        response = admin_client.post(reverse("admin:task_admin_workflow_process_import"), {
            "import_file_name": victim.name, "original_file_name": "x.csv",
            "format": 0, "resource": 0,
        })
        assert response.status_code == 403
        assert victim.exists()
    finally:
        victim.unlink(missing_ok=True)


def test_a_refused_row_keeps_nothing_even_without_rolling_back_the_import():
    a = invocation(SUMA, [1, 1], name="a")
    wf = workflow("kept", ("chain", [a]))
    before = specs()
    result = WorkflowResource().import_data(dataset([
        {"name": "kept", "description": "changed", "enabled": "1",
         "tree": json.dumps({"chain": [{"invocation": "a"}, {"invocation": "a"}]})},
        {"name": "new", "description": "", "enabled": "1",
         "tree": json.dumps({"group": [{"invocation": "a"}]})},
    ]))  # no rollback_on_validation_errors: rows stand or fall alone
    assert list(invalid(result)) == [1]
    wf.refresh_from_db()
    assert wf.description == "" and specs()["kept"] == before["kept"]
    assert Workflow.objects.filter(name="new").exists()
