"""Admin forms: the task picker, JSON fields that fail at the field, the workflow node editor,
the schedule form.

Nothing here talks to Celery except through ``registry`` (which tasks may be picked) and
``canvas.build.to_python`` (readable labels); tree-wide checks stay in ``validation``.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Iterable

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet, construct_instance
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    SolarSchedule,
)

from task_admin import canvas, registry, scheduling
from task_admin.canvas import paths
from task_admin.canvas.build import to_python
from task_admin.canvas.spec import json_value_problem
from task_admin.compile import InvalidWorkflow, workflow_to_spec
from task_admin.i18n import translated
from task_admin.models import (
    NodeKind,
    NodeRole,
    TaskInvocation,
    Workflow,
    WorkflowNode,
    WorkflowSchedule,
)
from task_admin.services import apply_overrides
from task_admin.validation import check_spec

CONTAINERS = frozenset({NodeKind.GROUP, NodeKind.CHAIN, NodeKind.CHORD})
# Reordering goes through parking positions so that swaps never meet the unique constraint.
MAX_POSITION = 1_000_000
PARK_POSITION = 2_000_000_000


# -- JSON fields -------------------------------------------------------------------------------


def _refuse_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


class StrictJSONDecoder(json.JSONDecoder):
    """Python's json accepts NaN and Infinity; Celery's JSON serializer would not send them."""

    def __init__(self, *args, **kwargs):
        kwargs["parse_constant"] = _refuse_constant
        super().__init__(*args, **kwargs)


class JSONValueField(forms.JSONField):
    """JSON text that must be a list or an object; empty means empty, errors stay at the field."""

    expected_type: type = object
    default_error_messages = {
        "invalid": _("Enter valid JSON."),
        "type": _("Enter valid JSON."),
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("initial", self.expected_type)  # "[]" or "{}" on an empty form
        kwargs.setdefault("decoder", StrictJSONDecoder)
        kwargs.setdefault(
            "widget", forms.Textarea(attrs={"rows": 2, "cols": 60, "class": "ta-json"})
        )
        super().__init__(**kwargs)

    def to_python(self, value):
        if not self.disabled and value in self.empty_values:
            return self.expected_type()
        try:
            return super().to_python(value)
        except (RecursionError, ValueError):
            # Django catches only JSONDecodeError: too deep a nesting, or an integer of more
            # than 4300 digits, would otherwise be a server error.
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except (RecursionError, ValueError):
            return forms.fields.InvalidJSONInput(data)

    def validate(self, value):
        super().validate(value)
        problem = json_value_problem(value, str(self.label or "value"))
        if problem:
            raise ValidationError(translated(problem), code="invalid")
        if not isinstance(value, self.expected_type):
            raise ValidationError(self.error_messages["type"], code="type")


class JSONListField(JSONValueField):
    expected_type = list
    default_error_messages = {"type": _("Enter a JSON list, e.g. [2, 2].")}


class JSONObjectField(JSONValueField):
    expected_type = dict
    default_error_messages = {"type": _('Enter a JSON object, e.g. {"b": 2}.')}


# -- the task picker ---------------------------------------------------------------------------


def task_label(info: registry.TaskInfo) -> str:
    parts = [info.name, info.signature_text]
    if info.doc:
        parts.append(Truncator(info.doc).chars(90))
    return " — ".join(parts)


def task_choices(current: str | None = None) -> list[tuple[str, str]]:
    """One option per task staff may invoke, plus ``current`` if it is no longer allowed."""
    try:
        tasks = registry.allowed_tasks()
    except registry.NoCeleryApp:
        tasks = {}
    choices = [("", "---------")]
    choices += [(name, task_label(info)) for name, info in tasks.items()]
    if current and current not in tasks:
        # Still rendered (and selected), so the form shows the stored value; saving it fails
        # with the model's error at the task field.
        label = gettext("%(task)s — not a task that may be run from the admin") % {
            "task": current
        }
        choices.append((current, label))
    return choices


class TaskInvocationForm(forms.ModelForm):
    task = forms.ChoiceField(
        label=_("Task"),
        widget=forms.Select(attrs={"class": "ta-task-picker"}),
        help_text=_("The registered Celery tasks staff may run, with their arguments."),
    )
    args = JSONListField(
        label=_("Positional arguments"),
        help_text=_("A JSON list, e.g. [2, 2]. Leave empty for none."),
    )
    kwargs = JSONObjectField(
        label=_("Keyword arguments"),
        help_text=_('A JSON object, e.g. {"b": 2}. Leave empty for none.'),
    )

    class Meta:
        model = TaskInvocation
        fields = [
            "name", "description", "task", "args", "kwargs", "immutable",
            "countdown", "eta", "expires", "queue", "priority",
            "retry", "retry_max_retries", "retry_interval_start", "retry_interval_step",
            "retry_interval_max", "soft_time_limit", "time_limit",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.data.get(self.add_prefix("task")) if self.is_bound else None
        self.fields["task"].choices = task_choices(current or self.instance.task)

    def _post_clean(self):
        if any(name in self._errors for name in ("task", "args", "kwargs")):
            # The signature check needs all three: report the field errors on their own rather
            # than a second error about arguments the user did not give.
            exclude = self._get_validation_exclusions()
            try:
                self.instance = construct_instance(self, self.instance, self._meta.fields)
                self.instance.clean_fields(exclude=exclude)
            except ValidationError as exc:
                self._update_errors(exc)
            return
        super()._post_clean()


# -- the workflow node editor ------------------------------------------------------------------


def node_title(node: WorkflowNode) -> str:
    """What a node is called in the editor: its label, else what it runs, else its kind."""
    if node.label:
        return node.label
    if node.kind == NodeKind.TASK and node.invocation_id:
        return node.invocation.name
    if node.kind == NodeKind.WORKFLOW and node.reuse_id:
        return node.reuse.name
    return str(node.get_kind_display())


def _order_key(node: WorkflowNode):
    return (node.role, node.position, node.pk)


class NodeTree:
    """A workflow's own nodes, arranged and named by path exactly as ``compile`` does."""

    def __init__(self, nodes: Iterable[WorkflowNode]):
        self.nodes: dict[int, WorkflowNode] = {node.pk: node for node in nodes}
        self.children: dict[int, list[WorkflowNode]] = defaultdict(list)
        roots = []
        for node in sorted(self.nodes.values(), key=_order_key):
            if node.parent_id is None or node.parent_id not in self.nodes:
                roots.append(node)
            else:
                self.children[node.parent_id].append(node)
        self.paths: dict[int, str] = {}
        self.rows: list[tuple[WorkflowNode, int]] = []  # pre-order, with depth
        stack = [(root, paths.ROOT, 0) for root in reversed(roots)]
        while stack:
            node, path, depth = stack.pop()
            if node.pk in self.paths:
                continue
            self.paths[node.pk] = path
            self.rows.append((node, depth))
            stack.extend(reversed([
                (kid, kid_path, depth + 1) for kid, kid_path in self._child_paths(node, path)
            ]))
        # Nodes in a parent cycle are unreachable; still list them so they can be fixed.
        for node in sorted(self.nodes.values(), key=_order_key):
            if node.pk not in self.paths:
                self.paths[node.pk] = ""
                self.rows.append((node, 0))

    def _child_paths(self, node: WorkflowNode, path: str) -> list[tuple[WorkflowNode, str]]:
        kids = self.children.get(node.pk, [])
        if not path or node.kind not in CONTAINERS:
            return [(kid, "") for kid in kids]  # not placed: compile reports it
        if node.kind != NodeKind.CHORD:
            return [(kid, paths.step(path, i)) for i, kid in enumerate(kids)]
        header = [kid for kid in kids if kid.role == NodeRole.HEADER]
        bodies = [kid for kid in kids if kid.role == NodeRole.BODY]
        placed = [(kid, paths.header(path, i)) for i, kid in enumerate(header)]
        placed += [(kid, paths.body(path) if i == 0 else "") for i, kid in enumerate(bodies)]
        others = [(kid, "") for kid in kids if kid.role == NodeRole.STEP]
        return placed + others

    @property
    def root(self) -> WorkflowNode | None:
        return self.rows[0][0] if self.rows and self.paths.get(self.rows[0][0].pk) else None

    @property
    def ordered(self) -> list[WorkflowNode]:
        return [node for node, _depth in self.rows]

    def path(self, pk: int | None) -> str:
        return self.paths.get(pk, "") if pk is not None else ""

    def describe(self, node: WorkflowNode) -> str:
        """``root.1 (group)`` or ``root.1 (group: Adds)``: how a parent is offered."""
        path = self.path(node.pk) or gettext("not placed")
        kind = node.get_kind_display()
        return f"{path} ({kind}: {node.label})" if node.label else f"{path} ({kind})"

    def parent_candidates(self) -> list[WorkflowNode]:
        # Containers, plus any node that has children now so a stored value always renders.
        return [
            node for node in self.ordered if node.kind in CONTAINERS or self.children.get(node.pk)
        ]

    def descendants(self, pks: Iterable[int]) -> set[int]:
        out: set[int] = set()
        todo = list(pks)
        while todo:
            pk = todo.pop()
            for kid in self.children.get(pk, []):
                if kid.pk not in out:
                    out.add(kid.pk)
                    todo.append(kid.pk)
        return out


