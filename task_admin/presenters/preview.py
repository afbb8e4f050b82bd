"""A stored workflow as the admin shows it: its tree (rows by path), problems titled by node,
the canvas it sends and its graph. Plain data for the change page, the run-now page and the
messages after a save."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils.translation import gettext

from task_admin import canvas, composer
from task_admin.canvas.build import to_python
from task_admin.compile import InvalidWorkflow, load_nodes, node_pk, workflow_to_spec
from task_admin.graph import render_svg
from task_admin.models import NodeKind, TaskInvocation, Workflow, WorkflowNode
from task_admin.tree import Tree
from task_admin.validation import check_spec, spec_warnings


def node_title(node: WorkflowNode) -> str:
    """What a node is called: its label, else what it runs, else its kind."""
    if node.label:
        return node.label
    if node.kind == NodeKind.TASK and node.invocation_id:
        return node.invocation.name
    if node.kind == NodeKind.WORKFLOW and node.reuse_id:
        return node.reuse.name
    return str(node.get_kind_display())


def render_graph(spec: canvas.Node | None) -> str:
    """The spec's SVG graph (nothing without a spec)."""
    return render_svg(spec, states=None) if spec is not None else ""


# -- what the change page and the run page show ------------------------------------------------


@dataclass
class ProblemRow:
    path: str
    title: str
    message: str

    def __str__(self) -> str:
        if self.title:
            return gettext("%(path)s “%(title)s”: %(message)s") % {
                "path": self.path, "title": self.title, "message": self.message,
            }
        return gettext("%(path)s: %(message)s") % {"path": self.path, "message": self.message}


@dataclass
class TreeRow:
    node: WorkflowNode
    depth: int
    path: str
    title: str
    problems: list[str] = field(default_factory=list)

    @property
    def detail(self) -> str:
        # On demand: rendering a task's call costs about half a millisecond, and the page
        # itself no longer lists the rows (the composer does).
        return _task_detail(self.node)

    @property
    def indent(self) -> str:
        return f"{1.5 * self.depth:.1f}em"


@dataclass
class Preview:
    """A stored workflow as the admin shows it: tree, canvas, graph and problems."""

    workflow: Workflow
    spec: canvas.Node | None
    problems: list[ProblemRow]
    rows: list[TreeRow]

    @property
    def python(self) -> str:
        return to_python(self.spec) if self.spec is not None else ""

    @property
    def graph(self) -> str:
        return render_graph(self.spec)

    @property
    def can_run(self) -> bool:
        return self.spec is not None and not self.problems

    @cached_property
    def warnings(self) -> list[canvas.Problem]:
        """Likely mistakes that do not keep it from running (the chord-body warning)."""
        return spec_warnings(self.spec)


def _task_detail(node: WorkflowNode) -> str:
    if node.kind == NodeKind.TASK and node.invocation_id:
        return to_python(node.invocation.to_spec())
    if node.kind == NodeKind.WORKFLOW and node.reuse_id:
        return gettext("reuses “%(name)s”") % {"name": node.reuse.name}
    return ""


def preview(workflow: Workflow, *, check: bool = True) -> Preview:
    """Two queries: the nodes (with reused workflows' nodes) and nothing else.

    ``check=False``: compiled only (structural problems still listed), for a caller that has
    the spec checked elsewhere, once (the run-now POST, by ``services.prepare_run``).
    """
    nodes = load_nodes(workflow.pk)
    by_pk = {node.pk: node for node in nodes}
    try:  # compiled once: workflow_problems() would compile it a second time
        spec = workflow_to_spec(workflow, nodes)
    except InvalidWorkflow as exc:
        spec, found = None, exc.problems
    else:
        found = check_spec(spec) if check else []
    problems, by_node = [], {}
    for problem in found:
        pk = node_pk(problem.ref)
        node = by_pk.get(pk) if pk is not None else None
        problems.append(ProblemRow(problem.path, node_title(node) if node else "",
                                   problem.message))
        if pk is not None:
            by_node.setdefault(pk, []).append(problem.message)
    tree = Tree(node for node in nodes if node.workflow_id == workflow.pk)
    rows = [
        TreeRow(node, depth, path or gettext("not placed"), node_title(node),
                by_node.get(node.pk, []))
        for node, path, depth in tree.walk(workflow.pk)
    ]
    return Preview(workflow, spec, problems, rows)


_CALLS: dict[tuple[int, object], str] = {}
# Past this many, the calls of invocations that changed or went are dropped.
_CALLS_KEPT = 20_000


