"""Save-time checks: bad input is refused with a message naming the node, nothing is sent."""

import math

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from task_admin import services
from task_admin.compile import InvalidWorkflow
from task_admin.models import NodeKind, WorkflowNode, WorkflowRun
from task_admin.validation import workflow_problems
from tests.support.factories import SUMA, add_node, invocation, workflow

pytestmark = pytest.mark.django_db


def messages(exc: ValidationError) -> str:
    return " ".join(m for ms in exc.message_dict.values() for m in ms) if hasattr(
        exc, "error_dict") else " ".join(exc.messages)


def test_wrong_arity_is_refused_at_save():
    with pytest.raises(ValidationError) as info:
        invocation(SUMA, [1, 2, 3])
    assert "suma(a, b) cannot take these arguments: too many positional arguments" in messages(
        info.value)


def test_missing_argument_is_refused_unless_a_parent_result_can_supply_it():
    with pytest.raises(ValidationError, match="missing a required argument: 'b'"):
        invocation(SUMA, [2], immutable=True)
    # Not immutable: as a chain step or chord body the previous result supplies ``a``.
    assert invocation(SUMA, [4]).pk


def test_unknown_and_disallowed_tasks_are_refused():
    with pytest.raises(ValidationError) as info:
        invocation("tests.testapp.tasks.nope", [])
    assert "task" in info.value.message_dict
    with pytest.raises(ValidationError, match="not a task that may be run"):
        invocation("celery.backend_cleanup", [])


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ([math.nan, 1], {}, "JSON"),
        ([1, 2], {"b": math.inf}, "JSON"),
        ([1, 2], {"a" * 10: "x" * 70_000}, "limit"),
    ],
)
def test_non_json_and_oversized_values_are_refused(args, kwargs, expected):
    with pytest.raises(ValidationError, match=expected):
        invocation("tests.testapp.tasks.process_file", args[:0], kwargs or {"name": args[0]})


def test_args_must_be_a_list_and_kwargs_an_object():
    from task_admin.models import TaskInvocation

    bad = TaskInvocation(name="bad", task=SUMA, args={"a": 1}, kwargs=[1])
    with pytest.raises(ValidationError) as info:
        bad.full_clean()
    assert set(info.value.message_dict) == {"args", "kwargs"}


def test_tutorial_chord_is_accepted_exactly_as_the_signature_says():
    two, four = invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])
    ten = invocation(SUMA, [10])
    wf = workflow("chord", ("chord", [two, four], ten))
    # suma(header_results, 10): two arguments, so the signature check accepts it.
    assert workflow_problems(wf) == []
    # suma(10, 20) is a fine call on its own, but as a body it would get three arguments.
    both = invocation(SUMA, [10, 20])
    refused = workflow("chord-refused", ("chord", [two, four], both))
    [problem] = workflow_problems(refused)
    assert problem.path == "root.body"
    assert "too many positional arguments" in problem.message
    assert "header results" in problem.message


def test_chain_counts_the_previous_result():
    two, more = invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4], name="four-four")
    wf = workflow("chain", ("chain", [two, more]))
    [problem] = workflow_problems(wf)
    assert problem.path == "root.1"
    assert "too many positional arguments" in problem.message
    assert problem.ref == f"node:{WorkflowNode.objects.get(workflow=wf, invocation=more).pk}"


def test_structural_problems_name_the_node():
    two = invocation(SUMA, [2, 2])
    no_body = workflow("no-body", ("chord", [two]))
    assert [(p.path, p.message) for p in workflow_problems(no_body)] == [
        ("root", "chord without a body")
    ]
    empty = workflow("empty-group", ("chain", [two, ("group", [])]))
    assert [(p.path, p.message) for p in workflow_problems(empty)] == [("root.1", "empty group")]
    assert [p.message for p in workflow_problems(workflow("bare", ("chain", [])))] == [
        "empty chain"
    ]


def test_reuse_cycles_are_refused():
    two = invocation(SUMA, [2, 2])
    a = workflow("A", ("chain", [two]))
    b = workflow("B", ("group", [two, ("workflow", a)]))
    add_node(a, ("workflow", b), parent=a.nodes.get(parent=None), position=1)
    [problem] = workflow_problems(a)
    assert problem.message == "reuse cycle: A → B → A"
    assert problem.path == "root.1.1"
    with pytest.raises(InvalidWorkflow):
        services.run_workflow(a)
    assert not WorkflowRun.objects.exists()


def test_depth_limit(settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "MAX_DEPTH": 3}
    two = invocation(SUMA, [2, 2])
    tree = two
    for _ in range(5):
        tree = ("group", [tree])
    problems = workflow_problems(workflow("deep", tree))
    assert [p.message for p in problems] == ["nested deeper than 3 levels"]


def test_editing_an_invocation_may_not_break_a_workflow_using_it():
    two, four = invocation(SUMA, [2, 2]), invocation(SUMA, [4], name="plus-four")
    workflow("uses-it", ("chain", [two, four]))
    four.args = [4, 4]
    with pytest.raises(ValidationError, match=r"workflow “uses-it” at root\.1"):
        four.full_clean()


def test_an_edit_may_not_break_a_workflow_that_reuses_its_workflow():
    slow = invocation("tests.testapp.tasks.slow", [], name="slow-step")
    inner = workflow("inner", ("chain", [slow]))
    middle = workflow("middle", ("group", [("workflow", inner)]))
    workflow("outer", ("chain", [invocation(SUMA, [1, 1]), ("workflow", middle)]))
    # Alone, or in a group, slow(3) is fine; in "outer" the chain hands it 2 as well.
    slow.args = [3]
    with pytest.raises(ValidationError) as refused:
        slow.full_clean()
    messages = " ".join(refused.value.messages)
    assert "workflow “outer” at root.1" in messages
    assert "“inner”" not in messages and "“middle”" not in messages


def test_database_constraints_hold_what_they_can():
    two = invocation(SUMA, [2, 2])
    wf = workflow("wf", ("chord", [two], two))
    chord = wf.nodes.get(parent=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkflowNode.objects.create(workflow=wf, kind=NodeKind.TASK)  # no invocation
    with pytest.raises(IntegrityError), transaction.atomic():
        add_node(wf, two, parent=chord, role="body", position=1)  # second body
    with pytest.raises(IntegrityError), transaction.atomic():
        add_node(wf, ("group", [two]))  # second root
    with pytest.raises(IntegrityError), transaction.atomic():
        invocation(SUMA, [1, 1], soft_time_limit=10, time_limit=5, clean=False)


def test_a_draft_broken_elsewhere_does_not_freeze_its_other_invocations():
    broken = invocation(SUMA, [1], name="one arg", immutable=True, clean=False)
    fine = invocation(SUMA, [4], name="plus-four")
    workflow("draft", ("chain", [broken, fine]))
    fine.description = "Adds 4 to the previous result."
    fine.full_clean()  # the draft's own problem at root.0 is not this edit's doing
    fine.args = [4, 4]
    with pytest.raises(ValidationError) as info:
        fine.full_clean()
    assert "root.1" in str(info.value.messages) and "root.0" not in str(info.value.messages)
