"""Record what happens to each leaf task of a run: state changes applied in batches.

An ``Event`` is one thing Celery told us about one task (received, started, retried, succeeded,
failed, revoked). ``apply(events)`` writes any number of them in one transaction with
set-based statements: lock the runs concerned, read their nodes, one ``UPDATE`` of the nodes
that changed, then one ``UPDATE`` of the runs that can have changed, which recounts them
(``finished_nodes`` is counted from the nodes, never incremented, so there is no hot counter
row) and finishes those whose every node succeeded (a run with a failure gets its final status
from its canvas). A node only moves forward: a late or repeated event (a worker's signal and
the reconciler, say, or a "received" arriving after a retry) changes nothing, and an event of
an earlier attempt never overwrites a later one.

The worker's signal handlers (``receivers``) buffer events and call ``apply`` through
``recorder``; the reconciler (``services.reconcile_run``) and tests call the one-event helpers
below, which apply at once.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from task_admin import canvas
from task_admin.canvas.progress import FAILED, PARTIAL, REVOKED, SUCCEEDED, blocked_leaves, outcome
from task_admin.conf import get_config
from task_admin.models import NodeState, RunStatus, TaskAttempt, TaskRun, WorkflowRun, batches
from task_admin.models.runs import FAILED_NODE, FINISHED_NODE, FINISHED_RUN, UNFINISHED_NODE
from task_admin.signals import run_finished

logger = logging.getLogger(__name__)
S = NodeState

RECEIVED, STARTED, RETRIED, SUCCEEDED_EVENT, FAILED_EVENT, REVOKED_EVENT = (
    "received", "started", "retried", "succeeded", "failed", "revoked",
)
FINAL_EVENTS = {SUCCEEDED_EVENT: S.SUCCESS, FAILED_EVENT: S.FAILURE, REVOKED_EVENT: S.REVOKED}

def _now() -> datetime:
    return timezone.now()


@dataclass
class Event:
    """One state change of one task, as the worker saw it (``at`` is when)."""

    kind: str
    task_id: str
    at: datetime = field(default_factory=_now)
    attempt: int = 0  # 1 for the first execution; 0 when unknown (received, revoked)
    worker: str = ""
    result: Any = None
    result_complete: bool = True
    runtime: float | None = None
    exception: str = ""
    traceback: str = ""
    next_eta: datetime | None = None


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


def next_eta_of(when: Any, now: datetime) -> datetime | None:
    """When Celery will try again, from what ``Retry.when`` holds (seconds, a datetime, ISO)."""
    if isinstance(when, bool):
        return None
    if isinstance(when, int | float):
        return now + timedelta(seconds=when)
    if isinstance(when, datetime):
        return when
    if isinstance(when, str):
        try:
            return datetime.fromisoformat(when)
        except ValueError:
            return None
    return None


# -- one event at a time (the reconciler, tests) -------------------------------------------


def received(task_id: str, worker: str) -> None:
    apply([Event(RECEIVED, task_id, worker=worker)])


def started(task_id: str, worker: str, attempt: int) -> None:
    apply([Event(STARTED, task_id, worker=worker, attempt=attempt)])


def retried(task_id: str, attempt: int, reason: str, when: Any, traceback: str) -> None:
    now = _now()
    apply([Event(RETRIED, task_id, at=now, attempt=attempt, exception=reason,
                 traceback=traceback, next_eta=next_eta_of(when, now))])


def succeeded(task_id: str, result: Any, runtime: float | None) -> None:
    stored, complete = json_result(result)
    apply([Event(SUCCEEDED_EVENT, task_id, result=stored, result_complete=complete,
                 runtime=runtime)])


def failed(task_id: str, exception: str, traceback: str, runtime: float | None = None) -> None:
    apply([Event(FAILED_EVENT, task_id, exception=exception, traceback=traceback,
                 runtime=runtime)])


def revoked(task_id: str, reason: str = "") -> None:
    apply([Event(REVOKED_EVENT, task_id, exception=reason)])


def describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# -- the batch writer -----------------------------------------------------------------------


@dataclass
class _Attempt:
    number: int
    state: str
    worker: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    next_eta: datetime | None = None
    traceback: str = ""


def _fold(task_run: TaskRun, events: list[Event], attempts: dict[int, _Attempt]) -> bool:
    """Apply ``events`` (in the order they happened) to ``task_run`` in memory; whether it
    changed.

    ``attempts`` collects what the events say about each attempt (written only for nodes that
    were retried: a task that ran once is fully described by its TaskRun row).
    """
    changed = False
    for event in events:
        current = task_run.attempt_count or 0
        if task_run.state not in UNFINISHED_NODE:
            break  # finished nodes never move again
        if event.kind == RECEIVED:
            # Only a node nobody has picked up yet becomes "received": after a retry the node
            # stays "retrying" until the next attempt starts (its received event arrives while
            # the countdown runs).
            if task_run.state == S.PENDING:
                task_run.state = S.RECEIVED
                task_run.received_at = task_run.received_at or event.at
                task_run.worker = event.worker or task_run.worker
                changed = True
        elif event.kind == STARTED:
            attempt = attempts.setdefault(event.attempt, _Attempt(event.attempt, S.STARTED))
            attempt.worker, attempt.started_at = event.worker, event.at
            if event.attempt >= current:
                task_run.state = S.STARTED
                task_run.started_at = task_run.started_at or event.at
                task_run.attempt_count = event.attempt
                task_run.worker = event.worker or task_run.worker
                changed = True
        elif event.kind == RETRIED:
            attempt = attempts.setdefault(event.attempt, _Attempt(event.attempt, S.RETRY))
            attempt.state, attempt.finished_at = S.RETRY, event.at
            attempt.reason, attempt.next_eta = event.exception, event.next_eta
            attempt.traceback = event.traceback
            if event.attempt >= current:  # an earlier attempt's retry never moves a later one
                task_run.state = S.RETRY
                task_run.attempt_count = event.attempt
                task_run.exception, task_run.traceback = event.exception, event.traceback
                changed = True
        else:
            state = FINAL_EVENTS[event.kind]
            if event.attempt:
                attempt = attempts.setdefault(event.attempt, _Attempt(event.attempt, state))
                attempt.state, attempt.finished_at = state, event.at
                if state == S.FAILURE:
                    attempt.reason, attempt.traceback = event.exception, event.traceback
                task_run.attempt_count = max(current, event.attempt)
            task_run.state = state
            task_run.finished_at = event.at
            if event.runtime is not None:
                task_run.runtime = event.runtime
            if state == S.SUCCESS:
                task_run.result, task_run.result_complete = event.result, event.result_complete
                task_run.exception = task_run.traceback = ""
            else:
                task_run.exception, task_run.traceback = event.exception, event.traceback
            changed = True
    return changed


def _write_attempts(nodes: dict[int, TaskRun], found: dict[int, dict[int, _Attempt]]) -> None:
    """Upsert the attempt rows of the nodes that were retried (a rare path: one read, one
    write for the whole batch)."""
    retried_nodes = {
        pk: attempts for pk, attempts in found.items()
        if attempts and (max(attempts) > 1 or any(a.state == S.RETRY for a in attempts.values()))
    }
    if not retried_nodes:
        return
    existing = {
        (row.task_run_id, row.number): row
        for row in TaskAttempt.objects.filter(task_run_id__in=list(retried_nodes))
    }
    rows = []
    for pk, attempts in retried_nodes.items():
        for number, seen in attempts.items():
            if number < 1:
                continue
            row = existing.get((pk, number)) or TaskAttempt(task_run_id=pk, number=number)
            if row.state in FINISHED_NODE or (row.state == S.RETRY and seen.state == S.STARTED):
                continue  # already final for this attempt: a late "started" changes nothing
            row.state = seen.state
            row.worker = seen.worker or row.worker
            row.started_at = row.started_at or seen.started_at
            if number == 1 and row.started_at is None:
                row.started_at = nodes[pk].started_at  # the node's first start is attempt 1's
            row.finished_at = seen.finished_at or row.finished_at
            row.reason = seen.reason or row.reason
            row.next_eta = seen.next_eta or row.next_eta
            row.traceback = seen.traceback or row.traceback
            rows.append(row)
    TaskAttempt.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["task_run", "number"],
        update_fields=["state", "worker", "started_at", "finished_at", "reason", "next_eta",
                       "traceback"],
    )


def apply(events: Iterable[Event]) -> int:
    """Write ``events`` (in the order they happened) in one transaction; how many nodes changed.

    Events of tasks that are not part of a run are ignored. Runs whose last node has just
    finished get their final status and send ``signals.run_finished`` after the commit.
    Statements per batch, whatever its size: lock the runs, read the nodes, write the nodes,
    then recount and finish the runs in one (``batches.settle``; not at all when no node
    finished and no run started).
    """
    by_task: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_task[event.task_id].append(event)
    if not by_task:
        return 0
    task_ids = list(by_task)
    with transaction.atomic():
        # Runs first, in id order: every writer of a run's nodes takes its run's lock before
        # the nodes', so two batches never deadlock and a recount sees every committed node.
        statuses = batches.lock_runs_of(task_ids)
        if not statuses:
            return 0
        nodes = batches.read_nodes(task_ids)
        changed, attempts, started_runs, failed_runs, runs = [], {}, set(), set(), set()
        for task_run in nodes:
            seen: dict[int, _Attempt] = {}
            before = task_run.state
            if _fold(task_run, by_task[task_run.task_id], seen):
                changed.append(task_run)
                if (before == S.PENDING and task_run.state not in (S.PENDING, S.REVOKED)
                        and statuses.get(task_run.run_id) == RunStatus.PENDING):
                    started_runs.add(task_run.run_id)
                if task_run.state in FAILED_NODE:
                    failed_runs.add(task_run.run_id)
                if task_run.state in FINISHED_NODE:
                    runs.add(task_run.run_id)
            if seen:
                attempts[task_run.pk] = seen
        batches.write_nodes(changed)
        _write_attempts({n.pk: n for n in nodes}, attempts)
        # Only a run that has just started or has a node that has just finished can change: a
        # node that was received, started or retried in a running run leaves its run as it is.
        runs |= started_runs
        if runs:
            refresh_runs(runs, started=started_runs, failed=failed_runs, locked=True)
    return len(changed)


def _lock_runs(run_ids) -> list[int]:
    """Lock the runs (a list of ids or a subquery of ``run_id``) in id order; their ids."""
    return list(
        WorkflowRun.objects.select_for_update().filter(pk__in=run_ids).order_by("pk")
        .values_list("pk", flat=True)
    )


def refresh_runs(
    run_ids: Iterable[int], *, started: Iterable[int] = (), failed: Iterable[int] = (),
    locked: bool = False,
) -> list[int]:
    """Recount the runs' finished nodes and finish those that are done; the runs finished.

    Call after the nodes changed. The runs' rows are locked first (unless the caller already
    holds them), so two processes recounting the same run see each other's committed nodes
    (the last to count sees all), and a run is finished, and its signal sent, exactly once.
    """
    run_ids = sorted(set(run_ids))
    if not run_ids:
        return []
    now = _now()
    # No savepoint: inside a batch (``locked``) the batch's own transaction is enough, and a
    # savepoint is two more round trips per batch.
    with transaction.atomic(savepoint=False):
        if not locked:
            _lock_runs(run_ids)
        for run_id in sorted(set(failed)):
            skip_blocked(run_id)
        # Most runs end with every node succeeded: recounted and finished in one statement,
        # no canvas read.
        succeeded, done = batches.settle(run_ids, started, now)
        if succeeded:
            transaction.on_commit(lambda: send_finished([], runs=succeeded))
        ended = [run.pk for run in succeeded]
        return sorted(ended + _finish_done(done, now))


def _finish_done(run_ids: list[int], now: datetime) -> list[int]:
    """Finish the runs whose nodes have all finished, not all succeeded: their status is read
    from their canvas (``final_status``)."""
    if not run_ids:
        return []
    done = list(
        WorkflowRun.objects.filter(pk__in=run_ids, total_nodes__lte=F("finished_nodes"))
        .unfinished()
        .values_list("pk", "spec")
    )  # the runs are locked: still as ``batches.settle`` left them
    if not done:
        return []
    states: dict[int, dict[str, str]] = defaultdict(dict)
    for run_id, path, state in TaskRun.objects.filter(run_id__in=[pk for pk, _ in done]) \
            .values_list("run_id", "path", "state"):
        states[run_id][path] = state
    by_status: dict[str, list[int]] = defaultdict(list)
    for run_id, spec in done:
        status = final_status(spec, states[run_id])
        if status in FINISHED_RUN:
            by_status[status].append(run_id)
    finished = []
    # The runs are locked by the caller (refresh_runs): what the SELECT above saw unfinished is
    # finished here, by this transaction only; one UPDATE per final status.
    for status, ids in by_status.items():
        WorkflowRun.objects.filter(pk__in=ids).exclude(status__in=FINISHED_RUN).update(
            status=status,
            finished_at=now,
            started_at=Coalesce("started_at", "dispatched_at", Value(now)),
        )
        finished += ids
    if finished:
        transaction.on_commit(lambda: send_finished(finished))
    return finished


def send_finished(run_ids: list[int], *, runs: list[WorkflowRun] = ()) -> None:
    """Send ``signals.run_finished`` for runs that have just reached a final status (call
    after the commit that finished them, exactly once per run): ``runs`` as they are, the
    runs of ``run_ids`` read first (without their canvas and overrides)."""
    if not (run_ids or runs) or not run_finished.has_listeners(WorkflowRun):
        return
    if run_ids:
        runs = [*runs, *WorkflowRun.objects.filter(pk__in=run_ids).defer("spec", "overrides")]
    for run in runs:
        # A listener's error must not undo or stop the recording: logged, not raised.
        for receiver, error in run_finished.send_robust(sender=WorkflowRun, run=run):
            if isinstance(error, Exception):
                logger.error("task_admin: run_finished receiver %r failed for run %s: %s",
                             receiver, run.pk, error, exc_info=error)


def skip_blocked(run_id: int) -> int:
    """Mark the nodes that an earlier failure keeps from ever running as skipped."""
    run = WorkflowRun.objects.only("spec").get(pk=run_id)
    spec = canvas.from_dict(run.spec)
    failed_paths = set(
        TaskRun.objects.filter(run_id=run_id).failed().values_list("path", flat=True)
    )
    blocked = blocked_leaves(spec, failed_paths)
    if not blocked:
        return 0
    return TaskRun.objects.filter(run_id=run_id, path__in=blocked, state=S.PENDING).update(
        state=S.SKIPPED, finished_at=_now()
    )


def derive_status(counts: dict[str, int]) -> str:
    """A run's status from how many of its nodes are in each state (no canvas at hand)."""
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


