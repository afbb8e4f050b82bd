"""``task_admin.compile``: stored workflow rows to the canvas spec, and the reuse queries."""

import pytest

from task_admin import canvas
from task_admin.compile import (
    InvalidWorkflow,
    load_nodes,
    node_pk,
    node_ref,
    workflow_to_spec,
    workflows_reusing,
    workflows_using,
)
from task_admin.models import NodeKind, NodeRole, WorkflowNode
from tests.support.factories import SUMA, add_node, invocation, workflow

pytestmark = pytest.mark.django_db


def test_spec_of_a_large_tree_takes_constant_queries(django_assert_max_num_queries):
    two = invocation(SUMA, [2, 2])
    groups = [("group", [two] * 9) for _ in range(50)]
    other = workflow("other", ("chain", [two, ("group", [two] * 8)]))
    wf = workflow("big", ("chain", [*groups, ("workflow", other)]))
    assert wf.nodes.count() + other.nodes.count() > 500
    # The workflow's own nodes, then (it reuses one) the reused workflows at any depth.
    with django_assert_max_num_queries(2):
        spec = workflow_to_spec(wf)
    assert canvas.count_leaves(spec) == 50 * 9 + 9
    # A workflow that reuses none (most) is one indexed query, whatever its size.
    with django_assert_max_num_queries(1):
        assert canvas.count_leaves(workflow_to_spec(other)) == 9


def test_a_reused_workflow_is_named_in_the_spec():
    from task_admin.graph import render_svg

    inner = workflow("Adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    outer = workflow("Outer", ("group", [invocation(SUMA, [1, 1]), ("workflow", inner)]))
    spec = workflow_to_spec(outer)
    assert spec.tasks[1].label == "Adds"
    assert "chain: Adds" in render_svg(spec)


def test_a_ref_names_its_stored_node_and_reads_back():
    wf = workflow("one", ("chain", [invocation(SUMA, [1, 1])]))
    node = wf.nodes.get(kind=NodeKind.TASK)
    assert node_ref(node) == f"node:{node.pk}"
    assert node_pk(node_ref(node)) == node.pk
    # Refs of other origins (a pasted canvas, a re-run's stand-in) name no stored node.
    assert [node_pk(ref) for ref in (None, "", "pasted:3", "root.0")] == [None] * 4


def test_chain_group_and_chord_compile_to_their_spec_with_refs_and_labels():
    two, four, ten = invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4]), invocation(SUMA, [10])
    wf = workflow("shapes", ("chain", [("group", [two, four]), ("chord", [two, four], ten)]))
    WorkflowNode.objects.filter(workflow=wf, invocation=ten).update(label="add ten")
    spec = workflow_to_spec(wf)
    assert isinstance(spec, canvas.Chain)
    group, chord = spec.tasks
    assert isinstance(group, canvas.Group) and isinstance(chord, canvas.Chord)
    assert [t.args for t in group.tasks] == [(2, 2), (4, 4)]
    assert [t.args for t in chord.header] == [(2, 2), (4, 4)]
    assert (chord.body.task, chord.body.args, chord.body.label) == (SUMA, (10,), "add ten")
    # Every node, containers too, keeps the ref of its row.
    rows = {node_ref(n) for n in wf.nodes.all()}
    refs = {spec.ref, group.ref, chord.ref, chord.body.ref,
            *(t.ref for t in group.tasks), *(t.ref for t in chord.header)}
    assert refs == rows
    assert [path for path, _task in canvas.leaves(spec)] == [
        "root.0.0", "root.0.1", "root.1.header.0", "root.1.header.1", "root.1.body",
    ]


def test_misplaced_rows_are_problems_with_their_path_and_ref():
    two = invocation(SUMA, [2, 2])
    wf = workflow("misplaced", ("chain", [two]))
    task = wf.nodes.get(kind=NodeKind.TASK)
    stray = add_node(wf, two, parent=task)  # a child under a task
    root = wf.nodes.get(parent=None)
    header = add_node(wf, two, parent=root, role=NodeRole.HEADER, position=1)  # in a chain
    with pytest.raises(InvalidWorkflow) as info:
        workflow_to_spec(wf)
    found = {(p.path, p.message, p.ref) for p in info.value.problems}
    assert found == {
        ("root.0", "a task node cannot have children", node_ref(task)),
        ("root", "only a chord has header and body nodes", node_ref(header)),
    }
    assert "root.0: a task node cannot have children" in str(info.value)
    assert stray.pk  # kept: the problem is reported, nothing is deleted


def test_a_chord_with_a_step_child_and_a_reused_workflow_without_nodes_are_problems():
    two = invocation(SUMA, [2, 2])
    wf = workflow("chord", ("chord", [two], invocation(SUMA, [1])))
    step = add_node(wf, two, parent=wf.nodes.get(parent=None), role=NodeRole.STEP, position=5)
    empty = workflow("nothing yet", ("chain", []))
    empty.nodes.all().delete()
    reuser = workflow("reuses nothing", ("group", [two, ("workflow", empty)]))
    with pytest.raises(InvalidWorkflow) as chord_problems:
        workflow_to_spec(wf)
    assert [(p.path, p.message, p.ref) for p in chord_problems.value.problems] == [
        ("root", "a chord's nodes must be in its header or its body", node_ref(step))
    ]
    with pytest.raises(InvalidWorkflow) as reuse_problems:
        workflow_to_spec(reuser)
    assert [(p.path, p.message) for p in reuse_problems.value.problems] == [
        ("root.1", "workflow “nothing yet” has no nodes")
    ]


def test_reused_workflows_at_any_depth_take_one_more_query(django_assert_num_queries):
    inner = workflow("inner", ("chain", [invocation(SUMA, [1, 1])]))
    middle = workflow("middle", ("group", [("workflow", inner)]))
    outer = workflow("outer", ("chain", [invocation(SUMA, [2, 2]), ("workflow", middle)]))
    workflow("unrelated", ("chain", [invocation(SUMA, [3, 3])]))
    # The workflow's nodes, then those of every workflow it reuses, at any depth, at once.
    with django_assert_num_queries(2):
        nodes = load_nodes(outer.pk)
        # Invocations and reused workflows come with them: compiling them costs no query.
        spec = workflow_to_spec(outer, nodes)
    assert {n.workflow_id for n in nodes} == {outer.pk, middle.pk, inner.pk}
    assert canvas.count_leaves(spec) == 2


def test_the_workflows_using_an_invocation_or_reusing_a_workflow_at_any_depth():
    one, other = invocation(SUMA, [1, 1]), invocation(SUMA, [2, 2])
    inner = workflow("inner", ("chain", [one]))
    middle = workflow("middle", ("group", [other, ("workflow", inner)]))
    outer = workflow("outer", ("chain", [("workflow", middle)]))
    alone = workflow("alone", ("chain", [other]))
    assert set(workflows_using(one.pk)) == {inner, middle, outer}
    assert set(workflows_using(other.pk)) == {middle, outer, alone}
    assert set(workflows_reusing(inner.pk)) == {inner, middle, outer}
    assert set(workflows_reusing(alone.pk)) == {alone}
    # A reuse cycle ends the walk instead of looping.
    add_node(inner, ("workflow", outer), parent=inner.nodes.get(parent=None), position=1)
    assert set(workflows_reusing(inner.pk)) == {inner, middle, outer}
