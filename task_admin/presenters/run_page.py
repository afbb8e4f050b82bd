"""The run page as data: one page of the node table, the progress bar, the graph, the canvas,
the live status the page polls, and one node's details.

No requests here: the admin passes what depends on the user (``Access``: the site and what
the user may see) and the page asked for; it adds the buttons and the site's own context.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet, TextField
from django.db.models.functions import Cast, Substr
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from task_admin import canvas, operations, services
from task_admin.alert_messages import run_page_alerts
from task_admin.canvas.build import to_python
from task_admin.conf import get_config
from task_admin.graph import render_svg
from task_admin.i18n import translated
from task_admin.links import admin_url
from task_admin.models import NodeState, TaskRun, WorkflowRun
from task_admin.presenters.formatting import (
    STATE_LABELS,
    duration,
    local_time,
    pretty_json,
    preview_from_json_text,
)

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Access:
    """What the page's user may see, and the admin site whose URLs the page links to."""

    site: str = "admin"
    can_view_nodes: bool = False  # the task run pages
    can_view_results: bool = False  # django-celery-results' pages


def as_pk(value: str | None) -> int | None:
    """A primary key typed by a person, or None: ASCII digits only ("²".isdigit() is True, and
    int() refuses it) and within a 64-bit column."""
    if value and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


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


def node_counts(run: WorkflowRun) -> dict[str, int]:
    """How many of the run's nodes are in each state (one grouped query)."""
    rows = run.nodes.order_by().values_list("state").annotate(n=Count("pk"))
    return dict(rows)


