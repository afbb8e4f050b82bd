"""Warnings on the workflow change page: likely mistakes that do not keep a tree from running.

Today the chord-body warning (``canvas.validate.warnings``): shown as an admin message when the
workflow is saved, and above the preview. A mixin, so the editor's own code stays untouched.
"""

from __future__ import annotations

from django.contrib import messages
from django.utils.translation import gettext

from task_admin.validation import spec_warnings


class WorkflowWarningsMixin:
    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        shown = context.get("workflow_preview")
        if shown is not None:
            context["workflow_warnings"] = spec_warnings(shown.spec)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        from task_admin.compile import InvalidWorkflow, workflow_to_spec

        try:
            spec = workflow_to_spec(form.instance)
        except InvalidWorkflow:
            return
        for warning in spec_warnings(spec):
            self.message_user(
                request, gettext("Warning: %(warning)s") % {"warning": str(warning)},
                messages.WARNING,
            )
