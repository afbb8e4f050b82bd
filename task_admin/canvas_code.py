"""Workflows as code: read pasted canvas code against the allowed tasks, save it, write it back.

``canvas.code`` does the reading and writing (pure); this module brings in what only the site
knows: which tasks are allowed (short names resolve among them), the configured limits, the
invocations already stored (an identical one is reused rather than copied), and one
transaction for the workflow, its new invocations and its tree (``resources.save_tree``, the
import's path). The admin's "from code" pages and ``manage.py task_admin from-code`` call it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext as _

from task_admin import canvas, registry
from task_admin.canvas.code import (
    CodeError,
    Parsed,
    UnknownTask,
    make_resolver,
    parse_located,
    render,
    short_expression,
)
from task_admin.canvas.spec import node_to_dict
from task_admin.canvas.validate import warnings as canvas_warnings
from task_admin.compile import InvalidWorkflow, load_nodes, workflow_to_spec, workflows_reusing
from task_admin.i18n import translated
from task_admin.models import NodeKind, NodeRole, TaskInvocation, Workflow, WorkflowRun
from task_admin.resources import ParsedNode, save_tree
from task_admin.tree import Tree
from task_admin.validation import brought_problems, check_spec, workflow_problems

NAME_LENGTH = 190  # of an invocation created from code; leaves room for " (12)"


@dataclass
class Reading:
    """What pasted code says: the tree, or why it is refused; warnings never refuse."""

    text: str
    parsed: Parsed | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[canvas.Problem] = field(default_factory=list)

    @property
    def spec(self) -> canvas.Node | None:
        return self.parsed.spec if self.parsed is not None else None

    @property
    def ok(self) -> bool:
        return self.parsed is not None and not self.errors


def _resolver(signatures: Mapping[str, inspect.Signature | None]):
    """Short or dotted names among the allowed tasks; a dotted name that is refused says why
    (not registered, denied, not allowed) and which setting decides."""
    resolve = make_resolver(signatures)

    def explained(name: str) -> str:
        try:
            return resolve(name)
        except UnknownTask:
            if "." not in name:
                raise
            try:
                reason = registry.refusal(name)
            except registry.NoCeleryApp:
                raise UnknownTask(_("unknown or disallowed task %(name)s") % {
                    "name": repr(name)}) from None
            raise UnknownTask(reason) from None

    return explained


def read(text: str, *, tasks: Mapping[str, inspect.Signature | None] | None = None) -> Reading:
    """Parse ``text`` against the allowed tasks and check it as a workflow would be checked."""
    signatures = dict(registry.signatures() if tasks is None else tasks)
    reading = Reading(text)
    try:
        reading.parsed = parse_located(text, _resolver(signatures))
    except CodeError as exc:
        reading.errors.append(translated(exc.text))
        return reading
    spec = reading.parsed.spec
    reading.notes = [translated(note) for note in reading.parsed.notes]
    reading.problems = check_spec(spec, tasks=signatures)
    reading.errors += [translated(reading.parsed.locate(p)) for p in reading.problems]
    for leaf_path, leaf in canvas.leaves(spec):
        if isinstance(leaf.options.expires, str):
            reading.errors.append(translated(reading.parsed.locate(canvas.Problem(
                leaf_path,
                _("an invocation keeps expires in seconds: write expires=<seconds>"),
            ))))
    found = canvas_warnings(spec, tasks=signatures)
    reading.problems += found
    reading.warnings = [translated(reading.parsed.locate(p)) for p in found]
    return reading


# -- saving -----------------------------------------------------------------------------------


def _stored_form(task: canvas.Task) -> canvas.Task:
    """The leaf as an invocation gives it back: no label or ref, default publishing retry as
    unset, seconds as floats, an eta as the aware datetime the database keeps."""
    options = task.options
    if options.retry is True:
        options = replace(options, retry=None)
    # The model keeps seconds as floats: 3 comes back as 3.0.
    seconds = {
        name: float(value) for name in ("countdown", "expires", "soft_time_limit", "time_limit")
        if isinstance(value := getattr(options, name), int | float)
    }
    if options.retry_policy:
        seconds["retry_policy"] = {
            key: int(value) if key == "max_retries" else float(value)
            for key, value in options.retry_policy.items()
        }
    options = replace(options, **seconds)
    if options.eta:
        eta = datetime.fromisoformat(options.eta)
        if timezone.is_naive(eta):
            eta = timezone.make_aware(eta)
        options = replace(options, eta=eta.isoformat())
    return replace(task, options=options, label="", ref=None)


def _new_invocation(task: canvas.Task, taken: set[str]) -> TaskInvocation:
    options = task.options
    policy = options.retry_policy or {}
    base = Truncator(short_expression(task)).chars(NAME_LENGTH)
    name, number = base, 2
    while name in taken:
        name, number = f"{base} ({number})", number + 1
    taken.add(name)
    return TaskInvocation(
        name=name,
        description=_("Created from code."),
        task=task.task,
        args=list(task.args),
        kwargs=dict(task.kwargs),
        immutable=task.immutable,
        countdown=options.countdown,
        eta=datetime.fromisoformat(options.eta) if options.eta else None,
        expires=options.expires,
        queue=options.queue or "",
        priority=options.priority,
        retry=options.retry is not False,
        retry_max_retries=policy.get("max_retries"),
        retry_interval_start=policy.get("interval_start"),
        retry_interval_step=policy.get("interval_step"),
        retry_interval_max=policy.get("interval_max"),
        soft_time_limit=options.soft_time_limit,
        time_limit=options.time_limit,
    )


def _key(task: canvas.Task) -> str:
    """Identity of a leaf as an invocation stores it (stable JSON: tasks are not hashable)."""
    return json.dumps(node_to_dict(_stored_form(task)), sort_keys=True)


def _invocations_for(spec: canvas.Node) -> tuple[dict[str, str], list[TaskInvocation]]:
    """The invocation name for each distinct leaf (by ``_key``): an identical stored one (two
    queries whatever the tree), else a new, unsaved one."""
    # Named and created from the leaf as written (countdown=3, not 3.0), matched stored.
    leaves = {_key(leaf): replace(leaf, label="", ref=None) for _, leaf in canvas.leaves(spec)}
    names = {leaf.task for leaf in leaves.values()}
    existing: dict[str, str] = {}
    for invocation in TaskInvocation.objects.filter(task__in=names).order_by("name"):
        existing.setdefault(_key(invocation.to_spec()), invocation.name)
    missing = {key: leaf for key, leaf in leaves.items() if key not in existing}
    created = []
    if missing:
        taken = set(TaskInvocation.objects.filter(
            name__in=_candidate_names(missing.values())).values_list("name", flat=True))
        for key, leaf in sorted(missing.items(), key=lambda item: short_expression(item[1])):
            invocation = _new_invocation(leaf, taken)
            created.append(invocation)
            existing[key] = invocation.name
    return existing, created


def _candidate_names(leaves) -> list[str]:
    # The names a new invocation could take, so one query finds which are taken.
    out = []
    for leaf in leaves:
        base = Truncator(short_expression(leaf)).chars(NAME_LENGTH)
        out += [base, *(f"{base} ({n})" for n in range(2, 12))]
    return out


def _parsed_tree(spec: canvas.Node, names: dict[str, str]) -> ParsedNode:
    def node(item: canvas.Node, role: str = NodeRole.STEP) -> ParsedNode:
        if isinstance(item, canvas.Task):
            return ParsedNode(NodeKind.TASK, name=names[_key(item)], role=role)
        if isinstance(item, canvas.Chord):
            children = [node(c, NodeRole.HEADER) for c in item.header]
            children.append(node(item.body, NodeRole.BODY))
            return ParsedNode(NodeKind.CHORD, children=children, role=role)
        kind = NodeKind.GROUP if isinstance(item, canvas.Group) else NodeKind.CHAIN
        return ParsedNode(kind, children=[node(c) for c in item.tasks], role=role)

    return node(spec)


class Refused(ValueError):
    """The code cannot be saved; ``messages`` say why (with line and column where known)."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