class ParentField(forms.ChoiceField):
    """The parent node, chosen among this workflow's group, chain and chord nodes by path."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        self.nodes: dict[str, WorkflowNode] = {}

    def set_tree(self, tree: NodeTree) -> None:
        candidates = tree.parent_candidates()
        self.nodes = {str(node.pk): node for node in candidates}
        self.choices = [("", gettext("(top level)"))] + [
            (str(node.pk), tree.describe(node)) for node in candidates
        ]

    def clean(self, value):
        value = super().clean(value)
        return self.nodes[value] if value else None

    def has_changed(self, initial, data):
        initial = "" if initial is None else str(initial)
        data = "" if data is None else str(data)
        return initial != data


class PreloadedModelChoiceField(forms.ModelChoiceField):
    """Looks the chosen object up among objects loaded once per formset, not once per row."""

    preloaded: dict[str, object] | None = None

    def to_python(self, value):
        if self.preloaded is not None and value not in self.empty_values:
            found = self.preloaded.get(str(getattr(value, "pk", value)))
            if found is not None:
                return found
        return super().to_python(value)


class WorkflowNodeForm(forms.ModelForm):
    parent = ParentField(
        label=_("Inside"),
        help_text=_("Only saved group, chain and chord nodes are offered: save, then nest."),
    )
    position = forms.IntegerField(
        label=_("Position"),
        min_value=0,
        max_value=MAX_POSITION,
        required=False,
        widget=forms.NumberInput(attrs={"class": "vIntegerField", "style": "width: 4em"}),
        help_text=_("Order among the parent's nodes; leave empty to add at the end."),
    )

    class Meta:
        model = WorkflowNode
        fields = ["kind", "parent", "role", "position", "label", "invocation", "reuse"]
        widgets = {"label": forms.TextInput(attrs={"size": 16})}

    def __init__(self, *args, tree: NodeTree | None = None, choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tree = tree or NodeTree([])
        self.fields["parent"].set_tree(self.tree)
        for name, (shared, objects) in (choices or {}).items():
            if name in self.fields:
                # One query per formset instead of one per row, to render and to validate.
                self.fields[name].choices = shared
                self.fields[name].preloaded = objects
        # Also when bound: has_changed() compares the posted row with these, so a blank row left
        # as rendered is not taken for a new node.
        if self.instance._state.adding:
            self.initial["position"] = None  # empty: added after the parent's last node
            root = self.tree.root
            if root is not None and root.kind in CONTAINERS:
                self.initial.setdefault("parent", root.pk)  # new rows go inside the top node

    def _get_validation_exclusions(self):
        # The tree-shaped rules (one top-level node, unique positions, one chord body, kind vs
        # target) are checked by the formset on the state after the whole save, not row by row.
        exclude = super()._get_validation_exclusions()
        exclude.update({"parent", "role", "position", "kind"})
        # The choice fields found the invocation and workflow already: no query per row.
        exclude.update({"invocation", "reuse"})
        return exclude

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        invocation, reuse = data.get("invocation"), data.get("reuse")
        if kind == NodeKind.TASK:
            if not invocation and "invocation" not in self._errors:
                self.add_error("invocation", _("Choose the task invocation this node runs."))
            if reuse:
                self.add_error("reuse", _("Only a reused-workflow node names a workflow."))
        elif kind == NodeKind.WORKFLOW:
            if not reuse and "reuse" not in self._errors:
                self.add_error("reuse", _("Choose the workflow this node reuses."))
            if invocation:
                self.add_error("invocation", _("Only a task node runs a task invocation."))
        elif kind in CONTAINERS:
            if invocation:
                self.add_error(
                    "invocation", _("A group, chain or chord runs no task invocation: clear it.")
                )
            if reuse:
                self.add_error(
                    "reuse", _("A group, chain or chord reuses no workflow: clear it.")
                )
        return data


class WorkflowNodeFormSet(BaseInlineFormSet):
    """The node editor: rows in tree order, checked as a whole, saved without collisions."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        nodes = list(self.queryset.select_related("invocation", "reuse"))
        self.tree = NodeTree(nodes)
        for node in nodes:
            node.tree_path = self.tree.path(node.pk)
        self._queryset = self.tree.ordered
        self._removed: set[int] = set()
        self._choices = None

    def shared_choices(self) -> dict[str, tuple[list, dict]]:
        """``{field: (choices, {str(pk): object})}`` for the invocation and reuse columns."""
        if self._choices is None:
            invocations = list(TaskInvocation.objects.order_by("name"))
            workflows = Workflow.objects.only("pk", "name").order_by("name")
            if self.instance.pk is not None:
                workflows = workflows.exclude(pk=self.instance.pk)
            workflows = list(workflows)
            blank = [("", "---------")]
            self._choices = {
                "invocation": (
                    blank + [(inv.pk, inv.name) for inv in invocations],
                    {str(inv.pk): inv for inv in invocations},
                ),
                "reuse": (
                    blank + [(wf.pk, wf.name) for wf in workflows],
                    {str(wf.pk): wf for wf in workflows},
                ),
            }
        return self._choices

    def add_fields(self, form, index):
        super().add_fields(form, index)
        # The hidden id of each row: found among the nodes loaded for the tree.
        name = self._pk_field.name
        field = form.fields.get(name)
        if isinstance(field, forms.ModelChoiceField):
            preloaded = PreloadedModelChoiceField(
                field.queryset, initial=field.initial, required=field.required,
                widget=forms.HiddenInput,
            )
            preloaded.preloaded = {str(pk): node for pk, node in self.tree.nodes.items()}
            form.fields[name] = preloaded

    def get_form_kwargs(self, index):
        return {
            **super().get_form_kwargs(index),
            "tree": self.tree,
            "choices": self.shared_choices(),
        }

    # -- whole-tree checks on the state after saving --------------------------------------

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        deleted: set[int] = set()
        forms_by_pk: dict[int, WorkflowNodeForm] = {}
        new_forms: list[WorkflowNodeForm] = []
        for form in self.forms:
            if not hasattr(form, "cleaned_data"):
                continue
            if form.instance.pk is not None:
                if self._should_delete_form(form):
                    deleted.add(form.instance.pk)
                else:
                    forms_by_pk[form.instance.pk] = form
            elif form.has_changed() and not self._should_delete_form(form):
                new_forms.append(form)

        # The final state of every stored node: its form's values, else the stored ones.
        parent_of: dict[int, int | None] = {}
        for pk, node in self.tree.nodes.items():
            form = forms_by_pk.get(pk)
            parent = form.cleaned_data.get("parent") if form else node.parent
            parent_of[pk] = parent.pk if parent else None

        # Deleting a node deletes what is still inside it.
        removed: set[int] = set(deleted)
        for pk in parent_of:
            seen, cursor = set(), pk
            while cursor is not None and cursor not in seen:
                if cursor in deleted:
                    removed.add(pk)
                    break
                seen.add(cursor)
                cursor = parent_of.get(cursor)
        self._removed = removed

        def changed(form) -> bool:
            return form.instance.pk is None or form.has_changed()

        kept_forms = [f for pk, f in forms_by_pk.items() if pk not in removed] + new_forms
        for form in kept_forms:
            parent = form.cleaned_data.get("parent")
            if parent is not None and parent.pk in removed and changed(form):
                form.add_error("parent", _("This node is being deleted."))
            # The editor does not offer the workflow itself; a crafted POST must not get it in.
            reuse = form.cleaned_data.get("reuse")
            if reuse is not None and self.instance.pk is not None and reuse.pk == self.instance.pk:
                form.add_error("reuse", _("A workflow cannot reuse itself."))

        # No node inside itself.
        for pk, form in forms_by_pk.items():
            if pk in removed or "parent" not in form.changed_data:
                continue
            seen, cursor = set(), parent_of[pk]
            while cursor is not None and cursor not in seen:
                if cursor == pk:
                    form.add_error(
                        "parent",
                        _("A node cannot be placed inside itself or inside one of its nodes."),
                    )
                    break
                seen.add(cursor)
                cursor = parent_of.get(cursor)

        # One top-level node.
        roots = [pk for pk, parent in parent_of.items() if parent is None and pk not in removed]
        root_forms = [forms_by_pk[pk] for pk in roots if pk in forms_by_pk]
        root_forms += [f for f in new_forms if f.cleaned_data.get("parent") is None]
        if len(roots) + sum(1 for f in root_forms if f.instance.pk is None) > 1:
            for form in root_forms:
                if changed(form):
                    form.add_error(
                        "parent",
                        _("A workflow has one top-level node: choose where this node goes."),
                    )

        if any(self.errors):
            return
        self._check_places(forms_by_pk, new_forms, parent_of, removed)

    def _check_places(self, forms_by_pk, new_forms, parent_of, removed) -> None:
        """Positions unique among siblings (empty ones appended), one body per chord."""
        places: dict[tuple[int, str], dict[int, list]] = defaultdict(lambda: defaultdict(list))
        unplaced: list[tuple[tuple[int, str], WorkflowNodeForm]] = []
        entries = []
        for pk, node in self.tree.nodes.items():
            if pk in removed or parent_of[pk] is None:
                continue
            form = forms_by_pk.get(pk)
            role = form.cleaned_data.get("role", "") if form else node.role
            position = form.cleaned_data.get("position") if form else node.position
            entries.append(((parent_of[pk], role), position, form))
        for form in [*forms_by_pk.values(), *new_forms]:
            if form.cleaned_data.get("parent") is None and form.cleaned_data["position"] is None:
                form.instance.position = form.cleaned_data["position"] = 0  # the top level
        for form in new_forms:
            parent = form.cleaned_data.get("parent")
            if parent is not None:
                entries.append(
                    ((parent.pk, form.cleaned_data.get("role", "")),
                     form.cleaned_data.get("position"), form)
                )
        for place, position, form in entries:
            if position is None:
                unplaced.append((place, form))
            else:
                places[place][position].append(form)
        for place, form in unplaced:
            taken = places[place]
            position = max(taken, default=-1) + 1
            form.instance.position = position
            form.cleaned_data["position"] = position
            taken[position].append(form)
        for (parent_pk, _role), taken in places.items():
            for position, sharing in taken.items():
                if len(sharing) < 2:
                    continue
                where = self.tree.describe(self.tree.nodes[parent_pk])
                for form in sharing:
                    if form is not None and form.has_changed():
                        form.add_error(
                            "position",
                            _("Another node in %(parent)s has position %(position)s.")
                            % {"parent": where, "position": position},
                        )
        for (_parent_pk, role), taken in places.items():
            if role != NodeRole.BODY or sum(len(s) for s in taken.values()) < 2:
                continue
            for sharing in taken.values():
                for form in sharing:
                    if form is not None and form.has_changed():
                        form.add_error(
                            "role",
                            _("A chord has one body: put the other nodes in its header."),
                        )

    # -- saving --------------------------------------------------------------------------------

    def save(self, commit=True):
        instances = super().save(commit=False)
        if not commit:
            return instances
        moved = [
            obj for obj, fields in self.changed_objects
            if {"parent", "role", "position"} & set(fields)
        ]
        # 1. Park moved nodes at positions nothing else uses (their final parent already), so
        #    that swaps and moves never collide with the unique constraints on the way.
        moved.sort(key=lambda obj: obj.parent_id is None)
        for i, obj in enumerate(moved):
            WorkflowNode.objects.filter(pk=obj.pk).update(
                parent=obj.parent_id, role=NodeRole.HEADER, position=PARK_POSITION + i
            )
        # 2. Delete (what is still inside a deleted node goes with it).
        if self.deleted_objects:
            WorkflowNode.objects.filter(pk__in=[obj.pk for obj in self.deleted_objects]).delete()
        # 3. Store the final values.
        for obj in instances:
            if obj.pk is None or obj.pk not in self._removed:
                obj.save()
        return instances


