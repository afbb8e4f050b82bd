"""Task invocations in the admin: a picker of allowed tasks, JSON arguments checked at the field."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from task_admin.admin.catalogue import JavaScriptCatalogueMixin
from task_admin.admin.files import FilesMixin
from task_admin.admin.operations import warn_unconsumed_queues
from task_admin.forms.invocations import TaskInvocationForm
from task_admin.forms.task_picker import ArgumentsMedia
from task_admin.models import TaskInvocation, Workflow
from task_admin.resources import TaskInvocationResource


@admin.register(TaskInvocation)
class TaskInvocationAdmin(JavaScriptCatalogueMixin, FilesMixin, admin.ModelAdmin):
    empty_value_display = "—"  # as everywhere else in the app, not Django's "-"
    resource_classes = [TaskInvocationResource]
    form = TaskInvocationForm
    list_display = ("name", "task", "immutable", "updated_at")
    list_filter = ("task", "immutable", "queue")
    search_fields = ("name", "task", "description")
    readonly_fields = ("used_in",)

    class Media:
        css = {"all": ("task_admin/workflow_admin.css",)}

    task_fieldset = (
        _("Task"),
        {"fields": ("name", "description", "task", "args", "kwargs", "immutable")},
    )
    option_fieldsets = (
        (
            _("Scheduling"),
            {"classes": ("collapse",), "fields": ("countdown", "eta", "expires")},
        ),
        (_("Routing"), {"classes": ("collapse",), "fields": ("queue", "priority")}),
        (
            _("Publishing retry policy"),
            {
                "classes": ("collapse",),
                "description": _(
                    "How sending the message is retried when the broker cannot be reached."
                ),
                "fields": (
                    "retry",
                    "retry_max_retries",
                    "retry_interval_start",
                    "retry_interval_step",
                    "retry_interval_max",
                ),
            },
        ),
        (
            _("Time limits"),
            {"classes": ("collapse",), "fields": ("soft_time_limit", "time_limit")},
        ),
    )

    def render_change_form(self, request, context, *args, **kwargs):
        # The task picker's typed fields (arguments.js, the form's media) speak the staff
        # member's language: the app's JavaScript catalogue loads before them.
        context["media"] = context["media"] + self.catalogue_media(*ArgumentsMedia.js)
        return super().render_change_form(request, context, *args, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        warn_unconsumed_queues(self, request, {obj.queue})

    def get_fieldsets(self, request, obj=None):
        fieldsets = [self.task_fieldset, *self.option_fieldsets]
        if obj is not None:
            fieldsets.append((_("Used in"), {"fields": ("used_in",)}))
        return fieldsets

    @admin.display(description=_("workflows"))
    def used_in(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        workflows = Workflow.objects.filter(nodes__invocation=obj).distinct().order_by("name")
        items = [
            (
                reverse(
                    "admin:task_admin_workflow_change",
                    args=[wf.pk],
                    current_app=self.admin_site.name,
                ),
                wf.name,
            )
            for wf in workflows.only("pk", "name")
        ]
        if not items:
            return gettext("No workflow uses this invocation yet.")
        return format_html(
            '<ul class="ta-used-in">{}</ul>',
            format_html_join("", '<li><a href="{}">{}</a></li>', items),
        )
