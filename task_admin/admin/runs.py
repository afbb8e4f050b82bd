"""Workflow runs in the admin: the list, the run page, revoke and re-run.

Runs are records of what happened: nobody adds or edits them by hand. The only ways to change
one are ``services.revoke_run`` and ``services.rerun_from_failure``, through the confirmation
views below (GET asks, POST does) and the matching changelist actions, each behind its own
permission and each written to the admin log. A view and its action share one body
(``_revoke``, ``_rerun``); the page's data comes from ``presenters.run_page``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods, require_safe

from task_admin import canvas, retention, services
from task_admin.admin.code import RunCodeMixin
from task_admin.admin.lists import ReadOnlyListMixin, can_view_task_results
from task_admin.links import admin_url
from task_admin.models import NodeState, RunStatus, TaskAttempt, TaskRun, Workflow, WorkflowRun
from task_admin.permissions import has_model_perm
from task_admin.presenters import run_page
from task_admin.presenters.formatting import local_time, state_badge
from task_admin.presenters.run_page import as_pk


@admin.register(WorkflowRun)
class WorkflowRunAdmin(RunCodeMixin, ReadOnlyListMixin, admin.ModelAdmin):
    list_display = (
        "run_display", "trigger", "who", "status_badge", "started_display", "duration_display",
        "progress",
    )
    empty_value_display = "—"
    list_filter = ("status", "trigger", "workflow")
    list_select_related = ("triggered_by",)
    list_defer = ("spec", "overrides", "note", "error")
    date_hierarchy = "created_at"
    search_fields = ("workflow_name",)
    search_help_text = gettext_lazy("Workflow name, or a run number such as 42 or #42.")
    actions = ("revoke_runs", "rerun_runs")
    readonly_fields = (
        "workflow_link", "trigger", "who", "rerun_of_link", "reruns_links", "created_display",
        "dispatched_display", "started_display", "finished_display", "duration_display",
    )
    fieldsets = (
        # Status and progress are shown above, as a badge and a bar that refresh themselves.
        (None, {"fields": ("workflow_link", "duration_display")}),
        (
            gettext_lazy("Trigger"),
            {"fields": ("trigger", "who", "rerun_of_link", "reruns_links")},
        ),
        (
            gettext_lazy("Times"),
            {"fields": (
                "created_display", "dispatched_display", "started_display", "finished_display",
            )},
        ),
    )

    class Media:
        # The run page's own rules in a file of their own, loaded once with the shared ones.
        css = {"all": ["task_admin/task_admin.css", "task_admin/run.css"]}

    # -- permissions: nobody adds or edits a run; revoke and re-run have their own --------

    def _has_perm(self, request, action: str) -> bool:
        return has_model_perm(request.user, action, self.model)

    def has_revoke_permission(self, request, obj=None):
        return self._has_perm(request, "revoke")

    def has_rerun_permission(self, request, obj=None):
        return self._has_perm(request, "rerun")

    def get_deleted_objects(self, objs, request):
        # A run's task runs and attempts go with it: they are never deleted on their own, so
        # their admins refuse deletion, which must not block deleting the run itself.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        cascaded = {str(TaskRun._meta.verbose_name), str(TaskAttempt._meta.verbose_name)}
        perms_needed = {name for name in perms_needed if str(name) not in cascaded}
        return deleted, model_count, perms_needed, protected

    # -- list -------------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        # Retention, with how many runs are past it (bounded counts: a backlog costs no more).
        counts = retention.due_counts()
        labels = dict(RunStatus.choices)
        capped = sum(counts.values()) >= retention.COUNT_LIMIT
        extra_context = {
            **(extra_context or {}),
            "retention_policy": retention.describe_policy(),
            "retention_due": [
                {"status": labels[status], "count": count, "more": capped}
                for status, count in sorted(counts.items()) if count
            ],
        }
        return super().changelist_view(request, extra_context)

    @admin.display(description=gettext_lazy("run"), ordering="workflow_name")
    def run_display(self, run: WorkflowRun) -> str:
        return str(run)

    @admin.display(description=gettext_lazy("by"))
    def who(self, run: WorkflowRun) -> str:
        if run.triggered_by_id and run.triggered_by is not None:
            name = run.triggered_by.get_username()
            return f"{name} ({run.trigger_detail})" if run.trigger_detail else name
        return run.trigger_detail or "—"

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_badge(self, run: WorkflowRun):
        return state_badge(run.status, run.get_status_display())

    @admin.display(description=gettext_lazy("duration"))
    def duration_display(self, run: WorkflowRun) -> str:
        return run_page.run_duration(run)

    # Times with seconds: a run's steps are seconds apart, Django's default format hides them.
    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created_display(self, run: WorkflowRun) -> str:
        return local_time(run.created_at)

    @admin.display(description=gettext_lazy("dispatched"), ordering="dispatched_at")
    def dispatched_display(self, run: WorkflowRun) -> str:
        return local_time(run.dispatched_at)

    @admin.display(description=gettext_lazy("started"), ordering="started_at")
    def started_display(self, run: WorkflowRun) -> str:
        return local_time(run.started_at)

    @admin.display(description=gettext_lazy("finished"), ordering="finished_at")
    def finished_display(self, run: WorkflowRun) -> str:
        return local_time(run.finished_at)

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, run: WorkflowRun) -> str:
        return f"{run.finished_nodes}/{run.total_nodes}"

    @admin.display(description=gettext_lazy("workflow"))
    def workflow_link(self, run: WorkflowRun):
        url = None
        if run.workflow_id and self.admin_site.is_registered(Workflow):
            url = admin_url("task_admin_workflow_change", run.workflow_id,
                             current_app=self.admin_site.name)
        if url:
            return format_html('<a href="{}">{}</a>', url, run.workflow_name)
        return run.workflow_name

    @admin.display(description=gettext_lazy("re-run of"))
    def rerun_of_link(self, run: WorkflowRun):
        if not run.rerun_of_id:
            return "—"
        url = admin_url("task_admin_workflowrun_change", run.rerun_of_id,
                         current_app=self.admin_site.name)
        return format_html('<a href="{}">#{}</a>', url, run.rerun_of_id)

    @admin.display(description=gettext_lazy("re-run as"))
    def reruns_links(self, run: WorkflowRun):
        pks = list(run.reruns.order_by("pk").values_list("pk", flat=True)[:50])
        if not pks:
            return "—"
        return format_html_join(
            ", ", '<a href="{}">#{}</a>',
            (
                (admin_url("task_admin_workflowrun_change", pk, current_app=self.admin_site.name),
                 pk)
                for pk in pks
            ),
        )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        pk = as_pk(term.removeprefix("#"))
        if pk is not None:
            return queryset.filter(pk=pk), False
        return super().get_search_results(request, queryset, search_term)

    # -- urls ---------------------------------------------------------------------------------

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/status/", wrap(self.status_view), name=f"{prefix}_status"),
            path("<path:object_id>/node/<int:node_id>/", wrap(self.node_view),
                 name=f"{prefix}_node"),
            path("<path:object_id>/graph/", wrap(self.graph_view), name=f"{prefix}_graph"),
            path("<path:object_id>/revoke/", wrap(self.revoke_view), name=f"{prefix}_revoke"),
            path("<path:object_id>/rerun/", wrap(self.rerun_view), name=f"{prefix}_rerun"),
            *super().get_urls(),
        ]

    def _run_or_404(self, request, object_id: str, *fields: str) -> WorkflowRun:
        qs = self.get_queryset(request)
        if fields:
            qs = qs.only(*fields)
        try:
            run = qs.get(pk=unquote(object_id))
        except (WorkflowRun.DoesNotExist, ValueError, TypeError):
            raise Http404(_("No such workflow run.")) from None
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return run

    def _run_url(self, run_id: int) -> str:
        return reverse(
            "admin:task_admin_workflowrun_change", args=[run_id], current_app=self.admin_site.name
        )

    # -- the run page ---------------------------------------------------------------------

    def _access(self, request) -> run_page.Access:
        task_runs = self.admin_site._registry.get(TaskRun)
        return run_page.Access(
            site=self.admin_site.name,
            can_view_nodes=bool(task_runs and task_runs.has_view_permission(request)),
            can_view_results=can_view_task_results(request, self.admin_site),
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        if obj is not None and not add:
            context.update(self.run_page_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def run_page_context(self, request, run: WorkflowRun) -> dict:
        return {
            **run_page.run_page(run, request.GET.get("nodes"), self._access(request)),
            "can_revoke": not run.is_finished and self.has_revoke_permission(request, run),
            "can_rerun": (
                run.is_finished
                and run.status != RunStatus.SUCCEEDED
                and self.has_rerun_permission(request, run)
            ),
        }

    @method_decorator(require_safe)
    def graph_view(self, request: HttpRequest, object_id: str):
        """The graph of a big run, drawn when asked for (GET): kept out of the page itself."""
        run = self._run_or_404(request, object_id, "pk", "spec", "status")
        try:
            spec = canvas.from_dict(run.spec)
        except canvas.SpecError:
            raise Http404(_("This run's canvas cannot be read.")) from None
        return HttpResponse(run_page.graph(run, spec, self._access(request)),
                            content_type="text/html")

    @method_decorator(require_safe)
    def node_view(self, request: HttpRequest, object_id: str, node_id: int) -> JsonResponse:
        """One task run's details for the run page (GET, JSON): what the table leaves out."""
        run = self._run_or_404(request, object_id, "pk")
        task_run = run.nodes.filter(pk=node_id).first()
        if task_run is None:
            raise Http404(_("No such task in this run."))
        return JsonResponse(run_page.task_run_details(task_run))

    @method_decorator(require_safe)
    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The run's status, its counts, and one page of task runs (``?nodes=N``; with
        ``?states=1`` every state, for the graph): the run page's live refresh (GET)."""
        run = self._run_or_404(
            request, object_id, "pk", "status", "finished_nodes", "total_nodes", "started_at",
            "finished_at",
        )
        return JsonResponse(run_page.status(
            run, request.GET.get("nodes"), with_states=bool(request.GET.get("states"))
        ))

    # -- confirmation pages ---------------------------------------------------------------

    def _confirmation(self, request, run, template: str, title: str, **context):
        opts = self.opts
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(run),
            "opts": opts,
            "app_label": opts.app_label,
            "run": run,
            "object": run,
            "run_url": self._run_url(run.pk),
            "object_url": self._run_url(run.pk),
            "has_view_permission": self.has_view_permission(request, run),
            **context,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            [f"admin/{opts.app_label}/{opts.model_name}/{template}"],
            context,
        )

    # -- revoke ---------------------------------------------------------------------------

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def revoke_view(self, request: HttpRequest, object_id: str):
        """GET: what revoking the run would stop. POST: revoke it."""
        run = self._run_or_404(request, object_id)
        if not self.has_revoke_permission(request, run):
            raise PermissionDenied
        if request.method == "POST":
            terminate = request.POST.get("terminate") == "on"
            try:
                _count, message, level = self._revoke(request, run, terminate=terminate)
            except services.CannotRun as exc:
                self.message_user(request, _("Run #%(run)s: %(reason)s") % {
                    "run": run.pk, "reason": exc}, messages.ERROR)
            except services.BrokerUnavailable as exc:
                self.message_user(
                    request,
                    _("Run #%(run)s was not revoked: the broker could not be reached "
                      "(%(error)s).") % {"run": run.pk, "error": exc.error},
                    messages.ERROR,
                )
            else:
                self.message_user(request, _("Run #%(run)s: %(message)s") % {
                    "run": run.pk, "message": message}, level)
                return redirect(self._run_url(run.pk))
        unfinished = list(
            run.nodes.unfinished()
            .order_by("position")
            .only("pk", "path", "task_name", "label", "state")
        )
        return self._confirmation(
            request, run, "revoke_confirmation.html", _("Revoke this run?"),
            unfinished=unfinished,
            refused=_("The run has already finished.") if run.is_finished else "",
        )

    def _revoke(self, request, run: WorkflowRun, *, terminate: bool = False
                ) -> tuple[int, str, int]:
        """Revoke ``run`` and log it: how many tasks were revoked, what was done and how good
        that is (a message level). Raises ``services.CannotRun`` (``BrokerUnavailable``)."""
        count = services.revoke_run(run, terminate=terminate)
        message = ngettext(
            "Revoked %(count)d unfinished task.",
            "Revoked %(count)d unfinished tasks.",
            count,
        ) % {"count": count}
        level = messages.SUCCESS
        if terminate:
            message += " " + _("Running tasks were terminated.")
        else:
            running = run.nodes.filter(state=NodeState.STARTED).count()
            if running:
                # Without terminate Celery lets a started task finish: say so, not "done".
                level = messages.WARNING
                message += " " + ngettext(
                    "%(running)d task had started and runs to its end; revoke with "
                    "“terminate” to stop it.",
                    "%(running)d tasks had started and run to their end; revoke with "
                    "“terminate” to stop them.",
                    running,
                ) % {"running": running}
        self.log_change(request, run, message)
        return count, message, level

    @admin.action(description=gettext_lazy("Revoke selected runs"), permissions=["revoke"])
    def revoke_runs(self, request, queryset):
        revoked = finished = tasks = 0
        for run in queryset.select_related(None).only("pk", "status", "workflow_name").order_by(
            "pk"
        ):
            if run.is_finished:
                finished += 1
                continue
            try:
                count, _message, _level = self._revoke(request, run)
            except services.BrokerUnavailable as exc:
                self.message_user(
                    request,
                    _("Stopped: the broker could not be reached (%(error)s).")
                    % {"error": exc.error},
                    messages.ERROR,
                )
                break
            except services.CannotRun:
                finished += 1
                continue
            revoked += 1
            tasks += count
        if revoked:
            self.message_user(request, ngettext(
                "Revoked %(count)d run (%(tasks)d unfinished tasks).",
                "Revoked %(count)d runs (%(tasks)d unfinished tasks).",
                revoked,
            ) % {"count": revoked, "tasks": tasks}, messages.SUCCESS)
        if finished:
            self.message_user(request, ngettext(
                "%(count)d run had already finished and was left alone.",
                "%(count)d runs had already finished and were left alone.",
                finished,
            ) % {"count": finished}, messages.WARNING)

    # -- re-run ---------------------------------------------------------------------------

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def rerun_view(self, request: HttpRequest, object_id: str):
        """GET: which nodes would run again and which results are kept. POST: re-run."""
        run = self._run_or_404(request, object_id)
        if not self.has_rerun_permission(request, run):
            raise PermissionDenied
        if request.method == "POST":
            new_run = self._rerun_and_report(request, run)
            if new_run is not None:
                return redirect(self._run_url(new_run.pk))
        task_runs = list(
            run.nodes.order_by("position").only(
                "pk", "path", "task_name", "label", "state", "run_id"
            )
        )
        kept = [task_run for task_run in task_runs if task_run.state == NodeState.SUCCESS]
        again = [task_run for task_run in task_runs if task_run.state != NodeState.SUCCESS]
        refused = ""
        if not run.is_finished:
            refused = _("The run has not finished yet.")
        elif run.status == RunStatus.SUCCEEDED or not again:
            refused = _("Every task of this run succeeded: there is nothing to re-run.")
        return self._confirmation(
            request, run, "rerun_confirmation.html", _("Re-run from the point of failure?"),
            kept=kept, again=again, refused=refused,
        )

    def _rerun(self, request, run: WorkflowRun) -> WorkflowRun:
        """Re-run ``run`` from the point of failure and log it; the new run, read again after
        the commit (its status says whether the canvas was sent). Raises
        ``services.CannotRun`` (its problems, or ``BrokerUnavailable``)."""
        new_run = services.rerun_from_failure(run, user=request.user)
        self.log_addition(request, new_run, new_run.note or _("Re-run of #%(run)s") % {
            "run": run.pk})
        self.log_change(request, run, _("Re-run from the point of failure as #%(new)s.") % {
            "new": new_run.pk})
        # The canvas is sent once the run is committed: say what that really did.
        new_run.refresh_from_db(fields=["status", "error"])
        if new_run.status == RunStatus.DISPATCH_FAILED:
            self.message_user(request, _(
                "Run #%(run)s: its re-run #%(new)s could not be sent: %(error)s"
            ) % {"run": run.pk, "new": new_run.pk, "error": new_run.error}, messages.ERROR)
        return new_run

    def _rerun_and_report(self, request, run: WorkflowRun) -> WorkflowRun | None:
        try:
            new_run = self._rerun(request, run)
        except services.CannotRun as exc:
            self.message_user(request, _("Run #%(run)s: %(reason)s") % {
                "run": run.pk, "reason": exc}, messages.ERROR)
            return None
        if new_run.status != RunStatus.DISPATCH_FAILED:
            self.message_user(request, _("Run #%(run)s is re-running as #%(new)s. %(note)s") % {
                "run": run.pk, "new": new_run.pk, "note": new_run.note}, messages.SUCCESS)
        return new_run

    @admin.action(
        description=gettext_lazy("Re-run selected runs from the point of failure"),
        permissions=["rerun"],
    )
    def rerun_runs(self, request, queryset):
        started, skipped = [], 0
        for run in queryset.order_by("pk"):
            if not run.is_finished or run.status == RunStatus.SUCCEEDED:
                skipped += 1
                continue
            try:
                new_run = self._rerun(request, run)
            except services.CannotRun as exc:
                self.message_user(request, _("Run #%(run)s: %(reason)s") % {
                    "run": run.pk, "reason": exc}, messages.ERROR)
                continue
            if new_run.status != RunStatus.DISPATCH_FAILED:
                started.append(new_run.pk)
        if started:
            self.message_user(request, ngettext(
                "Started %(count)d re-run: %(runs)s.",
                "Started %(count)d re-runs: %(runs)s.",
                len(started),
            ) % {"count": len(started), "runs": ", ".join(f"#{pk}" for pk in started)},
                messages.SUCCESS)
        if skipped:
            self.message_user(request, ngettext(
                "%(count)d run was skipped: unfinished, or nothing failed.",
                "%(count)d runs were skipped: unfinished, or nothing failed.",
                skipped,
            ) % {"count": skipped}, messages.WARNING)
