"""Admin forms: the task picker, JSON fields that fail at the field, the workflow form (whose
tree the composer posts as one document), run-now overrides, the schedule form.

Nothing here talks to Celery except through ``registry`` (which tasks may be picked) and
``canvas.build.to_python`` (readable labels); tree-wide checks stay in ``validation``.
"""

from __future__ import annotations

import copy
import json

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError
from django.forms.models import construct_instance
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

from task_admin import arguments, canvas, composer, registry, scheduling
from task_admin.canvas.build import to_python
from task_admin.canvas.spec import json_value_problem
from task_admin.compile import InvalidWorkflow, workflow_to_spec
from task_admin.i18n import translated
from task_admin.models import (
    NodeKind,
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


def task_parameters(names=None) -> dict[str, dict]:
    """The parameters of the allowed tasks (or of ``names``), for the argument fields."""
    try:
        described = registry.parameters()
    except registry.NoCeleryApp:
        return {}
    return described if names is None else {n: described[n] for n in names if n in described}


class TaskPicker(forms.Select):
    """The task select, with every allowed task's parameters for the typed argument fields."""

    template_name = "task_admin/widgets/task_picker.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["widget"]["parameters"] = task_parameters()
        return context


class ArgumentsMedia:
    js = ["task_admin/arguments.js"]
    css = {"all": ["task_admin/arguments.css"]}


def receives_parent(signature, args, kwargs, immutable: bool) -> bool:
    """Whether the arguments only fit with the previous result prepended (a chain step or
    chord body), as ``validation.validate_invocation`` reads them."""
    if signature is None or immutable:
        return False
    try:
        signature.bind(*args, **kwargs)
        return False
    except TypeError:
        pass
    try:
        signature.bind(None, *args, **kwargs)
        return True
    except TypeError:
        return False


TYPE_WORDS = {
    "int": _("an integer"), "float": _("a number"), "bool": _("true or false"),
    "str": _("text"), "date": _("a date (YYYY-MM-DD)"),
    "datetime": _("a date and time (ISO 8601)"), "list": _("a list"), "dict": _("an object"),
}


def type_messages(task: str, args: list, kwargs: dict, immutable: bool) -> dict[str, list[str]]:
    """``{"args" | "kwargs": [messages]}`` for values that do not fit their parameter's type."""
    described = task_parameters([task]).get(task)
    if not described or not described["known"]:
        return {}
    signature = registry.signatures().get(task)
    out: dict[str, list[str]] = {}
    parent = receives_parent(signature, args, kwargs, immutable)
    for name, kind, value, choices in arguments.value_problems(described, args, kwargs, parent):
        expected = (
            gettext("one of %(choices)s") % {"choices": ", ".join(json.dumps(c) for c in choices)}
            if kind == "choice" else str(TYPE_WORDS[kind])
        )
        field = "kwargs" if name in kwargs else "args"
        out.setdefault(field, []).append(
            gettext("“%(name)s” takes %(expected)s, not %(value)s")
            % {"name": name, "expected": expected, "value": json.dumps(value)}
        )
    return out


class WholeNumberInput(forms.NumberInput):
    """A float field's input that shows 10, not 10.0."""

    def format_value(self, value):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super().format_value(value)


FLOAT_FIELDS = (
    "countdown", "expires", "retry_interval_start", "retry_interval_step", "retry_interval_max",
    "soft_time_limit", "time_limit",
)


class TaskInvocationForm(forms.ModelForm):
    task = forms.ChoiceField(
        label=_("Task"),
        widget=TaskPicker(attrs={"class": "ta-task-picker"}),
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
        widgets = {name: WholeNumberInput(attrs={"step": "any"}) for name in FLOAT_FIELDS}

    Media = ArgumentsMedia

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.data.get(self.add_prefix("task")) if self.is_bound else None
        self.fields["task"].choices = task_choices(current or self.instance.task)

    def clean(self):
        data = super().clean()
        if not any(name in self._errors for name in ("task", "args", "kwargs")):
            messages = type_messages(data.get("task") or "", data.get("args") or [],
                                     data.get("kwargs") or {}, bool(data.get("immutable")))
            for field, found in messages.items():
                self.add_error(field, found)
        return data

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


# -- the workflow composer ---------------------------------------------------------------------


def node_title(node: WorkflowNode) -> str:
    """What a node is called: its label, else what it runs, else its kind."""
    if node.label:
        return node.label
    if node.kind == NodeKind.TASK and node.invocation_id:
        return node.invocation.name
    if node.kind == NodeKind.WORKFLOW and node.reuse_id:
        return node.reuse.name
    return str(node.get_kind_display())


class WorkflowForm(forms.ModelForm):
    """The workflow's fields and its whole tree, posted by the composer as one JSON document.

    ``tree_errors`` lists what stops the save, each with its node path (the composer shows it
    next to the node); ``composition`` is what ``composer.save`` stores.
    """

    tree = forms.CharField(required=False, widget=forms.HiddenInput(attrs={"id": "id_tree"}))
    # Set by the admin from the user's permissions: may an inline call create an invocation?
    can_add_invocations = False

    class Meta:
        model = Workflow
        fields = ["name", "description", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.composition: composer.Composition | None = None
        self.tree_errors: list[canvas.Problem] = []
        if not self.is_bound:
            stored = composer.stored_document(self.instance) if self.instance.pk else (
                composer.document(None, [])
            )
            self.initial["tree"] = json.dumps(stored, separators=(",", ":"))

    def clean_tree(self):
        raw = self.cleaned_data.get("tree") or ""
        try:
            self.composition = composer.parse(
                raw, self.instance, can_add_invocations=self.can_add_invocations
            )
        except composer.DocumentError as exc:
            self.tree_errors = exc.problems
            raise ValidationError(
                [gettext("%(path)s: %(message)s") % {"path": p.path, "message": p.message}
                 for p in exc.problems]
            ) from None
        return raw


# -- one-off overrides when running ------------------------------------------------------------


class RunOverridesForm(forms.Form):
    """One JSON object per task of the workflow: extra kwargs for this run only."""

    def __init__(self, *args, spec: canvas.Node, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.overrides: dict[str, dict] = {}
        signatures = registry.signatures()
        leaves = canvas.leaves(spec)
        # The typed fields' script reads these (one parameter list per task, not per node).
        self.parameters = task_parameters({task.task for _path, task in leaves})
        for path, task in leaves:
            sig = signatures.get(task.task)
            signature = canvas.signature_text(task.task.rsplit(".", 1)[-1], sig)
            self.fields[path] = JSONObjectField(
                label=f"{path} — {to_python(task)}",
                initial={},
                help_text=gettext("%(signature)s — extra keyword arguments for this run, "
                                  "as a JSON object.") % {"signature": signature},
            )
            given = _given_positionally(sig, task)
            self.fields[path].widget.attrs.update({
                "rows": 1,
                "data-ta-override": "",
                "data-ta-task": task.task,
                "data-ta-given": json.dumps(given),
                "data-ta-stored": json.dumps(task.kwargs),
            })

    @property
    def media(self):
        return super().media + forms.Media(js=ArgumentsMedia.js, css=ArgumentsMedia.css)

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


def _given_positionally(signature, task: canvas.Task) -> list[str]:
    """The parameters a leaf's own positional arguments fill (an override cannot set them)."""
    if signature is None:
        return []
    offset = 1 if receives_parent(signature, list(task.args), task.kwargs, task.immutable) else 0
    names = [
        p.name for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return names[: offset + len(task.args)]


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
