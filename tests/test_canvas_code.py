"""Workflows from code and back, on the database: the service and ``task_admin from-code``."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from task_admin import canvas, canvas_code
from task_admin.compile import workflow_to_spec
from task_admin.models import TaskInvocation, Workflow, WorkflowNode, WorkflowRun
from tests.support.demo import FIXTURE

pytestmark = pytest.mark.django_db

# The tutorial's three canvases as the demo fixtures build them by hand.
TUTORIAL = {
    "Tutorial: group": "group(suma.s(2, 2), suma.s(4, 4))",
    "Tutorial: chain": "chain(suma.s(2, 2), suma.s(4))",
    "Tutorial: chord": "chord([suma.s(2, 2), suma.s(4, 4)], suma.s(10))",
}


def plain(spec: canvas.Node) -> canvas.Node:
    """The tree without labels and refs (database ids, invocation names): what code says."""
    return canvas.map_leaves(
        _strip(spec), lambda _path, leaf: canvas.Task(
            leaf.task, leaf.args, leaf.kwargs, leaf.options, leaf.immutable)
    )


def _strip(node: canvas.Node) -> canvas.Node:
    if isinstance(node, canvas.Group):
        return canvas.Group(tuple(_strip(c) for c in node.tasks))
    if isinstance(node, canvas.Chain):
        return canvas.Chain(tuple(_strip(c) for c in node.tasks))
    if isinstance(node, canvas.Chord):
        return canvas.Chord(tuple(_strip(c) for c in node.header), _strip(node.body))
    return node


def counts() -> tuple[int, int, int]:
    return (Workflow.objects.count(), WorkflowNode.objects.count(),
            TaskInvocation.objects.count())


@pytest.fixture
def demo(demo_project):
    """The demo project, with its workflows loaded (the tutorial's canvases built by hand)."""
    call_command("loaddata", FIXTURE, verbosity=0)


@pytest.mark.parametrize("name", sorted(TUTORIAL))
def test_tutorial_code_gives_the_hand_built_tree_reusing_its_invocations(demo, name):
    before = TaskInvocation.objects.count()
    reading = canvas_code.read(TUTORIAL[name])
    assert reading.ok, reading.errors
    workflow, created = canvas_code.create_workflow(reading, name=f"{name} (code)")
    assert created == []  # identical invocations exist: reused, not copied
    assert TaskInvocation.objects.count() == before
    hand_built = workflow_to_spec(Workflow.objects.get(name=name))
    assert plain(workflow_to_spec(workflow)) == plain(hand_built)


def test_the_tutorial_chord_warns_and_is_saved(demo):
    reading = canvas_code.read(TUTORIAL["Tutorial: chord"])
    assert reading.ok
    [warning] = reading.warnings
    assert warning.startswith("line 1, column 37: root.body: as the chord's body, ")
    assert "suma(a, b)" in warning and "list of header results" in warning
    workflow, _created = canvas_code.create_workflow(reading, name="chord from code")
    assert Workflow.objects.filter(pk=workflow.pk).exists()


def test_new_invocations_are_created_once_and_named_by_their_code():
    reading = canvas_code.read(
        "chain(suma.s(1, 2), suma.s(5).set(countdown=3, queue='math'), suma.s(5).set("
        "countdown=3, queue='math'))"
    )
    workflow, created = canvas_code.create_workflow(reading, name="new")
    assert sorted(i.name for i in created) == [
        "suma.s(1, 2)", "suma.s(5).set(countdown=3, queue='math')"
    ]
    assert plain(workflow_to_spec(workflow)) == plain(reading.spec)
    # Pasted again: everything is reused.
    _workflow, again = canvas_code.create_workflow(canvas_code.read(reading.text), name="again")
    assert again == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chain(suma.s(1, 2), nosuch.s())", "line 1, column 21: unknown or disallowed task"),
        ("signature('celery.backend_cleanup')",
         "line 1, column 11: “celery.backend_cleanup” is not a task that may be run from the "
         "admin: TASK_ADMIN[\"DENIED_TASKS\"] refuses it"),
        ("tests.testapp.tasks.nosuch.s()", "it is not registered with the Celery app"),
        ("chord([suma.s(1, 1)], suma.s(1, 2))", "line 1, column 23: root.body: "),
        ("__import__('os').system('true')", "__import__() is not allowed"),
        ("suma.s(lambda: 1, 2)", "lambdas are not allowed"),
        ("group([suma.s(i, i) for i in range(2)])", "comprehensions are not allowed"),
        ("suma.s(f'{1}', 2)", "f-strings are not allowed"),
        ("suma.s(HOME, 2)", "the name 'HOME' is not a literal"),
        ("suma.s(1, 2).set(expires='2030-01-01T00:00:00')", "keeps expires in seconds"),
    ],
)
def test_refused_code_saves_nothing(text, message):
    before = counts()
    reading = canvas_code.read(text)
    assert not reading.ok
    assert any(message in error for error in reading.errors), reading.errors
    with pytest.raises(canvas_code.Refused):
        canvas_code.create_workflow(reading, name="refused")
    assert counts() == before


