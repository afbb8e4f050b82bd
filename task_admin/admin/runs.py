"""Run pages: workflow runs and their task runs, read-only, with revoke and re-run.

Runs are records of what happened: nobody adds or edits them by hand. The only ways to change
one are ``services.revoke_run`` and ``services.rerun_from_failure``, through the confirmation
views below (GET asks, POST does) and the matching changelist actions, each behind its own
permission and each written to the admin log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Count, QuerySet, TextField
from django.db.models.functions import Cast, Substr
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.decorators import method_decorator
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods, require_safe
from kombu.exceptions import KombuError

from task_admin import canvas, operations, retention, services
from task_admin.admin.code import RunCodeMixin
from task_admin.alert_messages import run_page_alerts
from task_admin.canvas.build import to_python
from task_admin.compile import InvalidWorkflow
from task_admin.conf import get_config
from task_admin.i18n import translated
from task_admin.links import admin_url as _admin_url
from task_admin.models import NodeState, RunStatus, TaskAttempt, TaskRun, Workflow, WorkflowRun
from task_admin.permissions import has_model_perm
from task_admin.registry import NoCeleryApp
from task_admin.templatetags.task_admin import (
    STATE_LABELS,
    duration,
    pretty_json,
    preview_from_json_text,
    state_badge,
)

logger = logging.getLogger(__name__)

# What can go wrong when talking to the broker (or finding the Celery app at all).
BROKER_ERRORS = (KombuError, OSError, NoCeleryApp)

# The run page shows its node table this many rows at a time, and draws the graph in the page
# only for runs of at most this many tasks (bigger graphs are drawn when asked for): together
# they keep the page of a 1,000-task run small and quick.
NODE_PAGE = 100
GRAPH_INLINE_MAX = 200

# Segments of the progress bar, in the order they are drawn; PENDING is the bar's background.
PROGRESS_STATES = (
    NodeState.SUCCESS, NodeState.FAILURE, NodeState.REVOKED, NodeState.SKIPPED,
    NodeState.NOT_SENT, NodeState.RETRY, NodeState.STARTED, NodeState.RECEIVED,
)


# -- big tables ---------------------------------------------------------------------------


def as_pk(value: str | None) -> int | None:
    """A primary key typed by a person, or None: ASCII digits only ("²".isdigit() is True, and
    int() refuses it) and within a 64-bit column."""
    if value and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


class BoundedCountPaginator(Paginator):
    """A paginator whose count never reads more than ``count_limit`` rows.

    Counting is the slow part of a changelist over a big table. This one counts with
    ``SELECT COUNT(*) FROM (SELECT id ... LIMIT count_limit + 1)``, which costs the same on a
    table of a thousand rows or a hundred million. Past the limit the count is a lower bound
    (``count_is_exact`` is False): PostgreSQL's planner estimate for an unfiltered list, the
    limit otherwise. The list's pagination template says "more than" / "about".
    """

    count_limit = 5000

    count_is_exact = True
    count_is_estimate = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return super().count
        counted = qs.order_by().values("pk")[: self.count_limit + 1].count()
        if counted <= self.count_limit:
            return counted
        self.count_is_exact = False
        estimate = _estimated_rows(qs) or 0
        self.count_is_estimate = estimate > self.count_limit
        return max(self.count_limit, estimate)


def _estimated_rows(qs: QuerySet) -> int | None:
    """The planner's idea of how many rows the table holds (PostgreSQL, unfiltered only)."""
    connection = connections[qs.db]
    if connection.vendor != "postgresql" or qs.query.has_filters():
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(qs.model._meta.db_table)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] and row[0] > 0 else None


class LightChangeList(ChangeList):
    """A changelist that does not read the model's big columns (``list_defer``)."""

    def get_queryset(self, request, exclude_parameters=None):
        qs = super().get_queryset(request, exclude_parameters)
        return qs.defer(*self.model_admin.list_defer)