def invocation_choices(ids: Iterable[int] | None = None) -> list[dict]:
    """Every invocation (or those of ``ids``), by name, as the composer offers it: id, name,
    call (``suma.s(2, 2)``), task, arguments, whether it is immutable and whether it sets no
    option ("plain": a task node can then carry its call as fields).

    A site may have thousands of invocations, and the composer fetches them all
    (``WorkflowAdmin.invocations_view``; its page carries only its tree's), so they are read
    as plain values, not model instances (measured at 12,000: the instances and their
    two timestamps were half of the page's time), and each call is kept per process by (id,
    last change): writing one costs about half a millisecond. Only the invocations whose
    call is not kept are read whole, in one query (batches of 999 on SQLite).
    """
    # The arguments as their JSON text, read by one json.loads a row: Django's JSONField
    # reads each value on its own, with more around it.
    chosen = TaskInvocation.objects.all()
    if ids is not None:
        chosen = chosen.filter(pk__in=list(ids))
    rows = [
        (pk, name, task, *json.loads(f"[{args},{kwargs}]"), immutable, changed)
        for pk, name, task, args, kwargs, immutable, changed in
        chosen.order_by("name").values_list(
            "pk", "name", "task", Cast("args", TextField()), Cast("kwargs", TextField()),
            "immutable", "updated_at")
    ]
    plain = set(chosen.filter(**composer.PLAIN_OPTIONS).values_list("pk", flat=True))
    # This request's calls, taken once: another request may trim the shared dict meanwhile.
    calls = {pk: _CALLS.get((pk, changed)) for pk, *_rest, changed in rows}
    missing = [pk for pk, call in calls.items() if call is None]
    if missing:
        for invocation in TaskInvocation.objects.in_bulk(missing).values():
            # Changed since the first read: the call as read now (kept under its new key).
            calls[invocation.pk] = _CALLS[(invocation.pk, invocation.updated_at)] = to_python(
                invocation.to_spec(label=invocation.name))
        if len(_CALLS) > _CALLS_KEPT:
            # What fills it is the calls of older versions and deleted invocations.
            current = {(pk, changed) for pk, *_rest, changed in rows}
            for key in [key for key in list(_CALLS) if key not in current]:
                _CALLS.pop(key, None)
    return [
        {"id": pk, "name": name, "task": task, "args": args, "kwargs": kwargs,
         "immutable": immutable, "plain": pk in plain,
         "call": calls[pk] or ""}  # "": deleted between the two reads
        for pk, name, task, args, kwargs, immutable, _changed in rows
    ]

@dataclass
class SavedTree:
    """A tree just saved, as the messages after the save report it."""

    spec: canvas.Node | None
    problems: list[ProblemRow]  # what keeps it from running, titled by node
    warnings: list[canvas.Problem]  # likely mistakes that do not


def saved_tree(workflow: Workflow, composition: composer.Composition | None = None
               ) -> SavedTree:
    """Compiled and checked once: from the rows the composer just saved, still in memory (no
    reload of a big tree), else from the stored rows."""
    if composition is None:
        shown = preview(workflow)
        return SavedTree(shown.spec, shown.problems, spec_warnings(shown.spec))
    spec, found = composition.spec_and_problems(workflow.name)
    rows = {row.pk: row for row in composition.rows}
    problems, warnings = [], []
    for problem in found:
        if problem_level(problem) != "error":
            warnings.append(problem)
            continue
        row = rows.get(node_pk(problem.ref)) if problem.ref else None
        problems.append(ProblemRow(problem.path, node_title(row) if row else "", problem.message))
    return SavedTree(spec, problems, warnings)


# -- the composer's live preview ----------------------------------------------------------------


def problem_level(problem: canvas.Problem) -> str:
    return getattr(problem, "level", "error") or "error"


def composer_preview(composition: composer.Composition | None, name: str,
                     errors: list[canvas.Problem] | None = None) -> dict:
    """What the composer shows beside the tree (as JSON): problems by path, the graph, the
    canvas. ``composition`` None: the document could not be read (``errors`` say why)."""
    if composition is None:
        spec, problems = None, list(errors or [])
    else:
        spec, problems = composition.spec_and_problems(name)
    return {
        "problems": [
            {"path": p.path, "message": p.message, "level": problem_level(p)} for p in problems
        ],
        "blocking": composition is None,
        "graph": render_graph(spec),
        "python": to_python(spec) if spec is not None else "",
    }
