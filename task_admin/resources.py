"""Invocations and workflows as files, through django-import-export (CSV, JSON, YAML, XLSX...).

An invocation is a row, keyed by its name. A workflow is a row keyed by its name whose ``tree``
column holds its nodes as nested JSON, naming invocations and reused workflows by name::

    {"chain": [{"invocation": "two plus two"},
               {"group": [{"invocation": "plus four"}, {"workflow": "Tutorial: group"}]},
               {"chord": [{"invocation": "a"}, {"invocation": "b"}],
                "body": {"invocation": "total"}}],
     "label": "optional, on any node"}

Importing a workflow replaces its tree. A row is refused, with the reason in the import report,
for a malformed tree, an unknown name, or any problem the workflow check finds (arity, reuse
cycles, depth) and nothing of it is kept; the admin rolls the whole import back when any
row is refused. Import the
invocations first, and list a reused workflow above the workflows that reuse it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from import_export import fields, resources, widgets
from import_export.results import Error, RowResult

from task_admin.canvas import paths
from task_admin.compile import workflows_reusing
from task_admin.conf import get_config
from task_admin.models import NodeKind, NodeRole, TaskInvocation, Workflow, WorkflowNode
from task_admin.tree import Tree
from task_admin.validation import brought_problems, workflow_problems

NODE_KEYS = ("invocation", "workflow", NodeKind.GROUP, NodeKind.CHAIN, NodeKind.CHORD)


class StrictJSONWidget(widgets.JSONWidget):
    """JSON as typed; import-export's widget would also try the text with ' turned into "."""

    def clean(self, value, row=None, **kwargs):
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            return value  # a JSON or YAML file gives the structure itself
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise ValueError(_("not valid JSON: %(error)s") % {"error": exc}) from None


