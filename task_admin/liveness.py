"""Nodes whose worker is gone: a whole worker killed (SIGKILL, OOM killer, a lost host) runs
no signal handler, and the result backend still says STARTED, so nothing else would ever
finish its run.

``reconcile(app)`` asks the workers that own unfinished nodes which of those tasks they still
hold (one ``inspect().query_task`` broadcast with a short timeout). A node whose worker does not
answer, or answers without it (a worker restarted under the same name), is settled:

- from the result backend when that knows how the task ended;
- else, for a task declared safe to repeat (``acks_late``), put back to pending: the broker
  delivers the message again once its visibility timeout has passed;
- else marked failed as lost, with the reason, through ``tracking`` (so the run finishes and
  what follows is skipped), stored as a failure in the result backend, and revoked so that a
  message the broker still returns is discarded.

Runs every ``RECONCILE_INTERVAL`` seconds as the periodic task ``task_admin.reconcile`` and as
``manage.py task_admin reconcile``. Nothing here assumes one worker or one host.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from celery import Celery
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from task_admin import registry, tracking
from task_admin.conf import get_config
from task_admin.models import NodeState, TaskRun, WorkflowRun

logger = logging.getLogger(__name__)

# States in which a node belongs to one worker. RETRY is not one: the retry is a new message
# any worker may take.
HELD = (NodeState.RECEIVED, NodeState.STARTED)
# Nodes looked at per pass: a huge backlog is worked through pass by pass.
BATCH = 1000


class BrokerUnreachable(Exception):
    """The workers could not be asked: nothing is decided without their answer."""


@dataclass
class Report:
    asked: list[str] = field(default_factory=list)  # workers
    silent: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # task ids marked failed
    requeued: list[str] = field(default_factory=list)  # task ids left to the broker
    settled: list[str] = field(default_factory=list)  # task ids taken from the result backend
    repaired: int = 0  # nodes of unfinished runs brought up to date from the result backend

    def __bool__(self) -> bool:
        return bool(self.lost or self.requeued or self.settled or self.repaired)


def reconcile(app: Celery | None = None) -> Report:
    """Settle the nodes whose worker no longer holds them; see the module's docstring."""
    config = get_config()
    report = Report()
    if config["LOST_AFTER"] is None:
        return report
    app = app or registry.get_app()
    since = timezone.now() - timedelta(seconds=config["LOST_AFTER"])
    # Only nodes quiet for a while: a node received a moment ago may not be listed yet.
    nodes = list(
        TaskRun.objects.filter(state__in=HELD)
        .exclude(worker="")
        .filter(Q(started_at__lt=since) | Q(started_at__isnull=True, received_at__lt=since))
        .order_by("pk")
        .values_list("task_id", "worker", "state", "task_name")[:BATCH]
    )
    if not nodes:
        return report
    report.asked = sorted({worker for _task, worker, _state, _name in nodes})
    held = _held_tasks(app, report.asked, [task for task, *_rest in nodes])
    silent = [worker for worker in report.asked if worker not in held]
    # Nothing is decided on one missed answer: a silent worker must miss a longer ping too,
    # and a task a worker did not list must be missing from a second answer (a busy machine
    # may be slow to reply; a task may have been reserved between our query and its answer).
    report.silent = _still_silent(app, silent) if silent else []
    missing = [
        task for task, worker, _state, _name in nodes
        if worker in held and task not in held[worker]
    ]
    if missing:
        again = _held_tasks(app, sorted({w for t, w, _s, _n in nodes if t in missing}), missing)
    for task_id, worker, state, name in nodes:
        if worker in report.silent:
            outcome = _settle(app, task_id, worker, state, name, silent=True)
        elif task_id in missing and worker in again and task_id not in again[worker]:
            outcome = _settle(app, task_id, worker, state, name, silent=False)
        else:
            continue
        getattr(report, outcome).append(task_id)
    if report.lost:
        try:
            app.control.revoke(report.lost)
        except Exception:  # the nodes are settled; a returned message may still run
            logger.warning("task_admin: could not revoke lost tasks", exc_info=True)
    if report:
        logger.warning(
            "task_admin: workers %s do not hold %d unfinished task(s): %d lost, %d back to the "
            "broker, %d from the result backend", report.silent or report.asked,
            len(report.lost) + len(report.requeued) + len(report.settled), len(report.lost),
            len(report.requeued), len(report.settled),
        )
    return report


