"""Schedules: keep a WorkflowSchedule and its beat PeriodicTask in step, and fire one.

Beat sends ``task_admin.run_workflow(schedule=<pk>)`` (``task_admin.tasks``); the worker that
receives it calls ``fire``, which applies the overlap policy and starts the run through
``services.run_workflow`` like any other trigger.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django_celery_beat.models import PeriodicTask

from task_admin import services
from task_admin.conf import get_config
from task_admin.models import (
    Overlap,
    RunStatus,
    ScheduleFiring,
    Trigger,
    WorkflowRun,
    WorkflowSchedule,
)

logger = logging.getLogger(__name__)

RUN_WORKFLOW_TASK = "task_admin.run_workflow"
# What the admin form edits on the PeriodicTask; everything else there stays beat's business.
SCHEDULE_KINDS = ("interval", "crontab", "solar", "clocked")
TIMING_FIELDS = ("enabled", *SCHEDULE_KINDS, "start_time", "expires", "one_off")
# Set only by the form, to clear an expiry beat's admin set (it refuses both at once).
EXTRA_FIELDS = ("expire_seconds",)


def periodic_task_for(task: PeriodicTask | None, *, name: str, **timing: Any) -> PeriodicTask:
    """``task`` (a new one if None) with ``name`` and ``timing`` applied, unsaved."""
    unknown = set(timing) - set(TIMING_FIELDS) - set(EXTRA_FIELDS)
    if unknown:
        raise TypeError(f"not timing fields: {sorted(unknown)}")
    task = task if task is not None else PeriodicTask()
    task.name = name
    task.task = RUN_WORKFLOW_TASK
    for field, value in timing.items():
        setattr(task, field, value)
    if task.clocked_id:
        task.one_off = True  # beat refuses a clocked entry that is not one-off
    return task


def next_run(task: PeriodicTask, now: datetime, last_fired: datetime | None = None
             ) -> datetime | None:
    """When beat will next send ``task``, estimated from its schedule; None if it cannot say.

    ``last_fired`` (the schedule's own record of its last run) wins over beat's
    ``last_run_at``, which beat writes back only every few minutes.
    """
    try:
        known = [t for t in (last_fired, task.last_run_at) if t is not None]
        last = max(known) if known else (task.date_changed or now)
        if timezone.is_naive(last):
            last = timezone.make_aware(last, timezone.get_default_timezone())
        when = max(now, now + task.schedule.remaining_estimate(last))
        if task.start_time and task.start_time > when:
            when = task.start_time
        return when
    except Exception:  # a schedule that cannot be computed must not break a page
        logger.debug("cannot estimate the next run of %s", task.pk, exc_info=True)
        return None


def save_schedule(schedule: WorkflowSchedule, *, name: str, **timing: Any) -> WorkflowSchedule:
    """Save the schedule and its PeriodicTask together.

    ``PeriodicTask.save()`` validates the timing (exactly one of interval, crontab, solar,
    clocked) and tells beat that its schedule changed.
    """
    with transaction.atomic():
        current = schedule.periodic_task if schedule.periodic_task_id else None
        task = periodic_task_for(current, name=name, **timing)
        task.save()
        schedule.periodic_task = task
        schedule.save()
        # The pk exists only now; beat passes these kwargs to ``task_admin.run_workflow``.
        kwargs = json.dumps({"schedule": schedule.pk})
        if task.kwargs != kwargs:
            task.kwargs = kwargs
            task.save()
    return schedule


def fire(schedule_id: int, *, app: Celery | None = None) -> str:
    """Start a run for the schedule, minding its overlap policy; returns what happened."""
    with transaction.atomic():
        # Locked, so two overlapping deliveries of the beat message cannot both see "no run".
        schedule = (
            WorkflowSchedule.objects.select_for_update(of=("self",))
            .select_related("workflow", "periodic_task")
            .filter(pk=schedule_id)
            .first()
        )
        if schedule is None:
            logger.warning("task_admin: schedule %s no longer exists; nothing run", schedule_id)
            return _("schedule %(id)s no longer exists") % {"id": schedule_id}
        firing = _claim(schedule)
        if firing is None:
            # Another beat (a second container, a deploy overlap) sent this due time already.
            outcome = _("already fired for this due time")
            logger.info("task_admin: schedule %s: %s", schedule.periodic_task.name, outcome)
            return outcome
        unfinished = _unfinished_runs(schedule, app)
        skipped = False
        started_run = None
        blocking = _blocking(unfinished)
        if blocking is not None and schedule.overlap == Overlap.SKIP:
            skipped = True
            outcome = _("skipped: run #%(id)s is unfinished") % {"id": blocking.pk}
        else:
            outcome, started_run = _run_for(schedule, app)
            if started_run is not None and unfinished and schedule.overlap == Overlap.REPLACE:
                # Only once the new run is committed: a run that could not start, or a rolled
                # back transaction, must not have stopped the old one.
                old = [run.pk for run in unfinished]
                transaction.on_commit(lambda: _revoke(old, app))
        if started_run is not None:
            ScheduleFiring.objects.filter(pk=firing.pk).update(run=started_run)
        WorkflowSchedule.objects.filter(pk=schedule.pk).update(
            last_fired_at=timezone.now(),
            last_outcome=outcome[:255],
            skipped_count=F("skipped_count") + int(skipped),
        )
    if started_run is not None:
        # Sent on commit, just now: a broker that was down is what happened, not "started".
        started_run.refresh_from_db(fields=["status", "error"])
        if started_run.status == RunStatus.DISPATCH_FAILED:
            outcome = _("run #%(id)s could not be sent: %(error)s") % {
                "id": started_run.pk, "error": started_run.error}
            WorkflowSchedule.objects.filter(pk=schedule.pk).update(last_outcome=outcome[:255])
    logger.info("task_admin: schedule %s: %s", schedule.periodic_task.name, outcome)
    return outcome


# How long after a crontab or solar time a beat may send it and still be matched to it.
DUE_LOOKBACK = timedelta(seconds=30)


def due_time(schedule: WorkflowSchedule, now: datetime) -> datetime | None:
    """The scheduled time a firing at ``now`` is for: the same whichever beat sent it.

    Interval schedules count whole intervals from the schedule's last firing, so a beat sending
    a little early or late still lands on the same due time, and two firings closer than half
    an interval share one (None: at or before the last one). Crontab and solar schedules take
    the scheduled time just before ``now``; a clocked schedule has one.
    """
    task = schedule.periodic_task
    if task.clocked_id:
        return task.clocked.clocked_time
    sched = task.schedule
    if task.interval_id:
        every = sched.run_every.total_seconds()
        last = schedule.firings.order_by("-due_at").values_list("due_at", flat=True).first()
        if last is None:
            return now
        steps = round((now - last).total_seconds() / every)
        return last + timedelta(seconds=steps * every) if steps > 0 else None
    try:
        # Crontab fields are matched in the schedule's own time zone.
        zone = getattr(sched, "tz", None)
        moment = now.astimezone(zone) if zone else now
        sched.nowfun = lambda: moment
        due = moment + sched.remaining_estimate(moment - DUE_LOOKBACK)
    except Exception:  # a schedule that cannot be computed: at least one run per second
        logger.debug("cannot compute the due time of %s", task.pk, exc_info=True)
        due = now
    return (due if due <= now + timedelta(seconds=1) else now).replace(microsecond=0)


def _claim(schedule: WorkflowSchedule) -> ScheduleFiring | None:
    """Record this firing's due time; None when it was claimed already."""
    due = due_time(schedule, timezone.now())
    if due is None:
        return None
    try:
        with transaction.atomic():  # a savepoint: the outer transaction goes on
            return ScheduleFiring.objects.create(schedule=schedule, due_at=due)
    except IntegrityError:
        return None


def _unfinished_runs(schedule: WorkflowSchedule, app: Celery | None) -> list[WorkflowRun]:
    runs = list(schedule.runs.unfinished().order_by("pk"))
    for run in runs:
        # Events a killed worker never sent may be in the result backend; a backend that
        # cannot be read leaves the run as it is, it does not stop the schedule.
        try:
            services.reconcile_run(run, app=app)
        except Exception:
            logger.warning("task_admin: could not reconcile run %s", run.pk, exc_info=True)
    return list(schedule.runs.unfinished().order_by("pk")) if runs else []


def _blocking(unfinished: list[WorkflowRun]) -> WorkflowRun | None:
    """The newest unfinished run that still counts for "skip"."""
    stale_after = get_config()["SKIP_STALE_AFTER"]
    if stale_after is not None:
        since = timezone.now() - timedelta(seconds=stale_after)
        unfinished = [run for run in unfinished if run.created_at > since]
    return unfinished[-1] if unfinished else None


def _revoke(run_ids: list[int], app: Celery | None) -> None:
    for run in WorkflowRun.objects.filter(pk__in=run_ids):
        try:
            services.revoke_run(run, terminate=True, app=app)
        except services.CannotRun:
            pass  # it finished meanwhile
        except Exception:  # the broker: the new run is started, say what was not stopped
            logger.exception("task_admin: could not revoke run %s replaced by a schedule", run.pk)


def _run_for(schedule: WorkflowSchedule, app: Celery | None) -> tuple[str, WorkflowRun | None]:
    try:
        run = services.run_workflow(
            schedule.workflow,
            overrides=schedule.overrides,
            trigger=Trigger.SCHEDULE,
            detail=schedule.periodic_task.name,
            schedule=schedule,
            app=app,
        )
    except services.CannotRun as exc:
        return _("not run: %(reason)s") % {"reason": exc}, None
    return _("started run #%(id)s") % {"id": run.pk}, run