OUTCOME_STATUS = {
    SUCCEEDED: RunStatus.SUCCEEDED,
    PARTIAL: RunStatus.PARTIALLY_FAILED,
    FAILED: RunStatus.FAILED,
    REVOKED: RunStatus.REVOKED,
}


def final_status(spec: dict | None, states: dict[str, str]) -> str:
    """A run's status from its canvas and each leaf's state.

    The rule: a run failed when its final result could not be produced (a chain's last step,
    a chord's body); a group whose members partly succeeded "partially failed"; revoked when
    something was revoked and nothing failed. Without a readable canvas, counts decide.
    """
    counts: dict[str, int] = defaultdict(int)
    for state in states.values():
        counts[state] += 1
    status = derive_status(counts)
    if status not in FINISHED_RUN or status in (RunStatus.DISPATCH_FAILED, RunStatus.SUCCEEDED):
        return status
    if status == RunStatus.REVOKED:
        return status
    try:
        root = canvas.from_dict(spec)
    except Exception:  # a snapshot we cannot read: the counts are all we have
        return status
    status = OUTCOME_STATUS[outcome(root, states)]
    # Not every node succeeded (counts said so) even if the final result was produced.
    return RunStatus.PARTIALLY_FAILED if status == RunStatus.SUCCEEDED else status


def node_counts(run_id: int) -> dict[str, int]:
    rows = TaskRun.objects.filter(run_id=run_id).values("state").annotate(n=Count("pk"))
    return {row["state"]: row["n"] for row in rows}


def finish_if_done(run_id: int) -> str | None:
    """Recount one run and finish it when every node has finished; its status then."""
    refresh_runs([run_id])
    status = WorkflowRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    return status if status in FINISHED_RUN else None