# -- one-off overrides when running ------------------------------------------------------------


class RunOverridesForm(forms.Form):
    """One JSON object per task of the workflow: extra kwargs for this run only."""

    def __init__(self, *args, spec: canvas.Node, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.overrides: dict[str, dict] = {}
        signatures = registry.signatures()
        for path, task in canvas.leaves(spec):
            signature = canvas.signature_text(task.task.rsplit(".", 1)[-1],
                                              signatures.get(task.task))
            self.fields[path] = JSONObjectField(
                label=f"{path} — {to_python(task)}",
                initial={},
                help_text=gettext("%(signature)s — extra keyword arguments for this run, "
                                  "as a JSON object.") % {"signature": signature},
            )
            self.fields[path].widget.attrs["rows"] = 1

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        overrides = {path: value for path, value in data.items() if value}
        try:
            spec = apply_overrides(self.spec, overrides)
        except InvalidWorkflow as exc:
            for problem in exc.problems:
                self.add_error(None, str(problem))
            return data
        for problem in check_spec(spec):
            self.add_error(problem.path if problem.path in self.fields else None,
                           problem.message if problem.path in self.fields else str(problem))
        self.overrides = overrides
        return data


# -- schedules ---------------------------------------------------------------------------------


def _schedule_choice(model, label) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(model.objects.all(), required=False, label=label)


class WorkflowScheduleForm(forms.ModelForm):
    """A schedule and the timing of its beat entry (a ``PeriodicTask``), validated together.

    The timing fields belong to the PeriodicTask; ``scheduling.save_schedule`` writes them, with
    what this form puts in ``self.timing``.
    """

    name = forms.CharField(
        label=_("name"), max_length=200,
        help_text=_("Unique; beat's log and its periodic tasks list show it."),
    )
    enabled = forms.BooleanField(label=_("enabled"), required=False, initial=True)
    interval = _schedule_choice(IntervalSchedule, _("interval"))
    crontab = _schedule_choice(CrontabSchedule, _("crontab"))
    solar = _schedule_choice(SolarSchedule, _("solar event"))
    clocked = _schedule_choice(ClockedSchedule, _("clocked (once, at a time)"))
    start_time = forms.SplitDateTimeField(
        label=_("not before"), required=False, widget=admin_widgets.AdminSplitDateTime
    )
    expires = forms.SplitDateTimeField(
        label=_("not after"), required=False, widget=admin_widgets.AdminSplitDateTime
    )
    one_off = forms.BooleanField(
        label=_("run once only"), required=False,
        help_text=_("Disable the schedule after its first run (always so for clocked)."),
    )
    overrides = JSONObjectField(
        label=_("kwargs overrides"),
        help_text=_('Extra keyword arguments by node path for every scheduled run, e.g. '
                    '{"root.0": {"b": 5}}. The run page lists the paths.'),
    )

    class Meta:
        model = WorkflowSchedule
        fields = ["workflow", "overlap", "overrides"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timing: dict = {}
        task = self.instance.periodic_task if self.instance.periodic_task_id else None
        if task is not None:
            self.initial.setdefault("name", task.name)
            for field in scheduling.TIMING_FIELDS:
                value = getattr(task, field)
                self.initial.setdefault(field, value.pk if hasattr(value, "pk") else value)

    def clean(self):
        data = super().clean()
        timing = {field: data.get(field) for field in scheduling.TIMING_FIELDS if field in data}
        if timing.get("expires"):
            # One end date: beat refuses "expires" beside an "expire_seconds" set in its admin.
            timing["expire_seconds"] = None
        self._check_timing(data.get("name") or "", timing)
        workflow = data.get("workflow")
        # A disabled schedule may keep a broken workflow: it can then at least be switched off.
        if workflow is not None and "overrides" in data and data.get("enabled"):
            self._check_workflow(workflow, data["overrides"])
        self.timing = timing
        return data

    def _check_timing(self, name: str, timing: dict) -> None:
        kinds = [kind for kind in scheduling.SCHEDULE_KINDS if timing.get(kind)]
        if len(kinds) != 1:
            message = _("Pick one of interval, crontab, solar event or clocked.")
            for kind in kinds or [None]:
                self.add_error(kind, message)
            return
        start, end = timing.get("start_time"), timing.get("expires")
        if end and end <= timezone.now():
            self.add_error("expires", _("This is in the past: the schedule would never run."))
        elif end and start and end <= start:
            self.add_error("expires", _("This is before “not before”."))
        # Beat's own model validation for the rest (a unique name), on a copy.
        current = self.instance.periodic_task if self.instance.periodic_task_id else None
        task = scheduling.periodic_task_for(
            copy.copy(current) if current is not None else None, name=name, **timing
        )
        try:
            task.full_clean(exclude=["task", "kwargs"])
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            return
        try:
            task.schedule.remaining_estimate(timezone.now())
        except Exception as exc:  # whatever would stop beat must stop the save
            # E.g. a solar schedule without the ephem package: beat would crash on it.
            self.add_error(kinds[0], _("Beat cannot compute this schedule: %(error)s")
                           % {"error": exc})

    def _check_workflow(self, workflow: Workflow, overrides: dict) -> None:
        try:
            spec = apply_overrides(workflow_to_spec(workflow), overrides)
        except InvalidWorkflow as exc:
            field = "overrides" if overrides else "workflow"
            for problem in exc.problems:
                self.add_error(field, str(problem))
            return
        for problem in check_spec(spec):
            self.add_error("workflow", str(problem))