def _write(workflow: Workflow, reading: Reading) -> list[TaskInvocation]:
    names, created = _invocations_for(reading.spec)
    TaskInvocation.objects.bulk_create(created)
    save_tree(workflow, _parsed_tree(reading.spec, names))
    problems = workflow_problems(workflow)
    if problems:  # the checks already passed on the spec; the stored tree must agree
        raise Refused([str(p) for p in problems])
    return created


def create_workflow(
    reading: Reading, *, name: str, description: str = "", enabled: bool = True
) -> tuple[Workflow, list[TaskInvocation]]:
    """A new workflow from code, with the invocations it needs, in one transaction."""
    if not reading.ok:
        raise Refused(reading.errors)
    if Workflow.objects.filter(name=name).exists():
        raise Refused([_("A workflow named “%(name)s” already exists.") % {"name": name}])
    with transaction.atomic():
        workflow = Workflow(name=name, description=description, enabled=enabled)
        try:
            workflow.full_clean()
        except ValidationError as exc:
            raise Refused(exc.messages) from None
        workflow.save()
        created = _write(workflow, reading)
    return workflow, created


def replace_tree(workflow: Workflow, reading: Reading) -> list[TaskInvocation]:
    """Replace the workflow's tree with the code's, refusing what breaks a reusing workflow."""
    if not reading.ok:
        raise Refused(reading.errors)
    with transaction.atomic():
        Workflow.objects.select_for_update().filter(pk=workflow.pk).first()
        users = list(workflows_reusing(workflow.pk).exclude(pk=workflow.pk).order_by("name"))
        before = {user.pk: workflow_problems(user) for user in users}
        created = _write(workflow, reading)
        broken = [
            _("this breaks workflow “%(workflow)s” at %(path)s: %(message)s")
            % {"workflow": user.name, "path": p.path, "message": p.message}
            for user in users
            for p in brought_problems(before[user.pk], workflow_problems(user))
        ]
        if broken:
            raise Refused(broken)
        workflow.save(update_fields=["updated_at"])
    return created


