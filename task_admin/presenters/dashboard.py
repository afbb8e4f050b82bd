"""The admin index dashboard: recent runs, failures of the last 24 hours, the next scheduled
runs, for what the user may see. Plain data for ``task_admin/dashboard.html``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from task_admin import scheduling
from task_admin.links import admin_url
from task_admin.models import WorkflowRun, WorkflowSchedule
from task_admin.permissions import has_model_perm

# How many rows each part of the dashboard shows, and how many schedules it reads at most.
DASHBOARD_ROWS = 10
DASHBOARD_SCHEDULES_READ = 200


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
            url = admin_url("task_admin_workflowschedule_change", schedule.pk)
        elif can_view_task:
            url = admin_url("django_celery_beat_periodictask_change", task.pk)
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


def dashboard(user) -> dict[str, Any]:
    """Recent runs, failures of the last 24 hours, next scheduled runs (``show`` False for a
    user who may not see runs)."""
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