def test_replace_tree_keeps_the_workflow_and_refuses_breaking_a_reuser(demo):
    chain = Workflow.objects.get(name="Tutorial: chain")
    created = canvas_code.replace_tree(chain, canvas_code.read("chain(suma.s(1, 1), suma.s(7))"))
    assert [i.name for i in created] == ["suma.s(7)"]
    assert plain(workflow_to_spec(chain)) == canvas.Chain(
        (canvas.Task("project.demo.tasks.suma", (1, 1)),
         canvas.Task("project.demo.tasks.suma", (7,)))
    )
    # "Slow task beside a reused chain" reuses this one inside a group: a tree that is fine on
    # its own but cannot run there is still accepted; one that breaks it is refused.
    before = counts()
    reading = canvas_code.read("suma.s(1)")  # would receive nothing: arity error alone
    assert not reading.ok
    with pytest.raises(canvas_code.Refused):
        canvas_code.replace_tree(chain, reading)
    assert counts() == before


@pytest.mark.parametrize("name", [
    "Tutorial: group", "Tutorial: chain", "Tutorial: chord", "Chord with sum_list",
    "Nested report", "Flaky rate, then email", "Sales file", "Partial failure",
    "Slow task beside a reused chain",
])
def test_every_demo_workflow_copies_as_code_that_reads_back_to_its_tree(demo, name):
    workflow = Workflow.objects.get(name=name)
    code = canvas_code.workflow_code(workflow)
    reading = canvas_code.read(code)
    assert reading.ok, (code, reading.errors)
    assert plain(reading.spec) == plain(workflow_to_spec(workflow))


def test_a_reused_workflow_is_inlined_with_a_comment(demo):
    code = canvas_code.workflow_code(Workflow.objects.get(name="Slow task beside a reused chain"))
    assert code.startswith(
        "# Workflow “Slow task beside a reused chain”\n"
        "# root.1 inlines the workflow “Tutorial: chain”: pasted, it becomes a copy, not a "
        "reuse.\n"
        "from celery import chain, group\n"
        "from project.demo.tasks import slow, suma\n"
    )


def test_a_run_copies_as_the_code_it_sent(demo):
    spec = canvas.Chain((canvas.Task("project.demo.tasks.suma", (2, 2)),
                         canvas.Task("project.demo.tasks.suma", (4,))))
    run = WorkflowRun.objects.create(workflow_name="x", spec=canvas.to_dict(spec),
                                     trigger="manual")
    code = canvas_code.run_code(run)
    assert code.splitlines()[0] == f"# Run #{run.pk} of “x”"
    assert canvas_code.read(code).spec == spec


# -- the management command ---------------------------------------------------------------------


def test_command_creates_a_workflow_and_prints_warnings(demo):
    out, err = StringIO(), StringIO()
    call_command("task_admin", "from-code", TUTORIAL["Tutorial: chord"], "--name", "cli chord",
                 stdout=out, stderr=err)
    workflow = Workflow.objects.get(name="cli chord")
    assert f"Created workflow “cli chord” (#{workflow.pk})." in out.getvalue()
    assert "warning: line 1, column 37: root.body" in err.getvalue()


def test_command_refuses_with_positions_and_saves_nothing(demo):
    before = counts()
    with pytest.raises(CommandError) as info:
        call_command("task_admin", "from-code", "chain(suma.s(1, 2), nosuch.s())",
                     "--name", "cli bad", stdout=StringIO(), stderr=StringIO())
    assert "line 1, column 21: unknown or disallowed task 'nosuch'" in str(info.value)
    assert counts() == before
    with pytest.raises(CommandError, match="already exists"):
        call_command("task_admin", "from-code", "suma.s(1, 2)", "--name", "Tutorial: chain",
                     stdout=StringIO(), stderr=StringIO())
    assert counts() == before


def test_command_dry_run_and_replace(demo, monkeypatch):
    out = StringIO()
    call_command("task_admin", "from-code", "suma.s(1, 2) | suma.s(3)", "--name", "dry",
                 "--dry-run", stdout=out, stderr=StringIO())
    assert "chain(suma.s(1, 2), suma.s(3))" in out.getvalue()
    assert not Workflow.objects.filter(name="dry").exists()
    monkeypatch.setattr("sys.stdin", StringIO("group(suma.s(9, 9), suma.s(1, 1))"))
    call_command("task_admin", "from-code", "-", "--name", "Tutorial: group", "--replace",
                 stdout=StringIO(), stderr=StringIO())
    assert plain(workflow_to_spec(Workflow.objects.get(name="Tutorial: group"))) == canvas.Group(
        (canvas.Task("project.demo.tasks.suma", (9, 9)),
         canvas.Task("project.demo.tasks.suma", (1, 1)))
    )


def test_command_exits_non_zero_from_a_shell(demo, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "task_admin", "from-code", "suma.s(x)", "--name", "n"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        check=False,
    )
    assert result.returncode == 1
    assert "line 1, column 8: the name 'x' is not a literal" in result.stderr


def test_copying_a_workflow_as_code_takes_two_queries(demo, django_assert_num_queries):
    workflow = Workflow.objects.get(name="Slow task beside a reused chain")
    # The workflow's nodes with their invocations, then those of the workflow it reuses.
    with django_assert_num_queries(2):
        code = canvas_code.workflow_code(workflow)
    assert "from project.demo.tasks import slow, suma" in code


def test_saving_a_big_tree_takes_a_few_queries_not_one_per_node(django_assert_max_num_queries):
    code = "group([" + ", ".join(f"suma.s({i}, {i})" for i in range(300)) + "])"
    reading = canvas_code.read(code)
    with django_assert_max_num_queries(30):  # was one INSERT per invocation and per node
        workflow, created = canvas_code.create_workflow(reading, name="big")
    assert len(created) == 300 and WorkflowNode.objects.filter(workflow=workflow).count() == 301
    assert plain(workflow_to_spec(workflow)) == reading.spec
