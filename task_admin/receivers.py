"""Signal handlers: Celery's, recording what happens to every node of a run, and the one that
removes a deleted schedule's beat entry.

Celery's handlers run inside the worker for *every* task of the host project (the main process
for ``task_received``/``task_revoked`` and a lost pool child's failure; the pool child
otherwise). A task that task_admin did not send is recognised by its id (``canvas.build``
gives every task it sends a ``ta-`` prefixed id) and costs one string comparison: no database
statement, no buffer. Tracked tasks' events go to ``recorder``, which writes them in batches.
A handler never raises: a tracking problem is logged and the task goes on.
"""

from __future__ import annotations

import functools
import logging
import time

from celery import signals
from django.db.models.signals import post_delete

from task_admin import tracking
from task_admin.canvas.build import TASK_ID_PREFIX
from task_admin.recorder import recorder, start_buffering

logger = logging.getLogger(__name__)

# Per pool process: when each tracked task started, for its runtime.
_started: dict[str, float] = {}


def _never_raise(handler):
    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            handler(*args, **kwargs)
        except Exception:
            logger.exception("task_admin could not record %s", handler.__name__)

    return wrapper


def _ours(task_id) -> bool:
    # Inlined rather than canvas.build.is_tracked: this runs for every task of the project.
    return type(task_id) is str and task_id.startswith(TASK_ID_PREFIX)


def _attempt(request) -> int:
    return (getattr(request, "retries", 0) or 0) + 1


@_never_raise
def on_received(sender=None, request=None, **kwargs):
    task_id = getattr(request, "id", None)
    if not _ours(task_id):
        return
    recorder.add(tracking.Event(tracking.RECEIVED, task_id, worker=request.hostname or ""))


@_never_raise
def on_prerun(sender=None, task_id=None, task=None, **kwargs):
    if not _ours(task_id):
        return
    _started[task_id] = time.monotonic()
    request = task.request
    recorder.add(tracking.Event(
        tracking.STARTED, task_id, worker=request.hostname or "", attempt=_attempt(request)
    ))


def _runtime(task_id: str) -> float | None:
    start = _started.pop(task_id, None)
    return None if start is None else time.monotonic() - start


@_never_raise
def on_success(sender=None, result=None, **kwargs):
    request = sender.request
    task_id = request.id
    if not _ours(task_id):
        return
    stored, complete = tracking.json_result(result)
    recorder.add(tracking.Event(
        tracking.SUCCEEDED_EVENT, task_id, attempt=_attempt(request), result=stored,
        result_complete=complete, runtime=_runtime(task_id),
    ))


@_never_raise
def on_retry(sender=None, request=None, reason=None, einfo=None, **kwargs):
    task_id = getattr(request, "id", None)
    if not _ours(task_id):
        return
    exc = getattr(reason, "exc", None) or reason
    now = tracking._now()
    recorder.add(tracking.Event(
        tracking.RETRIED, task_id, at=now, attempt=_attempt(request),
        exception=(
            tracking.describe_exception(exc) if isinstance(exc, BaseException) else str(exc)
        ),
        traceback=einfo.traceback if einfo else "",
        next_eta=tracking.next_eta_of(getattr(reason, "when", None), now),
    ))
    _started.pop(task_id, None)


@_never_raise
def on_failure(sender=None, task_id=None, exception=None, einfo=None, **kwargs):
    if not _ours(task_id):
        return
    request = getattr(sender, "request", None)
    # In the main process (a lost pool child) the task's request is not this task's.
    attempt = _attempt(request) if getattr(request, "id", None) == task_id else 0
    recorder.add(tracking.Event(
        tracking.FAILED_EVENT, task_id, attempt=attempt,
        exception=tracking.describe_exception(exception),
        traceback=einfo.traceback if einfo else "",
        runtime=_runtime(task_id),
    ))


@_never_raise
def on_revoked(sender=None, request=None, terminated=False, expired=False, **kwargs):
    task_id = getattr(request, "id", None)
    if not _ours(task_id):
        return
    reason = "expired" if expired else "terminated" if terminated else "revoked"
    recorder.add(tracking.Event(tracking.REVOKED_EVENT, task_id, exception=reason))


def on_worker_init(sender=None, **kwargs):
    """In a worker (main and pool processes), events are buffered and written in batches."""
    start_buffering(main_process=True)
    recorder.prune = still_waiting
    warn_about_sqlite(getattr(sender, "concurrency", 1))


def warn_about_sqlite(processes) -> None:
    """Say it once at start-up: several pool processes writing to SQLite wait on each other."""
    from django.db import connection

    if connection.vendor == "sqlite" and (processes or 1) > 1:
        logger.warning(
            "task_admin: this worker runs %s processes on SQLite, which lets one writer in at a "
            "time: runs are recorded in batches that take the write lock first and retry, but "
            "use PostgreSQL in production (and on SQLite the OPTIONS of check task_admin.W004).",
            processes,
        )


def on_worker_process_init(sender=None, **kwargs):
    start_buffering()
    recorder.prune = None


def still_waiting(events: list[tracking.Event]) -> list[tracking.Event]:
    """The worker's main process writes "received" only for tasks still waiting in the worker
    (prefetched, or held for an ETA) when its batch is written: a task that has started since
    is recorded as started by its pool process, so its "received" would be read for nothing
    (measured: the main process is the consumer, and its spare time is Celery's throughput).
    """
    from celery.worker import state

    def waiting(task_id: str) -> bool:
        request = state.requests.get(task_id)
        return request is not None and request not in state.active_requests

    return [e for e in events if e.kind != tracking.RECEIVED or waiting(e.task_id)]


def on_worker_shutdown(sender=None, **kwargs):
    recorder.flush_at_exit()


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
    signals.worker_init.connect(on_worker_init, weak=False, dispatch_uid=f"{uid}.worker_init")
    signals.worker_process_init.connect(
        on_worker_process_init, weak=False, dispatch_uid=f"{uid}.worker_process_init"
    )
    signals.worker_shutdown.connect(
        on_worker_shutdown, weak=False, dispatch_uid=f"{uid}.worker_shutdown"
    )
