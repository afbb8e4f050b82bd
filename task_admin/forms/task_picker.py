"""The task picker: the tasks staff may pick (through ``registry``) and their parameters for
the typed argument fields. Whether posted values fit a parameter's type is asked of
``validation`` (``argument_type_messages``), which the composer shares."""

from __future__ import annotations

import inspect

from django import forms
from django.utils.text import Truncator
from django.utils.translation import gettext

from task_admin import registry


def parameter_names(signature: inspect.Signature | None) -> str:
    """``(a, b, *, c)``: the parameters without annotations or defaults, so that a long
    signature still fits the picker (the typed fields below it show types and defaults)."""
    if signature is None:
        return "(...)"
    empty = inspect.Parameter.empty
    bare = [p.replace(annotation=empty, default=empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=bare, return_annotation=empty))


def task_label(info: registry.TaskInfo) -> str:
    label = f"{info.name}{parameter_names(info.signature)}"
    if info.doc:
        label += " — " + Truncator(info.doc).chars(48)
    return label


def task_title(info: registry.TaskInfo) -> str:
    """The whole signature and first doc line, shown when the pointer rests on an option."""
    return " — ".join([info.signature_text, info.doc] if info.doc else [info.signature_text])


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
        try:
            tasks = registry.allowed_tasks()
        except registry.NoCeleryApp:
            tasks = {}
        for _group, options, _index in context["widget"]["optgroups"]:
            for option in options:
                if option["value"] in tasks:
                    option["attrs"]["title"] = task_title(tasks[option["value"]])
        return context


class ArgumentsMedia:
    js = ["task_admin/arguments.js"]
    css = {"all": ["task_admin/arguments.css"]}
