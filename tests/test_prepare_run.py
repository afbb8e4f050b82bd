"""services as the one door for starting work: ``prepare_run`` says once whether a workflow can
run with a run's overrides, and everything that starts work goes through it."""

from __future__ import annotations

from unittest import mock

import pytest
from django.urls import reverse

from task_admin import canvas, compile, registry, services
from task_admin.canvas.build import to_python
from task_admin.compile import InvalidWorkflow
from task_admin.models import Workflow, WorkflowNode, WorkflowRun
from tests.factories import SUMA, invocation, workflow

pytestmark = pytest.mark.django_db


def test_one_post_to_run_compiles_checks_and_reads_the_allowed_tasks_once(
    admin_client, django_capture_on_commit_callbacks
):
    # Issue 9: one POST compiled the tree 3 times, validated it 3 times and read the allowed
    # tasks 4 times (the page's preview, the overrides form, then run_workflow).
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    with (
        mock.patch("task_admin.compile._Builder", wraps=compile._Builder) as compiles,
        mock.patch("task_admin.canvas.validate", wraps=canvas.validate) as checks,
        mock.patch.object(registry, "signatures", wraps=registry.signatures) as reads,
        django_capture_on_commit_callbacks(execute=False),
    ):
        response = admin_client.post(
            reverse("admin:task_admin_workflow_run", args=[wf.pk]),
            {"root.0": "{}", "root.1": '{"b": 1}'},
        )
    assert response.status_code == 302
    run = WorkflowRun.objects.get(workflow=wf)
    assert run.overrides == {"root.1": {"b": 1}}
    assert (compiles.call_count, checks.call_count, reads.call_count) == (1, 1, 1)


def test_a_refused_post_lists_the_problems_and_starts_nothing(
    admin_client, django_capture_on_commit_callbacks
):
    wf = workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            reverse("admin:task_admin_workflow_run", args=[wf.pk]),
            {"root.0": "{}", "root.1": '{"zzz": 1}'},
        )
    assert response.status_code == 200
    assert response.context["form"].errors["root.1"]
    assert not WorkflowRun.objects.exists()


def test_prepare_run_gives_the_spec_or_one_exception_with_every_problem():
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [1])]))
    prepared = services.prepare_run(wf, {"root.1": {"b": 3}})
    assert [task.kwargs for _path, task in canvas.leaves(prepared.spec)] == [{}, {"b": 3}]
    with pytest.raises(services.CannotRun) as refused:
        services.prepare_run(wf, {"root.0": {"zzz": 1}, "root.1": {"yyy": 2}})
    assert isinstance(refused.value, services.WorkflowProblems)
    assert isinstance(refused.value, InvalidWorkflow)  # what ``start`` is documented to raise
    assert [p.path for p in refused.value.problems] == ["root.0", "root.1"]
    with pytest.raises(services.WorkflowProblems, match=r"root\.5: no task at this path"):
        services.prepare_run(wf, {"root.5": {}})


def test_a_disabled_workflow_is_refused_when_it_starts():
    # A tree may be checked while disabled (a schedule form does); it cannot start so.
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2])]), enabled=False)
    prepared = services.prepare_run(wf)
    with pytest.raises(services.CannotRun, match="disabled"):
        services.run_prepared(prepared)
    assert not WorkflowRun.objects.exists()


def test_copy_workflow_writes_one_insert_per_level(django_assert_max_num_queries):
    wf = workflow("deep", ("chain", [
        invocation(SUMA, [1, 1]),
        ("group", [invocation(SUMA, [2, 2]), ("chain", [invocation(SUMA, [3, 3])])]),
        ("chord", [invocation(SUMA, [4, 4])], invocation("project.demo.tasks.sum_list")),
    ]))
    # A transaction, the name, the workflow, the rows, then one INSERT per level (4 levels).
    with django_assert_max_num_queries(10):
        copy = services.copy_workflow(wf)
    assert copy.name == "Copy of deep"
    original = compile.workflow_to_spec(wf)
    copied = compile.workflow_to_spec(copy)
    assert to_python(copied) == to_python(original)
    assert WorkflowNode.objects.filter(workflow=copy).count() == wf.nodes.count()
    assert not set(copy.nodes.values_list("key", flat=True)) & set(
        wf.nodes.values_list("key", flat=True)
    )


def test_insert_tree_refuses_a_parent_cycle():
    wf = Workflow.objects.create(name="loop")
    first = WorkflowNode(workflow=wf, kind="group")
    second = WorkflowNode(workflow=wf, kind="group", parent=first)
    first.parent = second
    with pytest.raises(ValueError, match="cycle"):
        WorkflowNode.objects.insert_tree([first, second])
