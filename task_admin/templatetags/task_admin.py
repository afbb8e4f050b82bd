"""Template helpers for the run pages and the admin index dashboard: ``{% load task_admin %}``.

The formatting helpers are plain functions too, so the admin's list columns render exactly what
the templates render.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext as _
from django_celery_beat.models import PeriodicTask

from task_admin import scheduling
from task_admin.conf import get_config
from task_admin.links import admin_url as _admin_url
from task_admin.models import NodeState, RunStatus, WorkflowRun, WorkflowSchedule
from task_admin.permissions import has_model_perm

logger = logging.getLogger(__name__)
register = template.Library()

STATE_LABELS = {**dict(RunStatus.choices), **dict(NodeState.choices)}

# How many rows each part of the dashboard shows, and how many schedules it reads at most.
DASHBOARD_ROWS = 10
DASHBOARD_SCHEDULES_READ = 200


# -- formatting ---------------------------------------------------------------------------


@register.simple_tag
def state_badge(state: str, label: str | None = None) -> SafeString:
    """A coloured badge for a run status or a node state (``.ta-state-<state|lower>``)."""
    label = label if label is not None else STATE_LABELS.get(state, state)
    # format_html, not a template: list pages draw a badge on every row.
    state = state or ""
    return format_html(
        '<span class="ta-state ta-state-{}" title="{}">{}</span>', state.lower(), state, label
    )


@register.filter
def duration(value: timedelta | float | None) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; empty for None."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 10:
        return _("%(seconds).2f s") % {"seconds": seconds}
    if seconds < 60:
        return _("%(seconds).1f s") % {"seconds": seconds}
    whole = int(seconds)
    if whole < 3600:
        return _("%(minutes)d min %(seconds)02d s") % {
            "minutes": whole // 60, "seconds": whole % 60,
        }
    return _("%(hours)d h %(minutes)02d min") % {
        "hours": whole // 3600, "minutes": whole % 3600 // 60,
    }


@register.filter
def time_ago(value: datetime | None) -> str:
    """"3 minutes ago", or "just now" under a minute (Django's timesince says "0 minutes")."""
    if not value:
        return ""
    if abs((timezone.now() - value).total_seconds()) < 60:
        return _("just now")
    return _("%(delta)s ago") % {"delta": timesince(value)}


@register.filter
def time_until(value: datetime | None) -> str:
    """"in 3 minutes", or "in less than a minute" (Django's timeuntil says "0 minutes")."""
    if not value:
        return ""
    if (value - timezone.now()).total_seconds() < 60:
        return _("in less than a minute")
    return _("in %(delta)s") % {"delta": timeuntil(value)}


def cut(text: str, limit: int | None = None) -> str:
    limit = get_config()["RESULT_PREVIEW_CHARS"] if limit is None else limit
    return text if len(text) <= limit else text[:limit] + "…"


@register.filter
def result_preview(value: Any) -> str:
    """A JSON value as one line of text, cut to ``RESULT_PREVIEW_CHARS`` (escape when shown)."""
    if value is None:
        return ""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        text = repr(value)
    return cut(text)


def preview_from_json_text(head: str | None) -> str:
    """A preview from the first characters of a stored JSON value (see ``admin.runs``)."""
    if head is None:
        return ""
    limit = get_config()["RESULT_PREVIEW_CHARS"]
    if len(head) <= limit:
        try:  # whole: normalise the database's spelling (escaped unicode, spaces)
            return result_preview(json.loads(head))
        except ValueError:
            return head
    return cut(head, limit)


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON text (escape when shown)."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


# -- the admin index dashboard ------------------------------------------------------------


def _can_view_runs(user) -> bool:
    return bool(
        user
        and user.is_active
        and user.is_staff
        and (
            has_model_perm(user, "view", WorkflowRun)
            or has_model_perm(user, "change", WorkflowRun)
        )
    )


def next_scheduled(user, limit: int = DASHBOARD_ROWS) -> list[dict[str, Any]]:
    """The enabled beat entries that run workflows, soonest first (two queries at most)."""
    now = timezone.now()
    rows = (
        PeriodicTask.objects.filter(task=scheduling.RUN_WORKFLOW_TASK, enabled=True)
        .filter(Q(expires__isnull=True) | Q(expires__gt=now))
        .select_related(
            "interval", "crontab", "solar", "clocked", "workflow_schedule__workflow"
        )
        .order_by("pk")[:DASHBOARD_SCHEDULES_READ]
    )
    can_view_schedule = has_model_perm(user, "view", WorkflowSchedule) or has_model_perm(
        user, "change", WorkflowSchedule
    )
    can_view_task = has_model_perm(user, "view", PeriodicTask) or has_model_perm(
        user, "change", PeriodicTask
    )
    out = []
    for task in rows:
        schedule = getattr(task, "workflow_schedule", None)
        if schedule is not None and can_view_schedule:
            url = _admin_url("task_admin_workflowschedule_change", schedule.pk)
        elif can_view_task:
            url = _admin_url("django_celery_beat_periodictask_change", task.pk)
        else:
            url = None
        # The schedule's own record of its last fire: beat saves last_run_at only now and then.
        fired = schedule.last_fired_at if schedule is not None else None
        last = max((t for t in (fired, task.last_run_at) if t is not None), default=None)
        out.append(
            {
                "name": task.name,
                "workflow": schedule.workflow.name if schedule is not None else "",
                "schedule": str(task.scheduler) if task.scheduler else "",
                "next_run": scheduling.next_run(task, now, last_fired=fired),
                "last_run_at": last,
                "url": url,
            }
        )
    far = datetime.max.replace(tzinfo=timezone.get_current_timezone())
    out.sort(key=lambda row: row["next_run"] or far)
    return out[:limit]


@register.inclusion_tag("task_admin/dashboard.html", takes_context=True)
def task_admin_dashboard(context) -> dict[str, Any]:
    """Recent runs, failures of the last 24 hours, next scheduled runs: for the admin index."""
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    if not _can_view_runs(user):
        return {"show": False}
    now = timezone.now()
    since = now - timedelta(hours=24)
    columns = (
        "pk", "workflow_name", "status", "trigger", "created_at", "started_at", "finished_at",
        "finished_nodes", "total_nodes",
    )
    recent = list(WorkflowRun.objects.only(*columns).order_by("-created_at", "-id")[
        :DASHBOARD_ROWS
    ])
    failures = WorkflowRun.objects.failed().filter(finished_at__gte=since)
    failure_count = failures.count()
    failed = (
        list(failures.only(*columns, "error").order_by("-finished_at")[:DASHBOARD_ROWS])
        if failure_count
        else []
    )
    return {
        "show": True,
        "recent": recent,
        "failure_count": failure_count,
        "failures": failed,
        "scheduled": next_scheduled(user),
        "since": since,
        "now": now,
    }
