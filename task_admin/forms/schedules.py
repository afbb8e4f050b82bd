"""The schedule form: a schedule and the timing of its beat entry, validated together."""

from __future__ import annotations

import copy

from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    SolarSchedule,
)

from task_admin import scheduling, services
from task_admin.forms.json_fields import JSONObjectField
from task_admin.models import Workflow, WorkflowSchedule


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
            # As the tree is now: a spec kept by this process may predate a new node.
            services.prepare_run(workflow, overrides, fresh=True)
        except services.WorkflowProblems as exc:
            for problem in exc.problems:
                # At the override that brings it, else at the workflow.
                self.add_error("overrides" if problem.path in overrides else "workflow",
                               str(problem))