# -- writing ----------------------------------------------------------------------------------


def workflow_code(workflow: Workflow) -> str | None:
    """The workflow as pasteable code, or None while its tree cannot be built (one query, and
    one more when it reuses workflows)."""
    nodes = load_nodes(workflow.pk)
    try:
        spec = workflow_to_spec(workflow, nodes)
    except InvalidWorkflow:
        return None
    own = Tree(node for node in nodes if node.workflow_id == workflow.pk)
    paths = own.paths(workflow.pk)
    notes = [
        _("%(path)s inlines the workflow “%(name)s”: pasted, it becomes a copy, not a reuse.")
        % {"path": paths[node.pk], "name": node.reuse.name}
        for node in nodes
        if node.workflow_id == workflow.pk and node.kind == NodeKind.WORKFLOW and node.pk in paths
    ]
    return render(spec, notes=[_("Workflow “%(name)s”") % {"name": workflow.name}, *notes])


def run_code(run: WorkflowRun) -> str | None:
    """The canvas a run sent, as pasteable code; None when its snapshot cannot be read."""
    try:
        spec = canvas.from_dict(run.spec)
    except canvas.SpecError:
        return None
    note = _("Run #%(run)s of “%(name)s”") % {"run": run.pk, "name": run.workflow_name}
    notes = [note]
    if any(leaf.task == "task_admin.replay" for _path, leaf in canvas.leaves(spec)):
        notes.append(_("task_admin.replay gives back a result kept from the earlier run."))
    return render(spec, notes=notes)
