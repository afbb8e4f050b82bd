"""Workflow schedules: a workflow on a django-celery-beat schedule, with an overlap policy.

Adding, changing and deleting a schedule takes the model permission *and* ``schedule_workflow``;
view-only staff see the schedule and its timing read-only. The timing is edited here but stored
on the linked ``PeriodicTask`` (``scheduling.save_schedule``), so beat's own admin shows it too.
"""

from __future__ import annotations

import copy

from django.contrib import admin, messages
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from task_admin import scheduling
from task_admin.admin.alerts import ScheduleAlertRuleInline
from task_admin.forms.schedules import WorkflowScheduleForm
from task_admin.links import admin_url
from task_admin.models import Workflow, WorkflowSchedule
from task_admin.permissions import has_model_perm


@admin.register(WorkflowSchedule)
class WorkflowScheduleAdmin(admin.ModelAdmin):
    empty_value_display = "—"  # as everywhere else in the app, not Django's "-"
    form = WorkflowScheduleForm
    list_display = (
        "name", "workflow", "timing", "is_enabled", "overlap", "next_run", "last_fired_at",
        "last_outcome", "skipped_count",
    )
    list_select_related = (
        "workflow", "periodic_task__interval", "periodic_task__crontab", "periodic_task__solar",
        "periodic_task__clocked",
    )
    list_filter = ("overlap", "periodic_task__enabled")
    search_fields = ("periodic_task__name", "workflow__name")
    actions = ["enable_schedules", "disable_schedules"]
    inlines = [ScheduleAlertRuleInline]
    history = ("last_fired_at", "last_outcome", "skipped_count", "runs")

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only: the PeriodicTask's fields are not attributes of a schedule.
            return [
                (None, {"fields": ("name", "workflow", "is_enabled", "timing", "next_run")}),
                (_("Each run"), {"fields": ("overlap", "overrides")}),
                (_("History"), {"fields": self.history}),
            ]
        fieldsets = [
            (None, {"fields": ("name", "workflow", "enabled")}),
            (_("When"), {
                "fields": (*scheduling.SCHEDULE_KINDS, "start_time", "expires", "one_off"),
                "description": _(
                    "Pick exactly one of interval, crontab, solar event or clocked; a clocked "
                    "schedule runs once. Times are in the beat scheduler's time zone."
                ),
            }),
            (_("Each run"), {"fields": ("overlap", "overrides")}),
        ]
        if obj is not None:
            fieldsets.append((_("History"), {"fields": self.history}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return ("name", "workflow", "is_enabled", "timing", "next_run", "overlap",
                    "overrides", *self.history)
        return self.history

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # "+" buttons for the beat schedule rows, as a ForeignKey would have.
        for kind in scheduling.SCHEDULE_KINDS:
            if kind not in form.base_fields:
                continue
            remote = PeriodicTask._meta.get_field(kind).remote_field
            if not self.admin_site.is_registered(remote.model):
                continue
            field = copy.deepcopy(form.base_fields[kind])  # base_fields are shared by classes
            field.widget = RelatedFieldWidgetWrapper(
                field.widget, remote, self.admin_site,
                can_add_related=has_model_perm(request.user, "add", remote.model),
                can_change_related=False,
                can_delete_related=False,
                can_view_related=False,
            )
            form.base_fields[kind] = field
        return form

    def save_model(self, request, obj, form, change):
        scheduling.save_schedule(obj, name=form.cleaned_data["name"], **form.timing)

    # -- permissions: the model's and schedule_workflow ------------------------------------

    def has_schedule_permission(self, request, obj=None) -> bool:
        return has_model_perm(request.user, "schedule", Workflow)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self.has_schedule_permission(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.has_schedule_permission(
            request
        )

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.has_schedule_permission(
            request
        )

    # -- columns ---------------------------------------------------------------------------

    @admin.display(description=_("name"), ordering="periodic_task__name")
    def name(self, obj):
        return obj.periodic_task.name

    @admin.display(description=_("when"))
    def timing(self, obj):
        scheduler = obj.periodic_task.scheduler
        return str(scheduler) if scheduler else "—"

    @admin.display(description=_("enabled"), boolean=True, ordering="periodic_task__enabled")
    def is_enabled(self, obj):
        return obj.periodic_task.enabled

    @admin.display(description=_("next run"))
    def next_run(self, obj):
        task = obj.periodic_task
        if not task.enabled:
            return "—"
        when = scheduling.next_run(task, timezone.now())
        return when if when is not None else "—"

    @admin.display(description=_("runs"))
    def runs(self, obj):
        url = admin_url("task_admin_workflowrun_changelist")
        if url is None:
            return "—"
        count = obj.runs.count()
        label = ngettext("%(count)d run", "%(count)d runs", count) % {"count": count}
        return format_html('<a href="{}?schedule__id__exact={}">{}</a>', url, obj.pk, label)

    # -- actions ---------------------------------------------------------------------------

    # "change" includes schedule_workflow (has_change_permission above).
    @admin.action(description=_("Enable selected schedules"), permissions=["change"])
    def enable_schedules(self, request, queryset):
        self._set_enabled(request, queryset, enabled=True)

    @admin.action(description=_("Disable selected schedules"), permissions=["change"])
    def disable_schedules(self, request, queryset):
        self._set_enabled(request, queryset, enabled=False)

    def _set_enabled(self, request, queryset, *, enabled: bool) -> None:
        tasks = PeriodicTask.objects.filter(workflow_schedule__in=queryset)
        changed = tasks.exclude(enabled=enabled).update(
            enabled=enabled, **({} if enabled else {"last_run_at": None})
        )
        PeriodicTasks.update_changed()  # a bulk update: beat must be told
        message = (
            ngettext("%(count)d schedule enabled.", "%(count)d schedules enabled.", changed)
            if enabled
            else ngettext("%(count)d schedule disabled.", "%(count)d schedules disabled.", changed)
        )
        self.message_user(request, message % {"count": changed}, messages.SUCCESS)
