"""Demo workflows ship as a fixture with natural keys: it loads, validates and round-trips."""

import io

import pytest
from django.core.management import call_command

from task_admin import canvas
from task_admin.compile import workflow_to_spec
from task_admin.models import TaskInvocation, Workflow, WorkflowNode
from task_admin.validation import workflow_problems
from tests.support.demo import FIXTURE
from tests.support.factories import without_refs

# About the demo: its fixtures, its commands and its tasks, with the demo project installed.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_project")]
MODELS = ["task_admin.taskinvocation", "task_admin.workflow", "task_admin.workflownode"]


def specs() -> dict[str, dict]:
    return {wf.name: canvas.to_dict(workflow_to_spec(wf)) for wf in Workflow.objects.all()}




def test_demo_fixture_loads_and_every_workflow_is_valid():
    call_command("loaddata", FIXTURE, verbosity=0)
    assert Workflow.objects.count() >= 8
    assert {wf.name: workflow_problems(wf) for wf in Workflow.objects.all()} == {
        wf.name: [] for wf in Workflow.objects.all()
    }
    nested = canvas.to_dict(workflow_to_spec(Workflow.objects.get(name="Nested report")))
    assert nested["root"]["type"] == "chord"


def test_loading_twice_updates_instead_of_duplicating():
    call_command("loaddata", FIXTURE, verbosity=0)
    counts = (TaskInvocation.objects.count(), WorkflowNode.objects.count())
    call_command("loaddata", FIXTURE, verbosity=0)
    assert (TaskInvocation.objects.count(), WorkflowNode.objects.count()) == counts


def test_dump_and_load_round_trip(tmp_path):
    call_command("loaddata", FIXTURE, verbosity=0)
    before = without_refs(specs())
    out = io.StringIO()
    call_command("dumpdata", *MODELS, natural_foreign=True, natural_primary=True, stdout=out)
    dump = tmp_path / "dump.json"
    dump.write_text(out.getvalue())
    assert '"pk"' not in out.getvalue()  # natural keys only: ids never travel
    WorkflowNode.objects.all().delete()
    Workflow.objects.all().delete()
    TaskInvocation.objects.all().delete()
    call_command("loaddata", dump, verbosity=0)
    assert without_refs(specs()) == before


def test_demo_schedules_are_created_once_and_edits_kept():
    from task_admin.models import WorkflowSchedule

    call_command("loaddata", FIXTURE, verbosity=0)
    call_command("demo_schedules", stdout=io.StringIO())
    sched = WorkflowSchedule.objects.select_related("periodic_task", "workflow").get()
    assert sched.workflow.name == "Tutorial: chain"
    assert sched.periodic_task.task == "task_admin.run_workflow" and sched.periodic_task.enabled
    sched.periodic_task.enabled = False
    sched.periodic_task.save()
    call_command("demo_schedules", stdout=io.StringIO())
    assert WorkflowSchedule.objects.count() == 1
    assert not WorkflowSchedule.objects.get().periodic_task.enabled


def test_demo_load_resets_a_demo_workflow_whose_nodes_were_moved():
    call_command("loaddata", FIXTURE, verbosity=0)
    original = without_refs(specs())
    chain = Workflow.objects.get(name="Tutorial: chain")
    root = chain.nodes.get(parent=None)
    first = chain.nodes.get(parent=root, position=0)
    # The reviewer's edit: the old first step moved to 7, a new node at 0.
    first.position = 7
    first.save()
    WorkflowNode.objects.create(workflow=chain, parent=root, position=0, kind="task",
                                invocation=first.invocation, key="added-by-user")
    call_command("demo_load", str(FIXTURE), verbosity=0)
    assert without_refs(specs()) == original
    assert not WorkflowNode.objects.filter(key="added-by-user").exists()