def reconcile_all(app: Celery | None = None, *, runs: int = 100) -> Report:
    """What the periodic task does: settle lost workers' nodes, then bring up to date from
    the result backend the unfinished runs whose events never arrived (a database that was
    down inside the worker's handlers, a chord body the broker refused)."""
    from task_admin import services  # services starts work; this module only settles it

    app = app or registry.get_app()
    try:
        report = reconcile(app)
    except BrokerUnreachable:
        # The workers cannot be asked; the result backend may still be read.
        logger.warning("task_admin: could not ask the workers", exc_info=True)
        report = Report()
    since = timezone.now() - timedelta(seconds=get_config()["RECONCILE_AFTER"])
    stale = (
        WorkflowRun.objects.unfinished()
        .filter(created_at__lte=since)
        .order_by("created_at")[:runs]
    )
    for run in stale:
        try:
            report.repaired += services.reconcile_run(run, app=app)
        except Exception:  # a backend that cannot be read: the next pass tries again
            logger.warning("task_admin: could not reconcile run %s", run.pk, exc_info=True)
    return report


def _held_tasks(app: Celery, workers: list[str], task_ids: list[str]) -> dict[str, set[str]]:
    """``{worker: task ids it holds (active, reserved or scheduled)}`` for each worker that
    answered."""
    timeout = get_config()["WORKER_REPLY_TIMEOUT"]
    try:
        replies = app.control.inspect(destination=workers, timeout=timeout).query_task(
            *task_ids
        )
    except Exception as exc:  # kombu's OperationalError and friends
        raise BrokerUnreachable(str(exc)) from exc
    return {worker: set(reply or {}) for worker, reply in (replies or {}).items()}


def _still_silent(app: Celery, workers: list[str]) -> list[str]:
    timeout = 2 * get_config()["WORKER_REPLY_TIMEOUT"]
    try:
        replies = app.control.ping(destination=workers, timeout=timeout) or []
    except Exception as exc:
        raise BrokerUnreachable(str(exc)) from exc
    answered = {name for reply in replies for name in reply}
    return [worker for worker in workers if worker not in answered]


def _settle(app: Celery, task_id: str, worker: str, state: str, name: str, *, silent: bool) -> str:
    # The task may have ended just before its worker went: the result backend says how.
    try:
        result = app.AsyncResult(task_id)
        final = result.state in ("SUCCESS", "FAILURE", "REVOKED")
    except Exception:  # no result backend, or one that cannot be read now
        final = False
    if final:
        if result.state == "SUCCESS":
            tracking.succeeded(task_id, result.result, None)
        elif result.state == "FAILURE":
            exc = result.result
            text = tracking.describe_exception(exc) if isinstance(exc, BaseException) else str(exc)
            tracking.failed(task_id, text, result.traceback or "")
        else:
            tracking.revoked(task_id, "revoked")
        return "settled"

    why = (
        _("worker %(worker)s stopped answering") if silent
        else _("worker %(worker)s is running but no longer holds this task (restarted?)")
    ) % {"worker": worker}
    task = app.tasks.get(name)
    # Only a node still owned by that worker in that state: another worker may have it now.
    owned = TaskRun.objects.filter(task_id=task_id, worker=worker, state=state)
    if task is not None and getattr(task, "acks_late", False):
        owned.update(
            state=NodeState.PENDING,
            worker="",
            exception=_(
                "%(why)s; the task is safe to repeat (acks_late), so the broker delivers it "
                "again once its visibility timeout has passed."
            ) % {"why": why},
        )
        return "requeued"
    if not owned.exists():
        return "settled"
    message = _("WorkerLostError: %(why)s; the task was lost.") % {"why": why}
    tracking.failed(task_id, message, "")
    try:
        from celery.exceptions import WorkerLostError

        app.backend.mark_as_failure(task_id, WorkerLostError(message))
    except Exception:  # a disabled or unreachable result backend: the node says it all
        logger.debug("task_admin: could not store the loss of %s", task_id, exc_info=True)
    return "lost"