class ReadOnlyListMixin:
    """Records of what happened: cheap lists over big tables, never added or edited by hand."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_per_page = 100
    list_defer: tuple[str, ...] = ()

    def get_changelist(self, request, **kwargs):
        return LightChangeList

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def with_result_head(qs: QuerySet) -> QuerySet:
    """Annotate ``result_head``: the first characters of the stored JSON result, as text.

    The database cuts the text, so a page of a thousand nodes never loads their whole results.
    """
    chars = get_config()["RESULT_PREVIEW_CHARS"]
    return qs.annotate(result_head=Substr(Cast("result", output_field=TextField()), 1, chars + 1))


def task_result_ids(task_ids: Iterable[str]) -> dict[str, int]:
    """``{task_id: TaskResult pk}`` for the ids known to django-celery-results: one query."""
    from django.apps import apps

    if not apps.is_installed("django_celery_results"):
        return {}
    from django_celery_results.models import TaskResult

    ids = list(task_ids)
    if not ids:
        return {}
    return dict(TaskResult.objects.filter(task_id__in=ids).values_list("task_id", "pk"))


# -- workflow runs ------------------------------------------------------------------------


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
        if run.duration is not None:
            return duration(run.duration)
        if run.started_at and not run.is_finished:
            return _("%(elapsed)s so far") % {"elapsed": duration(timezone.now() - run.started_at)}
        return "—"

    # Times with seconds: a run's steps are seconds apart, Django's default format hides them.
    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created_display(self, run: WorkflowRun) -> str:
        return _local(run.created_at)

    @admin.display(description=gettext_lazy("dispatched"), ordering="dispatched_at")
    def dispatched_display(self, run: WorkflowRun) -> str:
        return _local(run.dispatched_at)

    @admin.display(description=gettext_lazy("started"), ordering="started_at")
    def started_display(self, run: WorkflowRun) -> str:
        return _local(run.started_at)

    @admin.display(description=gettext_lazy("finished"), ordering="finished_at")
    def finished_display(self, run: WorkflowRun) -> str:
        return _local(run.finished_at)

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, run: WorkflowRun) -> str:
        return f"{run.finished_nodes}/{run.total_nodes}"

    @admin.display(description=gettext_lazy("workflow"))
    def workflow_link(self, run: WorkflowRun):
        url = None
        if run.workflow_id and self.admin_site.is_registered(Workflow):
            url = _admin_url("task_admin_workflow_change", run.workflow_id,
                             current_app=self.admin_site.name)
        if url:
            return format_html('<a href="{}">{}</a>', url, run.workflow_name)
        return run.workflow_name

    @admin.display(description=gettext_lazy("re-run of"))
    def rerun_of_link(self, run: WorkflowRun):
        if not run.rerun_of_id:
            return "—"
        url = _admin_url("task_admin_workflowrun_change", run.rerun_of_id,
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
                (_admin_url("task_admin_workflowrun_change", pk, current_app=self.admin_site.name),
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

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        if obj is not None and not add:
            context.update(self.run_page_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _reconcile(self, run: WorkflowRun) -> None:
        """Catch up with the result backend on nodes whose worker may have died; never fail."""
        if run.is_finished:
            return
        try:
            if services.reconcile_run(run):
                run.refresh_from_db()
        except Exception:
            logger.warning("task_admin: reconciling run %s failed", run.pk, exc_info=True)

    def _node_page(self, request, run: WorkflowRun) -> tuple[int, int]:
        """The page of the node table asked for (``?nodes=N``, from 1) and the page count."""
        pages = max(1, -(-run.total_nodes // NODE_PAGE))
        page = as_pk(request.GET.get("nodes")) or 1
        return min(max(page, 1), pages), pages

    def _page_nodes(self, run: WorkflowRun, page: int) -> list[TaskRun]:
        """One page of the run's nodes, without their big columns (results are cut by the
        database, tracebacks and attempts are loaded on demand)."""
        qs = with_result_head(run.nodes.defer("result", "traceback").order_by("position"))
        return list(qs[(page - 1) * NODE_PAGE: page * NODE_PAGE])

    def run_page_context(self, request, run: WorkflowRun) -> dict[str, Any]:
        self._reconcile(run)
        site = self.admin_site.name
        page, pages = self._node_page(request, run)
        nodes = self._page_nodes(run, page)
        can_view_nodes = self.admin_site.is_registered(TaskRun) and self.admin_site._registry[
            TaskRun
        ].has_view_permission(request)
        results = task_result_ids(n.task_id for n in nodes) if _can_view_task_results(
            request, self.admin_site) else {}
        for node in nodes:
            node.preview = preview_from_json_text(node.result_head)
            node.admin_url = (
                _admin_url("task_admin_taskrun_change", node.pk, current_app=site)
                if can_view_nodes else None
            )
            result_pk = results.get(node.task_id)
            node.task_result_url = (
                _admin_url("django_celery_results_taskresult_change", result_pk, current_app=site)
                if result_pk else None
            )
            node.details_url = reverse(
                "admin:task_admin_workflowrun_node", args=[run.pk, node.pk], current_app=site
            )

        counts = node_counts(run)
        try:
            spec = canvas.from_dict(run.spec)
        except canvas.SpecError as exc:
            spec, canvas_text = None, ""
            spec_error = f"{exc.path}: {translated(exc.message)}"
        else:
            canvas_text, spec_error = to_python(spec), ""
        total = run.total_nodes or sum(counts.values())
        graph = ""
        graph_inline = spec is not None and total <= GRAPH_INLINE_MAX
        if graph_inline:
            graph = self._graph(request, run, spec)
        refresh = {
            "statusUrl": reverse(
                "admin:task_admin_workflowrun_status", args=[run.pk], current_app=site
            ) + f"?nodes={page}" + ("&states=1" if graph_inline else ""),
            "interval": int(get_config()["REFRESH_INTERVAL"]),
            "finished": run.is_finished,
            "labels": {str(k): str(v) for k, v in STATE_LABELS.items()},
            "progressStates": list(PROGRESS_STATES),
        }
        return {
            "queue_hints": operations.pending_queue_hints(run, nodes, spec),
            "run": run,
            "run_alerts": run_page_alerts(run),
            "nodes": nodes,
            "node_page": page,
            "node_pages": pages,
            "node_page_links": _page_links(page, pages),
            "node_first": (page - 1) * NODE_PAGE + 1 if nodes else 0,
            "node_last": (page - 1) * NODE_PAGE + len(nodes),
            "graph": graph,
            "graph_url": (
                reverse("admin:task_admin_workflowrun_graph", args=[run.pk], current_app=site)
                if spec is not None and not graph_inline else ""
            ),
            "canvas_text": canvas_text,
            "spec_error": spec_error,
            "progress_segments": _segments(counts, total),
            "progress_total": total,
            "progress_finished": run.finished_nodes,
            "refresh_config": refresh,
            "details_labels": {
                "exception": _("Exception"), "traceback": _("Traceback"), "result": _("Result"),
                "attempts": _("Attempts"), "state": _("state"), "worker": _("worker"),
                "started": _("started"), "finished": _("finished"), "reason": _("reason"),
                "next_eta": _("next attempt at"), "runtime": _("runtime"),
                "received": _("received"), "task_id": _("task id"),
                "loading": _("Loading…"), "failed": _("The details could not be loaded."),
                "graph_failed": _("The graph could not be drawn."),
            },
            "can_revoke": not run.is_finished and self.has_revoke_permission(request, run),
            "can_rerun": (
                run.is_finished
                and run.status != RunStatus.SUCCEEDED
                and self.has_rerun_permission(request, run)
            ),
            "nodes_url": (
                _admin_url("task_admin_taskrun_changelist", current_app=site) + f"?run={run.pk}"
                if can_view_nodes else None
            ),
        }

    def _graph(self, request, run: WorkflowRun, spec) -> str:
        """The run's graph coloured by state, each box linked to its task run (one query)."""
        site = self.admin_site.name
        rows = list(run.nodes.values_list("path", "state", "pk"))
        can_view_nodes = self.admin_site.is_registered(TaskRun) and self.admin_site._registry[
            TaskRun
        ].has_view_permission(request)
        links = {}
        if can_view_nodes:
            base = _admin_url("task_admin_taskrun_change", 0, current_app=site)
            links = {path: base.replace("/0/", f"/{pk}/", 1) for path, _state, pk in rows}
        return _render_graph(spec, states={p: s for p, s, _pk in rows}, links=links)

    @method_decorator(require_safe)
    def graph_view(self, request: HttpRequest, object_id: str):
        """The graph of a big run, drawn when asked for (GET): kept out of the page itself."""
        run = self._run_or_404(request, object_id, "pk", "spec", "status")
        try:
            spec = canvas.from_dict(run.spec)
        except canvas.SpecError:
            raise Http404(_("This run's canvas cannot be read.")) from None
        return HttpResponse(self._graph(request, run, spec), content_type="text/html")

    @method_decorator(require_safe)
    def node_view(self, request: HttpRequest, object_id: str, node_id: int) -> JsonResponse:
        """One node's details for the run page (GET, JSON): what the table leaves out."""
        run = self._run_or_404(request, object_id, "pk")
        node = run.nodes.filter(pk=node_id).first()
        if node is None:
            raise Http404(_("No such task in this run."))
        attempts = [
            {
                "number": a.number,
                "state": a.state,
                "state_label": str(a.get_state_display()),
                "worker": a.worker,
                "started": _local(a.started_at),
                "finished": _local(a.finished_at),
                "reason": a.reason,
                "next_eta": _local(a.next_eta),
                "traceback": a.traceback,
            }
            for a in node.attempt_set.order_by("number")
        ]
        return JsonResponse({
            "path": node.path,
            "task": node.task_name,
            "state": node.state,
            "state_label": str(node.get_state_display()),
            "task_id": node.task_id,
            "worker": node.worker,
            "received": _local(node.received_at),
            "started": _local(node.started_at),
            "finished": _local(node.finished_at),
            "runtime": duration(node.runtime) or "—",
            "result": (
                pretty_json(node.result)
                if node.result is not None or node.state == NodeState.SUCCESS else ""
            ),
            "exception": node.exception,
            "traceback": node.traceback,
            "attempts": attempts,
        })

    @method_decorator(require_safe)
    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The run's status, its counts, and one page of nodes (``?nodes=N``; with
        ``?states=1`` every node's state, for the graph): the run page's live refresh (GET)."""
        run = self._run_or_404(
            request, object_id, "pk", "status", "finished_nodes", "total_nodes", "started_at",
            "finished_at",
        )
        page, _pages = self._node_page(request, run)
        rows = with_result_head(run.nodes.order_by("position")).values_list(
            "path", "state", "attempts", "worker", "started_at", "runtime", "result_head"
        )[(page - 1) * NODE_PAGE: page * NODE_PAGE]
        nodes = [
            {
                "path": node_path,
                "state": state,
                "state_label": str(STATE_LABELS.get(state, state)),
                "attempts": attempts,
                "worker": worker,
                "started": _local(started_at),
                "runtime": duration(runtime) or "—",
                "result": preview_from_json_text(head),
            }
            for node_path, state, attempts, worker, started_at, runtime, head in rows
        ]
        data = {
            "id": run.pk,
            "status": run.status,
            "status_label": str(run.get_status_display()),
            "finished": run.is_finished,
            "finished_nodes": run.finished_nodes,
            "total_nodes": run.total_nodes,
            "counts": node_counts(run),
            "nodes": nodes,
        }
        if request.GET.get("states"):
            data["states"] = dict(run.nodes.values_list("path", "state"))
        return JsonResponse(data)

    # -- revoke ---------------------------------------------------------------------------

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

    @method_decorator(require_http_methods(["GET", "HEAD", "POST"]))
    def revoke_view(self, request: HttpRequest, object_id: str):
        """GET: what revoking the run would stop. POST: revoke it."""
        run = self._run_or_404(request, object_id)
        if not self.has_revoke_permission(request, run):
            raise PermissionDenied
        if request.method == "POST":
            terminate = request.POST.get("terminate") == "on"
            if self._revoke(request, run, terminate=terminate) is not None:
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

    def _revoke(self, request, run: WorkflowRun, *, terminate: bool = False) -> int | None:
        """Revoke ``run``, log it and say so; None (and an error message) when it failed."""
        try:
            count = services.revoke_run(run, terminate=terminate)
        except services.CannotRun as exc:
            self.message_user(request, _("Run #%(run)s: %(reason)s") % {
                "run": run.pk, "reason": exc}, messages.ERROR)
            return None
        except BROKER_ERRORS as exc:
            logger.warning("task_admin: revoking run %s failed: %s", run.pk, exc)
            self.message_user(
                request,
                _("Run #%(run)s was not revoked: the broker could not be reached (%(error)s).")
                % {"run": run.pk, "error": exc},
                messages.ERROR,
            )
            return None
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
        self.message_user(request, _("Run #%(run)s: %(message)s") % {
            "run": run.pk, "message": message}, level)
        return count

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
                count = services.revoke_run(run)
            except services.CannotRun:
                finished += 1
                continue
            except BROKER_ERRORS as exc:
                self.message_user(
                    request,
                    _("Stopped: the broker could not be reached (%(error)s).") % {"error": exc},
                    messages.ERROR,
                )
                break
            self.log_change(request, run, ngettext(
                "Revoked %(count)d unfinished task.", "Revoked %(count)d unfinished tasks.", count,
            ) % {"count": count})
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
            new_run = self._rerun(request, run)
            if new_run is not None:
                return redirect(self._run_url(new_run.pk))
        nodes = list(
            run.nodes.order_by("position").only(
                "pk", "path", "task_name", "label", "state", "run_id"
            )
        )
        kept = [node for node in nodes if node.state == NodeState.SUCCESS]
        again = [node for node in nodes if node.state != NodeState.SUCCESS]
        refused = ""
        if not run.is_finished:
            refused = _("The run has not finished yet.")
        elif run.status == RunStatus.SUCCEEDED or not again:
            refused = _("Every task of this run succeeded: there is nothing to re-run.")
        return self._confirmation(
            request, run, "rerun_confirmation.html", _("Re-run from the point of failure?"),
            kept=kept, again=again, refused=refused,
        )

    def _rerun(self, request, run: WorkflowRun) -> WorkflowRun | None:
        try:
            new_run = services.rerun_from_failure(run, user=request.user)
        except services.CannotRun as exc:
            self.message_user(request, _("Run #%(run)s: %(reason)s") % {
                "run": run.pk, "reason": exc}, messages.ERROR)
            return None
        except InvalidWorkflow as exc:
            self.message_user(
                request,
                _("Run #%(run)s cannot be re-run: %(problems)s")
                % {"run": run.pk, "problems": "; ".join(str(p) for p in exc.problems)},
                messages.ERROR,
            )
            return None
        except BROKER_ERRORS as exc:
            self.message_user(
                request,
                _("Run #%(run)s was not re-run: %(error)s") % {"run": run.pk, "error": exc},
                messages.ERROR,
            )
            return None
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
        else:
            self.message_user(request, _("Run #%(run)s is re-running as #%(new)s. %(note)s") % {
                "run": run.pk, "new": new_run.pk, "note": new_run.note}, messages.SUCCESS)
        return new_run

    @admin.action(
        description=gettext_lazy("Re-run selected runs from the point of failure"),
        permissions=["rerun"],
    )
    def rerun_runs(self, request, queryset):
        started, skipped, failed = [], 0, 0
        for run in queryset.order_by("pk"):
            if not run.is_finished or run.status == RunStatus.SUCCEEDED:
                skipped += 1
                continue
            try:
                new_run = services.rerun_from_failure(run, user=request.user)
            except (services.CannotRun, InvalidWorkflow, *BROKER_ERRORS) as exc:
                failed += 1
                self.message_user(request, _("Run #%(run)s: %(reason)s") % {
                    "run": run.pk, "reason": exc}, messages.ERROR)
                continue
            self.log_addition(request, new_run, new_run.note)
            self.log_change(request, run, _("Re-run from the point of failure as #%(new)s.") % {
                "new": new_run.pk})
            new_run.refresh_from_db(fields=["status", "error"])
            if new_run.status == RunStatus.DISPATCH_FAILED:
                failed += 1
                self.message_user(request, _(
                    "Run #%(run)s: its re-run #%(new)s could not be sent: %(error)s"
                ) % {"run": run.pk, "new": new_run.pk, "error": new_run.error}, messages.ERROR)
                continue
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


def _can_view_task_results(request, site) -> bool:
    from django.apps import apps

    if not apps.is_installed("django_celery_results"):
        return False
    from django_celery_results.models import TaskResult

    model_admin = site._registry.get(TaskResult)
    return bool(model_admin and model_admin.has_view_permission(request))


def _render_graph(spec, *, states, links) -> str:
    try:
        from task_admin.graph import render_svg
    except ImportError:
        return ""
    try:
        return render_svg(spec, states=states, links=links)
    except Exception:  # a picture that cannot be drawn must not hide the run's records
        logger.exception("task_admin: drawing the graph failed")
        return ""


def node_counts(run: WorkflowRun) -> dict[str, int]:
    """How many of the run's nodes are in each state (one grouped query)."""
    rows = run.nodes.order_by().values_list("state").annotate(n=Count("pk"))
    return dict(rows)


