"""Warnings on the workflow change page: likely mistakes that do not keep a tree from running.

Today the chord-body warning (``canvas.validate.warnings``), shown above the preview; after a
save ``WorkflowAdmin.save_related`` says them as messages (``presenters.preview.saved_tree``).
"""

from __future__ import annotations

from task_admin.validation import spec_warnings


class WorkflowWarningsMixin:
    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        shown = context.get("workflow_preview")
        if shown is not None:
            context["workflow_warnings"] = spec_warnings(shown.spec)
        return super().render_change_form(request, context, add, change, form_url, obj)