def node_page(run: WorkflowRun, asked: str | None) -> tuple[int, int]:
    """The page of the node table asked for (``?nodes=N``, from 1) and the page count."""
    pages = max(1, -(-run.total_nodes // NODE_PAGE))
    page = as_pk(asked) or 1
    return min(max(page, 1), pages), pages


def page_links(page: int, pages: int) -> list[int | None]:
    """Page numbers to link: the first, the last and two either side of ``page`` (None is a
    gap)."""
    wanted = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    out: list[int | None] = []
    for number in wanted:
        if out and number - out[-1] > 1:
            out.append(None)
        out.append(number)
    return out


def progress_segments(counts: dict[str, int], total: int) -> list[dict[str, Any]]:
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


def reconcile(run: WorkflowRun) -> None:
    """Catch up with the result backend on tasks whose worker may have died; never fail."""
    if run.is_finished:
        return
    try:
        if services.reconcile_run(run):
            run.refresh_from_db()
    except Exception:
        logger.warning("task_admin: reconciling run %s failed", run.pk, exc_info=True)


def _page_task_runs(run: WorkflowRun, page: int) -> list[TaskRun]:
    """One page of the run's task runs, without their big columns (results are cut by the
    database, tracebacks and attempts are loaded on demand)."""
    qs = with_result_head(run.nodes.defer("result", "traceback").order_by("position"))
    return list(qs[(page - 1) * NODE_PAGE: page * NODE_PAGE])


def graph(run: WorkflowRun, spec: canvas.Node, access: Access) -> str:
    """The run's graph coloured by state, each box linked to its task run (one query)."""
    rows = list(run.nodes.values_list("path", "state", "pk"))
    links = {}
    if access.can_view_nodes:
        base = admin_url("task_admin_taskrun_change", 0, current_app=access.site)
        links = {path: base.replace("/0/", f"/{pk}/", 1) for path, _state, pk in rows}
    try:
        return render_svg(spec, states={p: s for p, s, _pk in rows}, links=links)
    except Exception:  # a picture that cannot be drawn must not hide the run's records
        logger.exception("task_admin: drawing the graph failed")
        return ""


def _link(run: WorkflowRun, task_runs: list[TaskRun], access: Access) -> None:
    """Give each shown task run its result preview and the links its row offers."""
    site = access.site
    results = task_result_ids(t.task_id for t in task_runs) if access.can_view_results else {}
    for task_run in task_runs:
        task_run.preview = preview_from_json_text(task_run.result_head)
        task_run.admin_url = (
            admin_url("task_admin_taskrun_change", task_run.pk, current_app=site)
            if access.can_view_nodes else None
        )
        result_pk = results.get(task_run.task_id)
        task_run.task_result_url = (
            admin_url("django_celery_results_taskresult_change", result_pk, current_app=site)
            if result_pk else None
        )
        task_run.details_url = reverse(
            "admin:task_admin_workflowrun_node", args=[run.pk, task_run.pk], current_app=site
        )


def _read_spec(run: WorkflowRun) -> tuple[canvas.Node | None, str, str]:
    """The run's snapshot: its spec, its canvas as code, and why it cannot be read (if so)."""
    try:
        spec = canvas.from_dict(run.spec)
    except canvas.SpecError as exc:
        return None, "", f"{exc.path}: {translated(exc.message)}"
    return spec, to_python(spec), ""


def _refresh_config(run: WorkflowRun, page: int, with_states: bool, site: str) -> dict:
    """What ``run_refresh.js`` needs: where to poll, how often, the state labels."""
    return {
        "statusUrl": reverse(
            "admin:task_admin_workflowrun_status", args=[run.pk], current_app=site
        ) + f"?nodes={page}" + ("&states=1" if with_states else ""),
        "interval": int(get_config()["REFRESH_INTERVAL"]),
        "finished": run.is_finished,
        "labels": {str(k): str(v) for k, v in STATE_LABELS.items()},
        "progressStates": list(PROGRESS_STATES),
    }


def _details_labels() -> dict[str, str]:
    """The words ``run_details.js`` writes into a task run's details, in the page's language."""
    return {
        "exception": _("Exception"), "traceback": _("Traceback"), "result": _("Result"),
        "attempts": _("Attempts"), "state": _("state"), "worker": _("worker"),
        "started": _("started"), "finished": _("finished"), "reason": _("reason"),
        "next_eta": _("next attempt at"), "runtime": _("runtime"),
        "received": _("received"), "task_id": _("task id"),
        "loading": _("Loading…"), "failed": _("The details could not be loaded."),
        "graph_failed": _("The graph could not be drawn."),
    }


def run_page(run: WorkflowRun, asked_page: str | None, access: Access) -> dict[str, Any]:
    """The run page's context: its nodes (one page), progress, graph, canvas and refresh."""
    reconcile(run)
    site = access.site
    page, pages = node_page(run, asked_page)
    task_runs = _page_task_runs(run, page)
    _link(run, task_runs, access)
    counts = node_counts(run)
    spec, canvas_text, spec_error = _read_spec(run)
    total = run.total_nodes or sum(counts.values())
    graph_inline = spec is not None and total <= GRAPH_INLINE_MAX
    return {
        "queue_hints": operations.pending_queue_hints(run, task_runs, spec),
        "run": run,
        "run_alerts": run_page_alerts(run),
        "nodes": task_runs,
        "node_page": page,
        "node_pages": pages,
        "node_page_links": page_links(page, pages),
        "node_first": (page - 1) * NODE_PAGE + 1 if task_runs else 0,
        "node_last": (page - 1) * NODE_PAGE + len(task_runs),
        "graph": graph(run, spec, access) if graph_inline else "",
        "graph_url": (
            reverse("admin:task_admin_workflowrun_graph", args=[run.pk], current_app=site)
            if spec is not None and not graph_inline else ""
        ),
        "canvas_text": canvas_text,
        "spec_error": spec_error,
        "progress_segments": progress_segments(counts, total),
        "progress_total": total,
        "progress_finished": run.finished_nodes,
        "refresh_config": _refresh_config(run, page, graph_inline, site),
        "details_labels": _details_labels(),
        "nodes_url": (
            admin_url("task_admin_taskrun_changelist", current_app=site) + f"?run={run.pk}"
            if access.can_view_nodes else None
        ),
    }


def task_run_details(task_run: TaskRun) -> dict[str, Any]:
    """One task run's details for the run page (what the table leaves out), as JSON data."""
    attempts = [
        {
            "number": a.number,
            "state": a.state,
            "state_label": str(a.get_state_display()),
            "worker": a.worker,
            "started": local_time(a.started_at),
            "finished": local_time(a.finished_at),
            "reason": a.reason,
            "next_eta": local_time(a.next_eta),
            "traceback": a.traceback,
        }
        for a in task_run.attempts.order_by("number")
    ]
    return {
        "path": task_run.path,
        "task": task_run.task_name,
        "state": task_run.state,
        "state_label": str(task_run.get_state_display()),
        "task_id": task_run.task_id,
        "worker": task_run.worker,
        "received": local_time(task_run.received_at),
        "started": local_time(task_run.started_at),
        "finished": local_time(task_run.finished_at),
        "runtime": duration(task_run.runtime) or "—",
        "result": (
            pretty_json(task_run.result)
            if task_run.result is not None or task_run.state == NodeState.SUCCESS else ""
        ),
        "exception": task_run.exception,
        "traceback": task_run.traceback,
        "attempts": attempts,
    }


def run_duration(run: WorkflowRun) -> str:
    """How long the run took, or has taken so far ("—" before it started)."""
    if run.duration is not None:
        return duration(run.duration)
    if run.started_at and not run.is_finished:
        return _("%(elapsed)s so far") % {"elapsed": duration(timezone.now() - run.started_at)}
    return "—"


def run_times(run: WorkflowRun) -> dict[str, str]:
    """The run's own times, by the name of the run page's field that shows each."""
    return {
        "dispatched_display": local_time(run.dispatched_at),
        "started_display": local_time(run.started_at),
        "finished_display": local_time(run.finished_at),
        "duration_display": run_duration(run),
    }


def status(run: WorkflowRun, asked_page: str | None, *, with_states: bool) -> dict[str, Any]:
    """The run's status, its counts and one page of task runs (with every task run's state
    when ``with_states``, for the graph): what the run page's live refresh applies."""
    page, _pages = node_page(run, asked_page)
    rows = with_result_head(run.nodes.order_by("position")).values_list(
        "path", "state", "attempt_count", "worker", "started_at", "runtime", "result_head"
    )[(page - 1) * NODE_PAGE: page * NODE_PAGE]
    task_runs = [
        {
            "path": path,
            "state": state,
            "state_label": str(STATE_LABELS.get(state, state)),
            "attempts": attempt_count,
            "worker": worker,
            "started": local_time(started_at),
            "runtime": duration(runtime) or "—",
            "result": preview_from_json_text(head),
        }
        for path, state, attempt_count, worker, started_at, runtime, head in rows
    ]
    data = {
        "id": run.pk,
        "status": run.status,
        "status_label": str(run.get_status_display()),
        "finished": run.is_finished,
        "finished_nodes": run.finished_nodes,
        "total_nodes": run.total_nodes,
        "counts": node_counts(run),
        "times": run_times(run),
        "nodes": task_runs,
    }
    if with_states:
        data["states"] = dict(run.nodes.values_list("path", "state"))
    return data
