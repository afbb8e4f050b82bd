"""Signal handlers: Celery's, recording what happens to every node of a run, and the one that
removes a deleted schedule's beat entry.

They run inside the worker (the main process for ``task_received``/``task_revoked`` and a lost
pool child's failure; the pool child otherwise), so a handler must never raise: a tracking
problem is logged and the task goes on. Tasks that are not part of a run match no row.
"""

from __future__ import annotations

import functools
import logging
import time

from celery import signals
from django.db import close_old_connections
from django.db.models.signals import post_delete

from task_admin import tracking

logger = logging.getLogger(__name__)

# Per pool process: when each task started, for its runtime.
_started: dict[str, float] = {}


def _never_raise(handler):
    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            handler(*args, **kwargs)
        except Exception:
            logger.exception("task_admin could not record %s", handler.__name__)

    return wrapper


def _request_of(sender):
    return getattr(sender, "request", None)


@_never_raise
def on_received(sender=None, request=None, **kwargs):
    # The worker's main process keeps its connection for long: drop it if it has gone bad.
    close_old_connections()
    tracking.received(request.id, request.hostname or "")


@_never_raise
def on_prerun(sender=None, task_id=None, task=None, **kwargs):
    _started[task_id] = time.monotonic()
    request = task.request
    tracking.started(task_id, request.hostname or "", (request.retries or 0) + 1)


def _runtime(task_id: str) -> float | None:
    start = _started.pop(task_id, None)
    return None if start is None else time.monotonic() - start


@_never_raise
def on_success(sender=None, result=None, **kwargs):
    task_id = sender.request.id
    tracking.succeeded(task_id, result, _runtime(task_id))


@_never_raise
def on_retry(sender=None, request=None, reason=None, einfo=None, **kwargs):
    exc = getattr(reason, "exc", None) or reason
    tracking.retried(
        request.id,
        (request.retries or 0) + 1,
        tracking.describe_exception(exc) if isinstance(exc, BaseException) else str(exc),
        getattr(reason, "when", None),
        einfo.traceback if einfo else "",
    )
    _started.pop(request.id, None)


@_never_raise
def on_failure(sender=None, task_id=None, exception=None, einfo=None, **kwargs):
    close_old_connections()
    tracking.failed(
        task_id,
        tracking.describe_exception(exception),
        einfo.traceback if einfo else "",
        _runtime(task_id),
    )


@_never_raise
def on_revoked(sender=None, request=None, terminated=False, expired=False, **kwargs):
    close_old_connections()
    reason = "expired" if expired else "terminated" if terminated else "revoked"
    tracking.revoked(request.id, reason)


def delete_periodic_task(sender, instance, **kwargs):
    """A deleted schedule (or the workflow it ran) takes its beat entry with it."""
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    # A queryset delete, not instance.delete(): the cascade may already have removed it.
    PeriodicTask.objects.filter(pk=instance.periodic_task_id).delete()
    PeriodicTasks.update_changed()


def connect() -> None:
    """Wire the handlers; called once from ``TaskAdminConfig.ready()``."""
    from task_admin.models import WorkflowSchedule

    uid = "task_admin"
    post_delete.connect(
        delete_periodic_task, sender=WorkflowSchedule, dispatch_uid=f"{uid}.schedule_deleted"
    )
    signals.task_received.connect(on_received, weak=False, dispatch_uid=f"{uid}.received")
    signals.task_prerun.connect(on_prerun, weak=False, dispatch_uid=f"{uid}.prerun")
    signals.task_success.connect(on_success, weak=False, dispatch_uid=f"{uid}.success")
    signals.task_retry.connect(on_retry, weak=False, dispatch_uid=f"{uid}.retry")
    signals.task_failure.connect(on_failure, weak=False, dispatch_uid=f"{uid}.failure")
    signals.task_revoked.connect(on_revoked, weak=False, dispatch_uid=f"{uid}.revoked")
