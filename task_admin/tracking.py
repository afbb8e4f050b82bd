"""Record what happens to each leaf task of a run.

Every change is a guarded ``UPDATE ... WHERE task_id = ... AND state IN (...)`` so events that
arrive late or twice (a worker's signal and the reconciler, say) cannot move a node backwards.
Called by the Celery signal handlers in ``receivers`` and by ``services.reconcile_run``.
"""

from __future__ import annotations

import json
import traceback as tb
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, F
from django.db.models.functions import Coalesce
from django.utils import timezone

from task_admin import canvas
from task_admin.canvas.progress import blocked_leaves
from task_admin.conf import get_config
from task_admin.models import NodeState, RunStatus, TaskAttempt, TaskRun, WorkflowRun
from task_admin.models.runs import FINISHED_NODE, FINISHED_RUN
from task_admin.signals import run_finished

S = NodeState
UNFINISHED = (S.PENDING, S.RECEIVED, S.STARTED, S.RETRY)
FAILED_NODE = (S.FAILURE, S.REVOKED, S.SKIPPED, S.NOT_SENT)


def _now() -> datetime:
    return timezone.now()


def json_result(value: Any) -> tuple[Any, bool]:
    """The value as stored and whether it is whole: JSON as is when small enough, else a
    shortened repr."""
    limit = get_config()["MAX_VALUE_BYTES"]
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return {"repr": repr(value)[:limit]}, False
    if size > limit:
        return {"repr": repr(value)[:limit], "truncated": True}, False
    return value, True


def received(task_id: str, worker: str) -> None:
    TaskRun.objects.filter(task_id=task_id, state__in=(S.PENDING, S.RETRY)).update(
        state=S.RECEIVED, received_at=Coalesce("received_at", _now()), worker=worker
    )


def started(task_id: str, worker: str, attempt: int) -> None:
    now = _now()
    changed = TaskRun.objects.filter(task_id=task_id, state__in=UNFINISHED).update(
        state=S.STARTED,
        started_at=Coalesce("started_at", now),
        attempts=attempt,
        worker=worker,
    )
    if not changed:
        return
    task_run = TaskRun.objects.only("pk", "run_id").get(task_id=task_id)
    TaskAttempt.objects.update_or_create(
        task_run=task_run,
        number=attempt,
        defaults={"state": S.STARTED, "worker": worker, "started_at": now},
    )
    WorkflowRun.objects.filter(pk=task_run.run_id, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, started_at=now
    )


def retried(task_id: str, attempt: int, reason: str, when: Any, traceback: str) -> None:
    now = _now()
    if isinstance(when, int | float):
        next_eta = now + timedelta(seconds=when)
    elif isinstance(when, datetime):
        next_eta = when
    elif isinstance(when, str):
        next_eta = datetime.fromisoformat(when)
    else:
        next_eta = None
    TaskRun.objects.filter(task_id=task_id, state__in=UNFINISHED).update(
        state=S.RETRY, exception=reason, traceback=traceback
    )
    TaskAttempt.objects.filter(task_run__task_id=task_id, number=attempt).update(
        state=S.RETRY, finished_at=now, reason=reason, next_eta=next_eta, traceback=traceback
    )


def succeeded(task_id: str, result: Any, runtime: float | None) -> None:
    now = _now()
    stored, complete = json_result(result)
    changed = TaskRun.objects.filter(task_id=task_id, state__in=UNFINISHED).update(
        state=S.SUCCESS, result=stored, result_complete=complete, runtime=runtime,
        finished_at=now, exception="", traceback="",
    )
    TaskAttempt.objects.filter(task_run__task_id=task_id, state=S.STARTED).update(
        state=S.SUCCESS, finished_at=now
    )
    if changed:
        _node_finished(task_id, S.SUCCESS)


