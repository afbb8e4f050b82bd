"""Retention: finished runs older than ``TASK_ADMIN["RETENTION_DAYS"]`` are deleted in batches.

Each batch is its own short transaction over at most ``batch_size`` runs, so pruning a backlog
of millions never holds long locks or a long transaction; the web and the workers go on between
batches. Unfinished runs are never pruned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.translation import ngettext

from task_admin.conf import get_config
from task_admin.models import RunStatus, ScheduleFiring, TaskAttempt, TaskRun, WorkflowRun
from task_admin.models.runs import FINISHED_RUN

logger = logging.getLogger(__name__)

# Counted up to this many per status on admin pages, so a backlog never costs a full count.
COUNT_LIMIT = 10_000
# Claims of due times are only needed while a second beat might still send the same one.
FIRINGS_KEPT = timedelta(days=1)


def policy() -> dict[str, int]:
    """Days to keep finished runs, by status; a status not listed is kept for ever."""
    days = get_config()["RETENTION_DAYS"] or {}
    return {
        status: int(n) for status, n in days.items() if status in FINISHED_RUN and n is not None
    }


def _due(status: str, days: int, now: datetime):
    return WorkflowRun.objects.filter(
        status=status, finished_at__lt=now - timedelta(days=days)
    )


def due_counts(now: datetime | None = None, *, limit: int | None = COUNT_LIMIT) -> dict[str, int]:
    """How many runs of each status are older than their retention, in one query; with a
    ``limit``, only that many runs in all are counted (a backlog costs no more)."""
    now = now or timezone.now()
    rules = policy()
    if not rules:
        return {}
    due = Q()
    for status, days in rules.items():
        due |= Q(status=status, finished_at__lt=now - timedelta(days=days))
    runs = WorkflowRun.objects.filter(due).order_by()
    if limit is not None:
        runs = WorkflowRun.objects.filter(pk__in=runs.values("pk")[:limit]).order_by()
    counts = dict.fromkeys(rules, 0)
    counts.update(runs.values_list("status").annotate(n=Count("pk")))
    return counts


def prune(
    *,
    batch_size: int = 500,
    now: datetime | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Delete the runs older than their retention, ``batch_size`` at a time; counts by status."""
    now = now or timezone.now()
    deleted: dict[str, int] = {}
    for status, days in policy().items():
        total = 0
        while True:
            ids = list(_due(status, days, now).order_by("pk").values_list("pk", flat=True)[
                :batch_size
            ])
            if not ids:
                break
            total += _delete_runs(ids)
            if progress:
                progress(status, total)
        deleted[status] = total
    prune_firings(now)
    if any(deleted.values()):
        logger.info("task_admin: pruned runs %s", deleted)
    return deleted


def _delete_runs(ids: list[int]) -> int:
    """Delete the runs with these ids and their task runs and attempts, in one transaction.

    Plain DELETEs by key rather than ``QuerySet.delete()``: Django's collector would load every
    task run (results included) to follow its relations; the links into these rows from runs
    that stay are cleared first.
    """
    with transaction.atomic():
        TaskAttempt.objects.filter(task_run__run_id__in=ids).delete()  # a fast delete
        TaskRun.objects.filter(reused_from__run_id__in=ids).exclude(run_id__in=ids).update(
            reused_from=None
        )
        TaskRun.objects.filter(run_id__in=ids).update(reused_from=None)
        WorkflowRun.objects.filter(rerun_of_id__in=ids).exclude(pk__in=ids).update(rerun_of=None)
        ScheduleFiring.objects.filter(run_id__in=ids).update(run=None)
        nodes = TaskRun.objects.filter(run_id__in=ids)
        nodes._raw_delete(nodes.db)
        runs = WorkflowRun.objects.filter(pk__in=ids)
        return runs._raw_delete(runs.db)


def prune_firings(now: datetime) -> int:
    """Forget old due-time claims, keeping each schedule's latest (interval due times count
    from it)."""
    latest = ScheduleFiring.objects.values("schedule").annotate(last=Max("pk")).values("last")
    old = ScheduleFiring.objects.filter(fired_at__lt=now - FIRINGS_KEPT).exclude(pk__in=latest)
    return old._raw_delete(old.db)


def describe_policy() -> str:
    """The policy in words for the admin, e.g. "succeeded: 30 days, failed: 90 days"."""
    labels = dict(RunStatus.choices)
    return ", ".join(
        ngettext("%(status)s: %(days)d day", "%(status)s: %(days)d days", days)
        % {"status": labels[status], "days": days}
        for status, days in sorted(policy().items())
    )
