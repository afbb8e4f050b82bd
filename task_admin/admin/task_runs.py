"""Task runs in the admin: one row per task of a run, read-only (they go with their run)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from task_admin import services
from task_admin.admin.lists import ReadOnlyListMixin, can_view_task_results
from task_admin.links import admin_url
from task_admin.models import NodeState, TaskRun
from task_admin.presenters.formatting import duration, local_time, pretty_json, state_badge
from task_admin.presenters.run_page import as_pk, task_result_ids


class TaskNameFilter(admin.SimpleListFilter):
    """Task names from the (small) invocation table, not a DISTINCT over every task run."""

    title = gettext_lazy("task")
    parameter_name = "task_name"

    def lookups(self, request, model_admin):
        from task_admin.models import TaskInvocation

        names = set(
            TaskInvocation.objects.order_by("task").values_list("task", flat=True).distinct()[:500]
        )
        names.add(services.REPLAY_TASK)
        if self.value():
            names.add(self.value())
        return [(name, name) for name in sorted(names)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(task_name=self.value())
        return queryset


class RunFilter(admin.SimpleListFilter):
    """``?run=<pk>``: the nodes of one run (the run page links here). No choices listed."""

    title = gettext_lazy("run")
    parameter_name = "run"

    def lookups(self, request, model_admin):
        pk = as_pk(self.value())
        return [(str(pk), f"#{pk}")] if pk is not None else []

    def queryset(self, request, queryset):
        pk = as_pk(self.value())
        return queryset.filter(run_id=pk) if pk is not None else queryset


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyListMixin, admin.ModelAdmin):
    list_display = (
        "run_link", "path", "task_display", "state_badge", "attempt_count", "worker",
        "started_display", "runtime_display",
    )
    empty_value_display = "—"
    list_filter = ("state", TaskNameFilter, RunFilter)
    list_select_related = ("run",)
    list_defer = (
        "result", "traceback", "exception", "run__spec", "run__overrides", "run__note",
        "run__error",
    )
    search_fields = ("=task_id",)
    search_help_text = gettext_lazy("The Celery task id.")
    ordering = ("-run_id", "position")
    readonly_fields = (
        "run_link", "task_id", "path", "task_name", "label", "state_badge", "attempt_count",
        "worker", "received_display", "started_display", "finished_display", "runtime_display",
        "reused_from_link", "result_display", "exception", "traceback_display", "attempts_table",
    )
    fieldsets = (
        (None, {"fields": (
            "run_link", "task_name", "label", "path", "task_id", "state_badge", "attempt_count",
            "worker", "reused_from_link",
        )}),
        (gettext_lazy("Times"), {"fields": (
            "received_display", "started_display", "finished_display", "runtime_display",
        )}),
        (gettext_lazy("Outcome"), {"fields": (
            "result_display", "exception", "traceback_display", "attempts_table",
        )}),
    )

    class Media:
        css = {"all": ["task_admin/task_admin.css"]}

    def has_delete_permission(self, request, obj=None):
        # Task runs go with their run (see WorkflowRunAdmin.get_deleted_objects).
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("run").defer(
            "run__spec", "run__overrides"
        )

    def get_search_results(self, request, queryset, search_term):
        # The exact, case-sensitive task id (Celery's ids are): the unique index finds it.
        # Django's "=task_id" would compare UPPER(task_id) (LIKE on SQLite), which no index
        # serves: a scan of every task ever run. ``search_fields`` only shows the box.
        term = search_term.strip()
        return (queryset.filter(task_id=term), False) if term else (queryset, False)

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        if obj is not None and not add:
            site = self.admin_site.name
            result_url = None
            if can_view_task_results(request, self.admin_site):
                result_pk = task_result_ids([obj.task_id]).get(obj.task_id)
                if result_pk:
                    result_url = admin_url(
                        "django_celery_results_taskresult_change", result_pk, current_app=site
                    )
            from django.apps import apps

            context.update({
                "task_result_url": result_url,
                "run_url": admin_url("task_admin_workflowrun_change", obj.run_id,
                                      current_app=site),
                # What needs django-celery-results says so where it would be.
                "results_app_missing": not apps.is_installed("django_celery_results"),
            })
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description=gettext_lazy("run"), ordering="run_id")
    def run_link(self, task_run: TaskRun):
        url = admin_url("task_admin_workflowrun_change", task_run.run_id,
                         current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, task_run.run)

    @admin.display(description=gettext_lazy("task"), ordering="task_name")
    def task_display(self, task_run: TaskRun):
        if task_run.label:
            return format_html("{} <small>{}</small>", task_run.label, task_run.task_name)
        return task_run.task_name

    @admin.display(description=gettext_lazy("state"), ordering="state")
    def state_badge(self, task_run: TaskRun):
        return state_badge(task_run.state, task_run.get_state_display())

    @admin.display(description=gettext_lazy("received"), ordering="received_at")
    def received_display(self, task_run: TaskRun) -> str:
        return local_time(task_run.received_at)

    @admin.display(description=gettext_lazy("started"), ordering="started_at")
    def started_display(self, task_run: TaskRun) -> str:
        return local_time(task_run.started_at)

    @admin.display(description=gettext_lazy("finished"), ordering="finished_at")
    def finished_display(self, task_run: TaskRun) -> str:
        return local_time(task_run.finished_at)

    @admin.display(description=gettext_lazy("runtime"), ordering="runtime")
    def runtime_display(self, task_run: TaskRun) -> str:
        return duration(task_run.runtime) or "—"

    @admin.display(description=gettext_lazy("result kept from"))
    def reused_from_link(self, task_run: TaskRun):
        if not task_run.reused_from_id:
            return "—"
        url = admin_url("task_admin_taskrun_change", task_run.reused_from_id,
                         current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, task_run.reused_from_id)

    @admin.display(description=gettext_lazy("result"))
    def result_display(self, task_run: TaskRun):
        if task_run.result is None and task_run.state != NodeState.SUCCESS:
            return "—"
        return format_html('<pre class="ta-pre">{}</pre>', pretty_json(task_run.result))

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_display(self, task_run: TaskRun):
        if not task_run.traceback:
            return "—"
        return format_html('<pre class="ta-pre">{}</pre>', task_run.traceback)

    @admin.display(description=gettext_lazy("attempts"))
    def attempts_table(self, task_run: TaskRun):
        attempts = list(task_run.attempts.order_by("number"))
        if not attempts:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td></tr>",
            (
                (
                    attempt.number,
                    state_badge(attempt.state, attempt.get_state_display()),
                    attempt.worker or "—",
                    local_time(attempt.started_at),
                    local_time(attempt.finished_at),
                    attempt.reason or "—",
                    local_time(attempt.next_eta),
                )
                for attempt in attempts
            ),
        )
        return format_html(
            "<table><thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>"
            "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("state"), _("worker"), _("started"), _("finished"), _("reason"),
            _("next attempt at"), rows,
        )
