"""The task picker: the tasks staff may pick (through ``registry``), their parameters for the
typed argument fields, and the messages for values that do not fit a parameter's type."""

from __future__ import annotations

import json

from django import forms
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from task_admin import arguments, registry


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
