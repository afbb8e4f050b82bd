"""JSON form fields that fail at the field: a list or an object, strict JSON (no NaN or
Infinity, which Celery's JSON serializer would not send), values Celery can carry."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from task_admin.canvas.spec import StrictJSONDecoder, json_value_problem
from task_admin.i18n import translated


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
