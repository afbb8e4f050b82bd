"""A keyword argument whose name Python would normalise survives render then parse."""

from task_admin.canvas import Group, Task
from task_admin.canvas.code import make_resolver, parse, render


def test_a_kwarg_name_that_nfkc_changes_comes_back_unchanged():
    # Found by the round-trip property test: Python reads ``º=None`` as ``o=None``.
    tree = Group((Task("proj.tasks.suma"), Task("proj.tasks.suma", kwargs={"º": None})))
    assert parse(render(tree), make_resolver(["proj.tasks.suma"])) == tree
