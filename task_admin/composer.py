"""The composer's document: a whole workflow tree as one JSON value, checked and saved at once.

The page posts the tree as one document instead of one form row per node, so a tree of any
size is one POST field (no ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` limit) and can be built, nested and
reordered before the first save. The server stays the judge:

- ``parse`` refuses what the database cannot hold (an unknown kind, a task node without its
  invocation, a reused workflow that does not exist), each error with the node's path;
- ``Composition.problems`` runs the same checks as a stored workflow (``compile`` then
  ``canvas.validate``) on the unsaved rows: such problems keep the workflow a draft;
- ``save`` replaces the stored rows in one transaction, keeping each node's primary key and
  key (so past runs stay linked to their nodes).

The document, version 1::

    {"version": 1, "root": null | NODE}
    NODE = {"kind": "task", "invocation": 12, "key": "…", "label": "…"}
         | {"kind": "task", "task": "app.tasks.add", "args": [2, 2], "kwargs": {},
            "immutable": false, …}
         | {"kind": "workflow", "reuse": 3, …}
         | {"kind": "group" | "chain", "children": [NODE, …], …}
         | {"kind": "chord", "header": [NODE, …], "body": null | NODE, …}

``key`` names a stored node to keep (anything else is a new node). A task node either names a
saved invocation or carries its call inline (a task picked in the composer, its arguments typed
in fields): the server checks an inline call as the invocation form would (``validation.
validate_invocation`` and the annotated types) and, on save, stores it as an invocation in the
same transaction, reusing an identical one (same task, arguments, no options) where it exists.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from task_admin import canvas, validation
from task_admin.canvas import paths
from task_admin.canvas.build import to_python
from task_admin.canvas.spec import PARSE_MAX_DEPTH
from task_admin.compile import (
    InvalidWorkflow,
    _reachable_workflows_sql,
    workflow_to_spec,
)
from task_admin.conf import get_config
from task_admin.i18n import translated_problems
from task_admin.models import (
    NodeKind,
    NodeRole,
    TaskInvocation,
    TaskRun,
    Workflow,
    WorkflowNode,
)
from task_admin.models.workflows import new_node_key
from task_admin.tree import Tree
from task_admin.validation import check_spec

DOCUMENT_VERSION = 1
KEY_RE = re.compile(r"^[-a-zA-Z0-9_]{1,40}$")
LABEL_MAX = WorkflowNode._meta.get_field("label").max_length
COMMON_KEYS = {"kind", "key", "label"}
INLINE_KEYS = {"task", "args", "kwargs", "immutable"}
KIND_KEYS = {
    NodeKind.TASK: {"invocation", *INLINE_KEYS},
    NodeKind.WORKFLOW: {"reuse"},
    NodeKind.GROUP: {"children"},
    NodeKind.CHAIN: {"children"},
    NodeKind.CHORD: {"header", "body"},
}
# The workflow id given to the rows of a workflow not saved yet (no row has id 0).
UNSAVED = 0
# An inline call reuses a saved invocation only when that one sets none of these options:
# the composer's fields give a task and its arguments, nothing else.
PLAIN_OPTIONS = {
    "countdown": None, "eta": None, "expires": None, "queue": "", "priority": None,
    "retry": True, "retry_max_retries": None, "retry_interval_start": None,
    "retry_interval_step": None, "retry_interval_max": None, "soft_time_limit": None,
    "time_limit": None,
}
INVOCATION_NAME_MAX = TaskInvocation._meta.get_field("name").max_length


class DocumentError(ValueError):
    """The document cannot be stored; ``problems`` name each node that is wrong."""

    def __init__(self, problems: list[canvas.Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass
class Composition:
    """A parsed document: unsaved rows in tree order, ready to check and to save."""

    workflow_id: int
    rows: list[WorkflowNode]
    paths: dict[int, str]  # row pk (stored, or a negative stand-in for a new row) -> path
    reused: list[WorkflowNode] = field(default_factory=list)
    # Inline calls with no identical saved invocation: created by ``save``.
    new_invocations: list[TaskInvocation] = field(default_factory=list)

    def spec_and_problems(self, name: str) -> tuple[canvas.Node | None, list[canvas.Problem]]:
        """What a stored workflow with these rows would compile to, and its problems."""
        if not self.rows:
            return None, [canvas.Problem(paths.ROOT, _("the workflow has no nodes yet"))]
        workflow = Workflow(pk=self.workflow_id, name=name)
        try:
            spec = workflow_to_spec(workflow, [*self.rows, *self.reused])
        except InvalidWorkflow as exc:
            return None, exc.problems
        return spec, check_spec(spec) + spec_warnings(spec)


def spec_warnings(spec: canvas.Node) -> list[canvas.Problem]:
    """Likely mistakes Celery would still send (a chord body that cannot take the header's
    list): shown next to their node, never blocking."""
    return translated_problems(validation.spec_warnings(spec))


# -- stored rows -> document -------------------------------------------------------------------


def _node_document(node: WorkflowNode, tree: Tree) -> dict:
    out: dict = {"kind": node.kind, "key": node.key, "label": node.label}
    if node.kind == NodeKind.TASK:
        out["invocation"] = node.invocation_id
    elif node.kind == NodeKind.WORKFLOW:
        out["reuse"] = node.reuse_id
    elif node.kind == NodeKind.CHORD:
        out["header"] = []
        out["body"] = None
    else:
        out["children"] = []
    return out


def document(workflow_id: int | None, nodes: list[WorkflowNode]) -> dict:
    """The document of stored rows (nodes a document cannot place are left out)."""
    if workflow_id is None:
        return {"version": DOCUMENT_VERSION, "root": None}
    tree = Tree(nodes)
    made: dict[int, dict] = {}
    root = None
    for node, path, _depth in tree.walk(workflow_id):
        if not path:
            continue
        item = _node_document(node, tree)
        made[node.pk] = item
        parent = made.get(node.parent_id)
        if parent is None:
            root = item
        elif paths.is_body(path):
            parent["body"] = item
        elif node.role == NodeRole.HEADER:
            parent["header"].append(item)
        else:
            parent["children"].append(item)
    return {"version": DOCUMENT_VERSION, "root": root}


def stored_document(workflow: Workflow) -> dict:
    return document(workflow.pk, list(WorkflowNode.objects.filter(workflow=workflow)))


# -- document -> rows ---------------------------------------------------------------------------


def parse(raw: str | dict, workflow: Workflow | None, *,
          can_add_invocations: bool = True) -> Composition:
    """The rows a document describes; raises ``DocumentError`` for what cannot be stored.

    Four queries whatever the size: the stored keys, the invocations and the reused
    workflows named, the saved invocations an inline call may reuse (plus one per distinct
    reused workflow, for its own tree). ``can_add_invocations``: whether an inline call with no
    identical saved invocation may create one (the user's add permission on invocations).
    """
    data = _load(raw)
    workflow_id = workflow.pk if workflow is not None and workflow.pk else UNSAVED
    stored = (
        dict(WorkflowNode.objects.filter(workflow_id=workflow_id).values_list("key", "pk"))
        if workflow_id != UNSAVED else {}
    )
    items = _flatten(data.get("root"))
    max_nodes = get_config()["MAX_NODES"]
    if len(items) > max_nodes:
        raise DocumentError([canvas.Problem(
            paths.ROOT, _("%(count)s nodes, more than the limit of %(max)s")
            % {"count": len(items), "max": max_nodes}
        )])
    problems: list[canvas.Problem] = []
    wanted_invocations, wanted_workflows = _ids(items, "invocation"), _ids(items, "reuse")
    invocations = TaskInvocation.objects.in_bulk(wanted_invocations) if wanted_invocations else {}
    reusable = Workflow.objects.in_bulk(wanted_workflows) if wanted_workflows else {}

    rows: list[WorkflowNode] = []
    row_paths: dict[int, str] = {}
    pk_of_path: dict[str, int] = {}
    used_keys: set[str] = set()
    stand_in = itertools.count(-1, -1)
    inline: list[tuple[str, dict, WorkflowNode]] = []
    for path, item, role, position in items:
        found = _item_problems(path, item, invocations, reusable, workflow_id)
        problems += found
        key = item.get("key")
        if not (isinstance(key, str) and KEY_RE.match(key)) or key in used_keys:
            key = new_node_key()
        used_keys.add(key)
        pk = stored.get(key) or next(stand_in)
        parent_path = paths.parent(path)
        kind = item.get("kind")
        row = WorkflowNode(
            pk=pk,
            workflow_id=workflow_id,
            key=key,
            parent_id=pk_of_path.get(parent_path) if parent_path else None,
            kind=kind,
            role=role,
            position=position,
            label=item.get("label") or "",
        )
        if kind == NodeKind.TASK and is_inline(item):
            if not found:
                inline.append((path, item, row))
        elif kind == NodeKind.TASK:
            row.invocation = invocations.get(item.get("invocation"))
        elif kind == NodeKind.WORKFLOW:
            row.reuse = reusable.get(item.get("reuse"))
        rows.append(row)
        row_paths[pk] = path
        pk_of_path[path] = pk
    new_invocations: list[TaskInvocation] = []
    if inline:
        found, new_invocations = _inline_invocations(inline, can_add_invocations)
        problems += found
    if problems:
        raise DocumentError(problems)
    reused = _reused_nodes(workflow_id, {row.reuse_id for row in rows if row.reuse_id})
    return Composition(workflow_id, rows, row_paths, reused, new_invocations)


def invocation_ids(raw: str | dict) -> set[int]:
    """The saved invocations a document's task nodes name; raises ``DocumentError`` for a
    document ``parse`` could not read."""
    return _ids(_flatten(_load(raw).get("root")), "invocation")


def _load(raw: str | dict) -> dict:
    """The document as a dict of this version; ``DocumentError`` otherwise."""
    if isinstance(raw, str):
        try:
            data = json.loads(raw or "{}")
        except (ValueError, RecursionError):
            raise DocumentError(
                [canvas.Problem(paths.ROOT, _("The tree is not valid JSON."))]
            ) from None
    else:
        data = raw
    if not isinstance(data, dict) or data.get("version", DOCUMENT_VERSION) != DOCUMENT_VERSION:
        raise DocumentError([canvas.Problem(
            paths.ROOT, _("The tree must be an object with version %(version)s and a root.")
            % {"version": DOCUMENT_VERSION}
        )])
    return data


def _ids(items, key: str) -> set[int]:
    """The ids the items give under ``key`` (``invocation``, ``reuse``); what is not an id is
    left for ``_item_problems`` to name."""
    return {item[key] for _p, item, *_r in items
            if isinstance(item.get(key), int) and not isinstance(item[key], bool)}


def is_inline(item: dict) -> bool:
    """A task node that carries its call (task and arguments) instead of naming an invocation."""
    return item.get("task") is not None


def _call_key(invocation: TaskInvocation) -> tuple:
    return (invocation.task, json.dumps(invocation.args, sort_keys=True),
            json.dumps(invocation.kwargs, sort_keys=True), bool(invocation.immutable))


def call_name(invocation: TaskInvocation) -> str:
    """What an invocation made from an inline call is named: its call, ``suma.s(2, 2)``."""
    text = " ".join(to_python(invocation.to_spec()).split())
    return text[:INVOCATION_NAME_MAX - 10]


def _inline_invocations(inline: list[tuple[str, dict, WorkflowNode]], can_add: bool
                        ) -> tuple[list[canvas.Problem], list[TaskInvocation]]:
    """Give each inline task row its invocation: a saved identical one, else a new unsaved
    one (one per distinct call). The call is checked as the invocation form checks it, with
    each problem at the node's path."""
    problems: list[canvas.Problem] = []
    calls: list[tuple[str, WorkflowNode, TaskInvocation]] = []
    for path, item, row in inline:
        call = TaskInvocation(
            task=item["task"], args=item.get("args") or [], kwargs=item.get("kwargs") or {},
            immutable=bool(item.get("immutable")), **PLAIN_OPTIONS,
        )
        messages: list[str] = []
        try:
            validation.validate_invocation(call)
        except ValidationError as exc:
            messages += exc.messages
        else:
            for found in validation.argument_type_messages(
                call.task, call.args, call.kwargs, call.immutable
            ).values():
                messages += found
        problems += [canvas.Problem(path, message) for message in messages]
        calls.append((path, row, call))
    if problems:
        return problems, []
    saved: dict[tuple, TaskInvocation] = {}
    for candidate in TaskInvocation.objects.filter(
        task__in={call.task for _p, _r, call in calls}, **PLAIN_OPTIONS
    ).order_by("-pk"):
        saved[_call_key(candidate)] = candidate  # the oldest identical one wins
    new: dict[tuple, TaskInvocation] = {}
    for path, row, call in calls:
        key = _call_key(call)
        if key in saved:
            row.invocation = saved[key]
            continue
        if not can_add:
            problems.append(canvas.Problem(path, _(
                "You may not add task invocations: choose a saved invocation for this node."
            )))
            continue
        if key not in new:
            call.name = call_name(call)
            new[key] = call
        row.invocation = new[key]
    return problems, list(new.values())


def _flatten(root) -> list[tuple[str, dict, str, int]]:
    """``(path, item, role, position)`` in pre-order; malformed items are kept for
    ``_item_problems`` to name, containers that are not lists raise at once."""
    if root is None:
        return []
    out: list[tuple[str, dict, str, int]] = []
    stack: list[tuple[str, object, str, int]] = [(paths.ROOT, root, NodeRole.STEP, 0)]
    while stack:
        path, item, role, position = stack.pop()
        if not isinstance(item, dict):
            raise DocumentError([canvas.Problem(path, _("A node must be a JSON object."))])
        if paths.depth(path) > PARSE_MAX_DEPTH:
            raise DocumentError([canvas.Problem(path, _("The tree is nested too deeply."))])
        out.append((path, item, role, position))
        kind = item.get("kind")
        todo: list[tuple[str, object, str, int]] = []
        if kind in (NodeKind.GROUP, NodeKind.CHAIN):
            kids = item.get("children") or []
            if not isinstance(kids, list):
                raise DocumentError([canvas.Problem(path, _("“children” must be a list."))])
            todo = [(paths.step(path, i), kid, NodeRole.STEP, i) for i, kid in enumerate(kids)]
        elif kind == NodeKind.CHORD:
            header = item.get("header") or []
            if not isinstance(header, list):
                raise DocumentError([canvas.Problem(path, _("“header” must be a list."))])
            todo = [
                (paths.header(path, i), kid, NodeRole.HEADER, i) for i, kid in enumerate(header)
            ]
            if item.get("body") is not None:
                todo.append((paths.body(path), item["body"], NodeRole.BODY, 0))
        stack.extend(reversed(todo))
    return out


def _item_problems(path, item, invocations, reusable, workflow_id) -> list[canvas.Problem]:
    kind = item.get("kind")
    if kind not in KIND_KEYS:
        return [canvas.Problem(path, _("Choose what this node is: task, group, chain, chord or "
                                       "reused workflow."))]
    out = []
    unknown = sorted(str(k) for k in set(item) - COMMON_KEYS - KIND_KEYS[kind])
    if unknown:
        out.append(_("unknown field(s) for a %(kind)s node: %(fields)s")
                   % {"kind": kind, "fields": ", ".join(unknown)})
    label = item.get("label") or ""
    if not isinstance(label, str) or len(label) > LABEL_MAX:
        out.append(_("The label must be text of at most %(max)s characters.")
                   % {"max": LABEL_MAX})
    if kind == NodeKind.TASK and is_inline(item):
        out += _inline_problems(item)
    elif kind == NodeKind.TASK:
        value = item.get("invocation")
        if value in (None, ""):
            out.append(_("Choose the task invocation this node runs."))
        elif value not in invocations:
            out.append(_("There is no task invocation with id %(id)s.") % {"id": value})
    elif kind == NodeKind.WORKFLOW:
        value = item.get("reuse")
        if value in (None, ""):
            out.append(_("Choose the workflow this node reuses."))
        elif value not in reusable:
            out.append(_("There is no workflow with id %(id)s.") % {"id": value})
        elif value == workflow_id:
            # The composer does not offer the workflow itself; a crafted POST must not get it in.
            out.append(_("A workflow cannot reuse itself."))
    return [canvas.Problem(path, message) for message in out]


def _inline_problems(item: dict) -> list[str]:
    """What makes an inline call unreadable (its arguments are checked once it is read)."""
    out = []
    if item.get("invocation") not in (None, ""):
        out.append(_("A task node runs either a saved invocation or a task with its arguments, "
                     "not both."))
    if not isinstance(item["task"], str) or not item["task"].strip():
        out.append(_("Choose the task this node runs."))
    if not isinstance(item.get("args", []), list):
        out.append(_("Enter a JSON list, e.g. [2, 2]."))
    if not isinstance(item.get("kwargs", {}), dict):
        out.append(_("Enter a JSON object, e.g. {\"b\": 2}."))
    if not isinstance(item.get("immutable", False), bool):
        out.append(_("“immutable” must be true or false."))
    return out


def _reused_nodes(workflow_id: int, reuse_ids: set[int]) -> list[WorkflowNode]:
    """The nodes of every reused workflow, at any depth, except the edited workflow's own
    stored rows (the document replaces them; a reuse cycle back to it is still reported)."""
    found: dict[int, WorkflowNode] = {}
    for reuse_id in sorted(reuse_ids):
        for node in (
            WorkflowNode.objects.filter(
                workflow_id__in=RawSQL(_reachable_workflows_sql(), [reuse_id])
            )
            .exclude(workflow_id=workflow_id)
            .select_related("invocation", "reuse")
        ):
            found[node.pk] = node
    return list(found.values())


# -- saving ------------------------------------------------------------------------------------


@transaction.atomic
def save(workflow: Workflow, composition: Composition) -> None:
    """Make the workflow's stored rows exactly ``composition.rows``, all or nothing.

    Rows are deleted without Django's collector and inserted again with the same primary keys
    (foreign keys are checked at commit: Django creates them deferrable), so kept nodes keep
    their ids and runs stay linked to them; only the links to removed nodes are cleared.
    One delete, one insert per tree level (``WorkflowNode.objects.insert_tree``).
    """
    if composition.new_invocations:
        _name_uniquely(composition.new_invocations)
        TaskInvocation.objects.bulk_create(composition.new_invocations)
    kept = {row.pk for row in composition.rows if row.pk > 0}
    stored = WorkflowNode.objects.filter(workflow=workflow)
    removed = set(stored.values_list("pk", flat=True)) - kept
    if removed:
        TaskRun.objects.filter(node_id__in=removed).update(node=None)
    stored._raw_delete(stored.db)
    made = {
        row.pk: row.clone(
            pk=row.pk if row.pk > 0 else None, workflow=workflow, key=row.key,
            # An invocation made just above has its id only now (the row holds the object).
            invocation_id=row.invocation.pk if row.invocation is not None else None,
        )
        for row in composition.rows
    }
    for row in composition.rows:
        if row.parent_id:  # every parent is one of the rows (kept or new): all are rewritten
            made[row.pk].parent = made[row.parent_id]
    WorkflowNode.objects.insert_tree(made.values())


def _name_uniquely(new: list[TaskInvocation]) -> None:
    """``suma.s(2, 2)``, or ``suma.s(2, 2) (2)`` when that name is taken by a saved invocation
    that is not identical (it has options, say). Two queries at most."""
    bases = {invocation.name for invocation in new}
    taken = set(TaskInvocation.objects.filter(name__in=bases).values_list("name", flat=True))
    clashes = bases & taken
    if clashes:
        numbered = TaskInvocation.objects.none()
        for base in clashes:
            numbered |= TaskInvocation.objects.filter(name__startswith=f"{base} (")
        taken |= set(numbered.values_list("name", flat=True))
    for invocation in new:
        base, number = invocation.name, 2
        while invocation.name in taken:
            invocation.name = f"{base} ({number})"
            number += 1
        taken.add(invocation.name)