def failed(task_id: str, exception: str, traceback: str, runtime: float | None = None) -> None:
    now = _now()
    changed = TaskRun.objects.filter(task_id=task_id, state__in=UNFINISHED).update(
        state=S.FAILURE, exception=exception, traceback=traceback, runtime=runtime,
        finished_at=now,
    )
    TaskAttempt.objects.filter(task_run__task_id=task_id, state=S.STARTED).update(
        state=S.FAILURE, finished_at=now, reason=exception, traceback=traceback
    )
    if changed:
        _node_finished(task_id, S.FAILURE)


def revoked(task_id: str, reason: str = "") -> None:
    changed = TaskRun.objects.filter(task_id=task_id, state__in=UNFINISHED).update(
        state=S.REVOKED, finished_at=_now(), exception=reason
    )
    if changed:
        _node_finished(task_id, S.REVOKED)


def describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def format_traceback(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def _node_finished(task_id: str, state: str) -> None:
    run_id = TaskRun.objects.filter(task_id=task_id).values_list("run_id", flat=True).first()
    WorkflowRun.objects.filter(pk=run_id).update(finished_nodes=F("finished_nodes") + 1)
    if state != S.SUCCESS:
        skip_blocked(run_id)
    finish_if_done(run_id)


def skip_blocked(run_id: int) -> int:
    """Mark the nodes that an earlier failure keeps from ever running as skipped."""
    run = WorkflowRun.objects.only("spec").get(pk=run_id)
    spec = canvas.from_dict(run.spec)
    failed_paths = set(
        TaskRun.objects.filter(run_id=run_id, state__in=FAILED_NODE).values_list("path", flat=True)
    )
    blocked = blocked_leaves(spec, failed_paths)
    if not blocked:
        return 0
    with transaction.atomic():
        skipped = TaskRun.objects.filter(
            run_id=run_id, path__in=blocked, state=S.PENDING
        ).update(state=S.SKIPPED, finished_at=_now())
        if skipped:
            WorkflowRun.objects.filter(pk=run_id).update(
                finished_nodes=F("finished_nodes") + skipped
            )
    return skipped


def derive_status(counts: dict[str, int]) -> str:
    """A run's status from how many of its nodes are in each state."""
    total = sum(counts.values())
    done = sum(counts.get(s, 0) for s in FINISHED_NODE)
    if counts.get(S.NOT_SENT):
        return RunStatus.DISPATCH_FAILED
    if done < total:
        return RunStatus.PENDING if counts.get(S.PENDING, 0) == total else RunStatus.RUNNING
    if counts.get(S.SUCCESS, 0) == total:
        return RunStatus.SUCCEEDED
    if counts.get(S.REVOKED) and not counts.get(S.FAILURE):
        return RunStatus.REVOKED
    return RunStatus.PARTIALLY_FAILED if counts.get(S.SUCCESS) else RunStatus.FAILED


def node_counts(run_id: int) -> dict[str, int]:
    rows = TaskRun.objects.filter(run_id=run_id).values("state").annotate(n=Count("pk"))
    return {row["state"]: row["n"] for row in rows}


def finish_if_done(run_id: int) -> str | None:
    run = WorkflowRun.objects.only("total_nodes", "finished_nodes", "status").get(pk=run_id)
    if run.status in FINISHED_RUN or run.finished_nodes < run.total_nodes:
        return None
    status = derive_status(node_counts(run_id))
    if status in FINISHED_RUN:
        updated = WorkflowRun.objects.filter(pk=run_id).exclude(status__in=FINISHED_RUN).update(
            status=status,
            finished_at=_now(),
            started_at=Coalesce("started_at", "dispatched_at"),
        )
        if updated:  # only the one process whose UPDATE finished the run announces it
            announce_finished([run_id])
    return status


def announce_finished(run_ids: list[int]) -> None:
    """Send ``signals.run_finished`` for these runs once the current transaction commits."""
    if run_ids and run_finished.has_listeners(WorkflowRun):
        transaction.on_commit(lambda: _send_finished(run_ids))


def _send_finished(run_ids: list[int]) -> None:
    for run in WorkflowRun.objects.filter(pk__in=run_ids).defer("spec", "overrides"):
        run_finished.send(sender=WorkflowRun, run=run)


