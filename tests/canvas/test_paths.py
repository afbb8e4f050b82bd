"""The one path grammar, and that the spec walk uses it."""

import pytest

from task_admin import canvas
from task_admin.canvas import paths


def test_builders_and_readers():
    assert paths.step(paths.ROOT, 2) == "root.2"
    assert paths.header("root.1", 0) == "root.1.header.0"
    assert paths.body("root.1") == "root.1.body"
    assert paths.is_body("root.1.body") and not paths.is_body("root.1.header.0")


@pytest.mark.parametrize(("path", "depth", "parent"), [
    ("root", 0, None),
    ("root.3", 1, "root"),
    ("root.header.0", 1, "root"),
    ("root.body", 1, "root"),
    ("root.1.header.2.body", 3, "root.1.header.2"),
    ("root.body.0", 2, "root.body"),
])
def test_depth_and_parent(path, depth, parent):
    assert paths.depth(path) == depth
    assert paths.parent(path) == parent


def test_nearest_known_ancestor():
    known = {"root", "root.1"}
    assert paths.nearest("root.1.header.0.body", known) == "root.1"
    assert paths.nearest("root.0", known) == "root"
    assert paths.nearest("root.1", set()) is None


def test_walk_names_nodes_with_the_grammar():
    leaf = canvas.Task("t")
    spec = canvas.Chain((leaf, canvas.Chord((leaf, leaf), canvas.Group((leaf,)))))
    assert [p for p, _node, _depth in canvas.walk(spec)] == [
        "root", "root.0", "root.1", "root.1.header.0", "root.1.header.1", "root.1.body",
        "root.1.body.0",
    ]
    for path, _node, depth in canvas.walk(spec):
        assert paths.depth(path) == depth
