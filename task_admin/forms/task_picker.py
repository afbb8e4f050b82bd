"""The task picker: the tasks staff may pick (through ``registry``) and their parameters for
the typed argument fields. Whether posted values fit a parameter's type is asked of
``validation`` (``argument_type_messages``), which the composer shares."""

from __future__ import annotations

from django import forms
from django.utils.text import Truncator
from django.utils.translation import gettext

from task_admin import registry


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
