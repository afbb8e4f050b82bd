"""The task invocation form: the task picker, JSON arguments, typed argument checks."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import construct_instance
from django.utils.translation import gettext_lazy as _

from task_admin import validation
from task_admin.forms.json_fields import JSONListField, JSONObjectField
from task_admin.forms.task_picker import ArgumentsMedia, TaskPicker, task_choices
from task_admin.models import TaskInvocation


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
            messages = validation.argument_type_messages(
                data.get("task") or "", data.get("args") or [], data.get("kwargs") or {},
                bool(data.get("immutable")),
            )
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