# A spreadsheet reads a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: Any) -> Any:
    """The cell with an apostrophe in front when a spreadsheet would take it for a formula.

    Values that already start with apostrophes before such a character get one more, so
    ``unescape_formula`` gives back exactly what was exported.
    """
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unescape_formula(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("'") and value.lstrip("'").startswith(
        FORMULA_STARTS
    ):
        return value[1:]
    return value


class FileProblem(Exception):
    """The file as a whole cannot be imported; the message says why, for staff."""


class MessageOnlyError(Error):
    """A file-level error shown by its message: a traceback helps no one importing a file."""

    @property
    def traceback(self) -> str:
        return ""


class FileResource(resources.ModelResource):
    """What both resources share: formula-safe cells, clear file-level errors.

    django-import-export's own ``IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT`` only drops a leading
    ``=`` (losing data, leaving ``+``, ``-`` and ``@``) and is project-wide, so these resources
    escape every cell themselves, reversibly: the import removes the apostrophe again.
    """

    def get_error_result_class(self):
        return MessageOnlyError

    def after_export(self, queryset, dataset, **kwargs):
        super().after_export(queryset, dataset, **kwargs)
        for _i in range(len(dataset)):
            row = dataset.lpop()
            dataset.append([escape_formula(cell) for cell in row])

    def before_import(self, dataset, **kwargs):
        super().before_import(dataset, **kwargs)
        headers = [str(h).strip() for h in (dataset.headers or [])]
        missing = [name for name in self._meta.import_id_fields if name not in headers]
        if missing:
            raise FileProblem(
                _("The file has no “%(column)s” column, so its rows cannot be matched. It has: "
                  "%(found)s. The columns are: %(expected)s.")
                % {
                    "column": missing[0],
                    "found": ", ".join(h for h in headers if h) or _("no header row"),
                    "expected": ", ".join(self.get_diff_headers()),
                }
            )

    def before_import_row(self, row, **kwargs):
        super().before_import_row(row, **kwargs)
        for key, value in row.items():
            row[key] = unescape_formula(value)


class TaskInvocationResource(FileResource):
    args = fields.Field(attribute="args", column_name="args", widget=StrictJSONWidget())
    kwargs = fields.Field(attribute="kwargs", column_name="kwargs", widget=StrictJSONWidget())

    class Meta:
        model = TaskInvocation
        import_id_fields = ("name",)
        exclude = ("id", "created_at", "updated_at")
        # full_clean() on every row: the task must be allowed and the arguments must bind.
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def import_instance(self, instance, row, **kwargs):
        super().import_instance(instance, row, **kwargs)
        # An empty cell means "none", as in the admin form.
        if instance.args is None:
            instance.args = []
        if instance.kwargs is None:
            instance.kwargs = {}


class _RowRefused(Exception):
    pass


class WorkflowResource(FileResource):
    tree = fields.Field(column_name="tree", widget=StrictJSONWidget())

    class Meta:
        model = Workflow
        import_id_fields = ("name",)
        fields = ("name", "description", "enabled", "tree")
        clean_model_instances = True

    def import_row(self, row, instance_loader, **kwargs):
        # A row is only refused once its tree is written and checked: undo the row then, even
        # when the caller does not roll the whole import back.
        result = None
        try:
            with transaction.atomic():
                result = super().import_row(row, instance_loader, **kwargs)
                if result.import_type in (RowResult.IMPORT_TYPE_INVALID,
                                          RowResult.IMPORT_TYPE_ERROR):
                    raise _RowRefused
        except _RowRefused:
            pass
        return result

    # -- export: every tree from one query ----------------------------------------------------

    def before_export(self, queryset=None, **kwargs):
        if queryset is None:
            queryset = self.get_queryset()
        self._tree = Tree(
            WorkflowNode.objects.filter(workflow__in=queryset.order_by().values("pk"))
            .select_related("invocation", "reuse")
        )
        self._roots = self._tree.roots

    def iter_queryset(self, queryset):
        """Reused workflows before the workflows reusing them, so the file imports in order."""
        workflows = list(super().iter_queryset(queryset))
        by_pk = {wf.pk: wf for wf in workflows}
        reuses: dict[int, list[int]] = defaultdict(list)
        for node in self._tree.nodes.values():
            if node.kind == NodeKind.WORKFLOW and node.reuse_id in by_pk:
                reuses[node.workflow_id].append(node.reuse_id)
        done: set[int] = set()

        def visit(pk: int, seen: frozenset = frozenset()):
            if pk in done or pk in seen:  # a cycle is the import check's to report
                return
            for reused in reuses[pk]:
                yield from visit(reused, seen | {pk})
            done.add(pk)
            yield by_pk[pk]

        for workflow in workflows:
            yield from visit(workflow.pk)

    def dehydrate_tree(self, workflow: Workflow) -> str:
        if not hasattr(self, "_roots"):
            self.before_export(Workflow.objects.filter(pk=workflow.pk))
        root = self._roots.get(workflow.pk)
        return "" if root is None else json.dumps(self._node_data(root), ensure_ascii=False)

    def _node_data(self, node: WorkflowNode) -> dict[str, Any]:
        children = self._tree.children(node)
        if node.kind == NodeKind.TASK:
            data: dict[str, Any] = {"invocation": node.invocation.name}
        elif node.kind == NodeKind.WORKFLOW:
            data = {"workflow": node.reuse.name}
        elif node.kind == NodeKind.CHORD:
            data = {
                "chord": [self._node_data(c) for c in children if c.role == NodeRole.HEADER],
                "body": next(
                    (self._node_data(c) for c in children if c.role == NodeRole.BODY), None
                ),
            }
        else:
            data = {node.kind: [self._node_data(c) for c in children]}
        if node.label:
            data["label"] = node.label
        return data

    # -- import: parse before saving, replace the tree after ----------------------------------

    def import_instance(self, instance, row, **kwargs):
        super().import_instance(instance, row, **kwargs)
        try:
            raw = self.fields["tree"].clean(row, **kwargs) if "tree" in row else None
            instance._imported_tree = None if raw is None else parse_tree(raw)
        except ValueError as exc:
            raise ValidationError({"tree": str(exc)}) from None
        except ValidationError as exc:
            raise ValidationError({"tree": exc.messages}) from None

    def after_save_instance(self, instance, row, **kwargs):
        parsed = getattr(instance, "_imported_tree", None)
        if parsed is None:
            return
        # Workflows reusing this one must not break either: only problems this row brings.
        users = list(workflows_reusing(instance.pk).exclude(pk=instance.pk).order_by("name"))
        before = {user.pk: workflow_problems(user) for user in users}
        try:
            save_tree(instance, parsed)
        except ValidationError as exc:
            raise ValidationError({"tree": exc.messages}) from None
        problems = [str(p) for p in workflow_problems(instance)]
        for user in users:
            problems += [
                _("this breaks workflow “%(workflow)s” at %(path)s: %(message)s")
                % {"workflow": user.name, "path": p.path, "message": p.message}
                for p in brought_problems(before[user.pk], workflow_problems(user))
            ]
        if problems:
            raise ValidationError({"tree": problems})


# -- the tree format ---------------------------------------------------------------------------


@dataclass
class ParsedNode:
    kind: str
    name: str = ""  # of the invocation or the reused workflow
    label: str = ""
    children: list[ParsedNode] = field(default_factory=list)
    role: str = NodeRole.STEP


def parse_tree(data: Any) -> ParsedNode:
    """The tree of an import row, checked for shape; errors name the node's path."""
    limits = get_config()
    count = 0

    def parse(item: Any, path: str, depth: int, role=NodeRole.STEP) -> ParsedNode:
        nonlocal count
        count += 1
        if count > limits["MAX_NODES"]:
            raise ValidationError(_("more than %(max)d nodes") % {"max": limits["MAX_NODES"]})
        if depth > limits["MAX_DEPTH"]:
            raise ValidationError(
                _("%(path)s: nested deeper than %(max)d levels")
                % {"path": path, "max": limits["MAX_DEPTH"]}
            )
        if not isinstance(item, dict):
            raise ValidationError(_("%(path)s: a node must be a JSON object") % {"path": path})
        kinds = [key for key in NODE_KEYS if key in item]
        allowed = {*kinds, "label", *(("body",) if kinds == ["chord"] else ())}
        if len(kinds) != 1 or set(item) - allowed:
            raise ValidationError(
                _("%(path)s: a node has exactly one of %(keys)s (and an optional label; a "
                  "chord also its body), not %(found)s")
                % {"path": path, "keys": ", ".join(NODE_KEYS), "found": ", ".join(item) or "{}"}
            )
        key = kinds[0]
        label = item.get("label", "")
        if not isinstance(label, str):
            raise ValidationError(_("%(path)s: the label must be text") % {"path": path})
        value = item[key]
        if key in ("invocation", "workflow"):
            if not isinstance(value, str) or not value:
                raise ValidationError(
                    _("%(path)s: %(key)s must name one") % {"path": path, "key": key}
                )
            kind = NodeKind.TASK if key == "invocation" else NodeKind.WORKFLOW
            return ParsedNode(kind, name=value, label=label, role=role)
        if not isinstance(value, list):
            raise ValidationError(
                _("%(path)s: %(key)s must be a list of nodes") % {"path": path, "key": key}
            )
        if key == NodeKind.CHORD:
            children = [
                parse(child, paths.header(path, i), depth + 1, NodeRole.HEADER)
                for i, child in enumerate(value)
            ]
            if item.get("body") is not None:
                children.append(parse(item["body"], paths.body(path), depth + 1, NodeRole.BODY))
        else:
            children = [
                parse(child, paths.step(path, i), depth + 1) for i, child in enumerate(value)
            ]
        return ParsedNode(key, label=label, children=children, role=role)

    return parse(data, paths.ROOT, 1)


def save_tree(workflow: Workflow, root: ParsedNode) -> None:
    """Replace the workflow's nodes with ``root``; unknown names are refused."""
    wanted = defaultdict(set)
    stack = [root]
    while stack:
        node = stack.pop()
        if node.kind in (NodeKind.TASK, NodeKind.WORKFLOW):
            wanted[node.kind].add(node.name)
        stack.extend(node.children)
    invocations = TaskInvocation.objects.in_bulk(wanted[NodeKind.TASK], field_name="name")
    reused = Workflow.objects.in_bulk(wanted[NodeKind.WORKFLOW], field_name="name")
    missing = [
        _("no invocation named “%(name)s”") % {"name": name}
        for name in sorted(wanted[NodeKind.TASK] - set(invocations))
    ] + [
        _("no workflow named “%(name)s” (import it first)") % {"name": name}
        for name in sorted(wanted[NodeKind.WORKFLOW] - set(reused))
    ]
    if missing:
        raise ValidationError(missing)
    workflow.nodes.all().delete()
    made: list[WorkflowNode] = []

    def add(node: ParsedNode, parent: WorkflowNode | None, position: int) -> None:
        row = WorkflowNode(
            workflow=workflow,
            parent=parent,
            kind=node.kind,
            role=node.role,
            position=position,
            label=node.label,
            invocation=invocations.get(node.name) if node.kind == NodeKind.TASK else None,
            reuse=reused.get(node.name) if node.kind == NodeKind.WORKFLOW else None,
        )
        made.append(row)
        positions: dict[str, int] = defaultdict(int)
        for child in node.children:
            add(child, row, positions[child.role])
            positions[child.role] += 1

    add(root, None, 0)
    WorkflowNode.objects.insert_tree(made)
