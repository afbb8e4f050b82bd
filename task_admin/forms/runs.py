"""Run-now overrides: one JSON object of extra keyword arguments per task of the workflow.

Whether the workflow can run with them is asked of ``services.prepare_run`` (once, with the
spec the page compiled and the signatures read here); the view starts ``form.prepared``.
"""

from __future__ import annotations

import json

from django import forms
from django.utils.translation import gettext

from task_admin import canvas, registry, services, validation
from task_admin.canvas.build import to_python
from task_admin.forms.json_fields import JSONObjectField
from task_admin.forms.task_picker import ArgumentsMedia, task_parameters
from task_admin.models import Workflow


class RunOverridesForm(forms.Form):
    """One JSON object per task of the workflow: extra kwargs for this run only."""

    def __init__(self, *args, workflow: Workflow, spec: canvas.Node, **kwargs):
        super().__init__(*args, **kwargs)
        self.workflow, self.spec = workflow, spec
        self.prepared: services.PreparedRun | None = None
        # Read once for the page: the help texts, then the check of what was posted.
        self.signatures = signatures = registry.signatures()
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
            self.prepared = services.prepare_run(
                self.workflow, overrides, spec=self.spec, tasks=self.signatures
            )
        except services.WorkflowProblems as exc:
            for problem in exc.problems:
                at_field = problem.path in self.fields
                self.add_error(problem.path if at_field else None,
                               problem.message if at_field else str(problem))
        return data


def _given_positionally(signature, task: canvas.Task) -> list[str]:
    """The parameters a leaf's own positional arguments fill (an override cannot set them)."""
    if signature is None:
        return []
    parent = validation.receives_parent(signature, list(task.args), task.kwargs, task.immutable)
    offset = 1 if parent else 0
    names = [
        p.name for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return names[: offset + len(task.args)]