def _page_links(page: int, pages: int) -> list[int | None]:
    """Page numbers to link: the first, the last and two either side of ``page`` (None is a
    gap)."""
    wanted = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    out: list[int | None] = []
    for number in wanted:
        if out and number - out[-1] > 1:
            out.append(None)
        out.append(number)
    return out


def _segments(counts: dict[str, int], total: int) -> list[dict[str, Any]]:
    if not total:
        return []
    return [
        {
            "state": state,
            "count": counts[state],
            "percent": round(100 * counts[state] / total, 3),
            "label": STATE_LABELS[state],
        }
        for state in PROGRESS_STATES
        if counts.get(state)
    ]


# -- task runs ----------------------------------------------------------------------------


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
        "run_link", "path", "task_display", "state_badge", "attempts", "worker",
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
        "run_link", "task_id", "path", "task_name", "label", "state_badge", "attempts",
        "worker", "received_display", "started_display", "finished_display", "runtime_display",
        "reused_from_link", "result_display", "exception", "traceback_display", "attempts_table",
    )
    fieldsets = (
        (None, {"fields": (
            "run_link", "task_name", "label", "path", "task_id", "state_badge", "attempts",
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
        term = search_term.strip()
        return (queryset.filter(task_id=term), False) if term else (queryset, False)

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        if obj is not None and not add:
            site = self.admin_site.name
            result_url = None
            if _can_view_task_results(request, self.admin_site):
                result_pk = task_result_ids([obj.task_id]).get(obj.task_id)
                if result_pk:
                    result_url = _admin_url(
                        "django_celery_results_taskresult_change", result_pk, current_app=site
                    )
            from django.apps import apps

            context.update({
                "task_result_url": result_url,
                "run_url": _admin_url("task_admin_workflowrun_change", obj.run_id,
                                      current_app=site),
                # What needs django-celery-results says so where it would be.
                "results_app_missing": not apps.is_installed("django_celery_results"),
            })
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description=gettext_lazy("run"), ordering="run_id")
    def run_link(self, node: TaskRun):
        url = _admin_url("task_admin_workflowrun_change", node.run_id,
                         current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, node.run)

    @admin.display(description=gettext_lazy("task"), ordering="task_name")
    def task_display(self, node: TaskRun):
        if node.label:
            return format_html("{} <small>{}</small>", node.label, node.task_name)
        return node.task_name

    @admin.display(description=gettext_lazy("state"), ordering="state")
    def state_badge(self, node: TaskRun):
        return state_badge(node.state, node.get_state_display())

    @admin.display(description=gettext_lazy("received"), ordering="received_at")
    def received_display(self, node: TaskRun) -> str:
        return _local(node.received_at)

    @admin.display(description=gettext_lazy("started"), ordering="started_at")
    def started_display(self, node: TaskRun) -> str:
        return _local(node.started_at)

    @admin.display(description=gettext_lazy("finished"), ordering="finished_at")
    def finished_display(self, node: TaskRun) -> str:
        return _local(node.finished_at)

    @admin.display(description=gettext_lazy("runtime"), ordering="runtime")
    def runtime_display(self, node: TaskRun) -> str:
        return duration(node.runtime) or "—"

    @admin.display(description=gettext_lazy("result kept from"))
    def reused_from_link(self, node: TaskRun):
        if not node.reused_from_id:
            return "—"
        url = _admin_url("task_admin_taskrun_change", node.reused_from_id,
                         current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, node.reused_from_id)

    @admin.display(description=gettext_lazy("result"))
    def result_display(self, node: TaskRun):
        if node.result is None and node.state != NodeState.SUCCESS:
            return "—"
        return format_html('<pre class="ta-pre">{}</pre>', pretty_json(node.result))

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_display(self, node: TaskRun):
        if not node.traceback:
            return "—"
        return format_html('<pre class="ta-pre">{}</pre>', node.traceback)

    @admin.display(description=gettext_lazy("attempts"))
    def attempts_table(self, node: TaskRun):
        attempts = list(node.attempt_set.order_by("number"))
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
                    _local(attempt.started_at),
                    _local(attempt.finished_at),
                    attempt.reason or "—",
                    _local(attempt.next_eta),
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


def _local(value) -> str:
    """A time in the current time zone, to the second ("—" when there is none)."""
    if value is None:
        return "—"
    return date_format(timezone.localtime(value), "Y-m-d H:i:s")
