"""The workflow form: its fields and its whole tree, which the composer posts as one JSON
document (``composer.parse`` reads it, ``composer.save`` stores it)."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext

from task_admin import canvas, composer
from task_admin.models import Workflow


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
