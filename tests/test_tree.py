"""The one tree over stored rows: children in order, paths, level order (no queries)."""

import pytest

from task_admin.models import NodeKind, NodeRole, WorkflowNode
from task_admin.tree import Tree
from tests.support.factories import SUMA, add_node, invocation, workflow

pytestmark = pytest.mark.django_db


def test_paths_levels_and_children_in_order(django_assert_num_queries):
    a, b, c = (invocation(SUMA, [i, i]) for i in range(3))
    wf = workflow("t", ("chain", [a, ("chord", [b, c], ("group", [a])), b]))
    nodes = list(WorkflowNode.objects.filter(workflow=wf).select_related("invocation"))
    with django_assert_num_queries(0):
        tree = Tree(reversed(nodes))  # any input order
        walked = [(n.kind, path, depth) for n, path, depth in tree.walk(wf.pk)]
        levels = [[n.kind for n in level] for level in tree.levels(wf.pk)]
    assert walked == [
        ("chain", "root", 0),
        ("task", "root.0", 1),
        ("chord", "root.1", 1),
        ("task", "root.1.header.0", 2),
        ("task", "root.1.header.1", 2),
        ("group", "root.1.body", 2),
        ("task", "root.1.body.0", 3),
        ("task", "root.2", 1),
    ]
    assert levels == [["chain"], ["task", "chord", "task"], ["group", "task", "task"], ["task"]]
    chord = next(n for n in nodes if n.kind == NodeKind.CHORD)
    assert [n.role for n in tree.children(chord)] == ["body", "header", "header"]
    assert [n.invocation_id for n in tree.header(chord)] == [b.pk, c.pk]


def test_misplaced_children_have_no_path():
    wf = workflow("t", ("group", [invocation(SUMA, [1, 1])]))
    root = wf.nodes.get(parent=None)
    add_node(wf, invocation(SUMA, [2, 2]), root, NodeRole.BODY, 0)  # a body in a group
    tree = Tree(WorkflowNode.objects.filter(workflow=wf))
    assert sorted(path for _n, path, _d in tree.walk(wf.pk)) == ["", "root", "root.0"]
