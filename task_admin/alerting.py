"""Alerts: decide which alert a run deserves, claim it once, deliver it, catch late runs.

The flow, one way:

    signals.run_finished ──► on_run_finished (in whatever process finished the run: only a
          │                  zero-cost test of ``run.alert_rule_id``, then a message on commit)
          ▼
    task ``task_admin.alert_run`` ──► alert_run(): kind_for() + claim()  (Alert row, unique per
          │                                         run and kind, throttle decided under a lock)
          ▼
    task ``task_admin.deliver_alert`` ──► deliver(): SENDING claimed by a guarded UPDATE, email
                                          and webhook each marked done once; retries with
                                          backoff on SMTP/HTTP errors
    beat ``task_admin.check_alert_slas`` ──► check_slas(): late runs (also those whose worker
                                          died) get an SLA alert, claimed the same way

Nothing here sends mail from inside the worker's task path of a tracked task: the receiver
only enqueues.
"""

from __future__ import annotations

import json
import logging
import smtplib
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from task_admin import alert_messages, registry, webhooks
from task_admin.conf import get_config
from task_admin.models import (
    Alert,
    AlertKind,
    AlertRule,
    AlertStatus,
    RunStatus,
    Workflow,
    WorkflowRun,
)
from task_admin.models.alerts import split_emails
from task_admin.models.runs import FAILED_RUN
from task_admin.signals import run_finished

logger = logging.getLogger(__name__)

ALERT_RUN_TASK = "task_admin.alert_run"
DELIVER_TASK = "task_admin.deliver_alert"
SLA_TASK = "task_admin.check_alert_slas"
# Statuses that may deserve an alert once a run has finished (revoked runs were stopped by
# someone, on purpose).
ALERTING_STATUSES = frozenset({*FAILED_RUN, RunStatus.SUCCEEDED})
# A SENDING alert older than this was being sent by a worker that died: it is marked failed.
STUCK_AFTER = timedelta(minutes=15)


class RetryLater(Exception):
    """Delivery failed in a way worth another try (SMTP or network error, 5xx)."""


# -- from the run's end to a message on the queue -------------------------------------------


def on_run_finished(sender, run: WorkflowRun, **kwargs) -> None:
    """Receiver of ``signals.run_finished``: enqueue the alert task, nothing else.

    Runs in the process that finished the run (often a worker, between two tasks), so it
    reads nothing from the database: a run without alert settings costs one attribute test.
    """
    if run.alert_rule_id is None or run.status not in ALERTING_STATUSES:
        return
    run_id = run.pk
    transaction.on_commit(lambda: _enqueue(ALERT_RUN_TASK, run_id))


def _enqueue(task_name: str, *args) -> None:
    try:
        registry.get_app().send_task(task_name, args=list(args))
    except Exception:  # a broker that cannot be reached must not break whoever finished the run
        logger.exception("task_admin could not queue %s%r", task_name, args)


def connect() -> None:
    """Wire the receiver; called once from ``TaskAdminConfig.ready()``."""
    run_finished.connect(on_run_finished, sender=WorkflowRun, dispatch_uid="task_admin.alerts")


# -- deciding and claiming --------------------------------------------------------------------


def kind_for(run: WorkflowRun) -> str | None:
    """The alert a finished run deserves, before the rule's choices are applied."""
    if run.status in (RunStatus.FAILED, RunStatus.DISPATCH_FAILED):
        return AlertKind.FAILURE
    if run.status == RunStatus.PARTIALLY_FAILED:
        return AlertKind.PARTIAL_FAILURE
    if run.status == RunStatus.SUCCEEDED and run.workflow_id is not None:
        previous = (
            WorkflowRun.objects.filter(
                workflow_id=run.workflow_id,
                status__in=ALERTING_STATUSES,
                finished_at__isnull=False,
            )
            .exclude(pk=run.pk)
            .filter(Q(finished_at__lt=run.finished_at)
                    | Q(finished_at=run.finished_at, pk__lt=run.pk))
            .order_by("-finished_at", "-pk")
            .values_list("status", flat=True)
            .first()
        )
        if previous in FAILED_RUN:
            return AlertKind.RECOVERY
    return None


def recipients_of(rule: AlertRule) -> list[str]:
    """Email addresses: the rule's active staff users and groups' members, and its extras."""
    User = get_user_model()
    email_field = User.get_email_field_name()
    users = User.objects.filter(
        Q(pk__in=rule.users.values("pk")) | Q(groups__in=rule.groups.values("pk")),
        is_active=True,
        is_staff=True,
    ).exclude(**{email_field: ""}).values_list(email_field, flat=True)
    seen: dict[str, None] = {}
    for address in [*users, *split_emails(rule.emails)]:
        seen.setdefault(address.strip(), None)
    return sorted(a for a in seen if a)


def claim(run: WorkflowRun, kind: str, rule: AlertRule, *, now: datetime | None = None
          ) -> Alert | None:
    """Record the alert of ``kind`` about ``run``, once; None if it was already recorded.

    Decides the throttle too: under a lock on the workflow's row, an alert of the same kind
    about the same workflow claimed less than ALERT_MIN_INTERVAL ago makes this one
    SUPPRESSED; the next one sent counts those suppressed since the last one.
    """
    now = now or timezone.now()
    interval = timedelta(seconds=get_config()["ALERT_MIN_INTERVAL"] or 0)
    with transaction.atomic():
        # One claimer per workflow at a time (a workflow's and its schedules' settings share
        # the throttle): it must see an alert claimed just now.
        list(Workflow.objects.select_for_update().filter(pk=run.workflow_id).values_list("pk"))
        if Alert.objects.filter(run=run, kind=kind).exists():
            return None
        same = Alert.objects.filter(workflow_id=run.workflow_id, kind=kind)
        last = (
            same.exclude(status=AlertStatus.SUPPRESSED)
            .order_by("-created_at", "-pk")
            .values_list("created_at", flat=True)
            .first()
        )
        throttled = last is not None and now - last < interval
        suppressed_before = 0
        if not throttled:
            earlier = same.filter(status=AlertStatus.SUPPRESSED)
            if last is not None:
                earlier = earlier.filter(created_at__gt=last)
            suppressed_before = earlier.count()
        alert = Alert(
            run=run,
            workflow_id=run.workflow_id,
            kind=kind,
            status=AlertStatus.SUPPRESSED if throttled else AlertStatus.PENDING,
            recipients=recipients_of(rule),
            webhook_url=rule.webhook_url,
            suppressed_before=suppressed_before,
            created_at=now,
        )
        try:
            with transaction.atomic():
                alert.save()
        except IntegrityError:  # another worker claimed it between our check and our insert
            return None
    return alert


def alert_run(run_id: int) -> list[int]:
    """What ``task_admin.alert_run`` does: claim the alert a finished run deserves and queue
    its delivery. Returns the ids of alerts to deliver (none when already claimed)."""
    run = (
        WorkflowRun.objects.select_related("alert_rule")
        .defer("spec", "overrides")
        .filter(pk=run_id)
        .first()
    )
    if run is None or run.alert_rule is None or not run.is_finished:
        return []
    kind = kind_for(run)
    if kind is None or not run.alert_rule.wants(kind):
        return []
    alert = claim(run, kind, run.alert_rule)
    if alert is None or alert.status != AlertStatus.PENDING:
        return []
    _enqueue_delivery(alert.pk)
    return [alert.pk]


def _enqueue_delivery(alert_id: int) -> None:
    transaction.on_commit(lambda: _enqueue(DELIVER_TASK, alert_id))


# -- delivering -------------------------------------------------------------------------------


def deliver(alert_id: int, *, last_try: bool = False) -> str:
    """Send a PENDING alert by email and webhook; returns its status afterwards.

    Only one process can move an alert from PENDING to SENDING, so a re-delivered message or
    a second worker finds nothing to do. Each channel is marked done as soon as it succeeds,
    so a retry after a webhook error does not send the email again. Raises RetryLater when a
    channel failed and may succeed later (unless ``last_try``: then the alert is FAILED).
    """
    claimed = Alert.objects.filter(pk=alert_id, status=AlertStatus.PENDING).update(
        status=AlertStatus.SENDING, attempts=F("attempts") + 1, claimed_at=timezone.now()
    )
    if not claimed:
        return Alert.objects.filter(pk=alert_id).values_list("status", flat=True).first() or ""
    alert = Alert.objects.select_related("run", "run__alert_rule").get(pk=alert_id)
    rule = alert.run.alert_rule
    errors, retry = [], False
    message = alert_messages.compose(alert)
    if alert.recipients and not alert.emailed:
        try:
            message.email(alert.recipients).send()
        except (smtplib.SMTPException, OSError) as exc:
            errors.append(alert_messages.channel_error("email", exc))
            retry = True
        else:
            Alert.objects.filter(pk=alert_id).update(emailed=True, subject=message.subject[:255])
    if alert.webhook_url and not alert.webhook_delivered:
        config = get_config()
        try:
            if rule is None or not rule.webhook_secret:
                raise webhooks.WebhookRefused(alert_messages.no_secret_error())
            webhooks.post(
                alert.webhook_url,
                json.dumps(message.payload, sort_keys=True).encode(),
                secret=rule.webhook_secret,
                allowed=config["ALERT_WEBHOOK_ALLOWED"],
                timeout=config["ALERT_WEBHOOK_TIMEOUT"],
                headers={"X-Task-Admin-Alert": f"{alert.pk}:{alert.kind}"},
            )
        except webhooks.WebhookFailed as exc:
            errors.append(alert_messages.channel_error("webhook", exc))
            retry = True
        except webhooks.WebhookRefused as exc:
            errors.append(alert_messages.channel_error("webhook", exc))
        else:
            Alert.objects.filter(pk=alert_id).update(webhook_delivered=True)
    if not alert.recipients and not alert.webhook_url:
        errors.append(alert_messages.nobody_error())
    if not errors:
        status = AlertStatus.SENT
    elif retry and not last_try:
        status = AlertStatus.PENDING
    else:
        status = AlertStatus.FAILED
    Alert.objects.filter(pk=alert_id, status=AlertStatus.SENDING).update(
        status=status,
        error="\n".join(errors),
        sent_at=timezone.now() if status == AlertStatus.SENT else None,
    )
    if status == AlertStatus.PENDING:
        raise RetryLater("; ".join(errors))
    return status


def retry_delay(retries: int) -> int:
    """Seconds before retry number ``retries + 1``: the delay, doubled each time, at most 1 h."""
    return int(min(3600, get_config()["ALERT_RETRY_DELAY"] * 2 ** retries))


# -- late runs --------------------------------------------------------------------------------


def late_runs(now: datetime) -> Iterable[WorkflowRun]:
    """Unfinished runs with an SLA, past it, not yet alerted about."""
    candidates = (
        WorkflowRun.objects.unfinished()
        .filter(alert_rule__sla_minutes__isnull=False)
        .exclude(alerts__kind=AlertKind.SLA)
        .select_related("alert_rule")
        .defer("spec", "overrides")
    )
    for run in candidates:
        if run.created_at + timedelta(minutes=run.alert_rule.sla_minutes) <= now:
            yield run


def check_slas(*, now: datetime | None = None) -> list[int]:
    """What beat's ``task_admin.check_alert_slas`` does; returns the ids of alerts queued.

    A late run is first brought up to date from the result backend (its worker may have died
    after finishing): if it has in fact finished it gets its ordinary alert instead.
    """
    from task_admin import services  # services imports the models this module needs, not us

    now = now or timezone.now()
    queued = []
    for run in late_runs(now):
        try:
            services.reconcile_run(run)
        except Exception:
            logger.warning("task_admin: reconciling late run %s failed", run.pk, exc_info=True)
        run.refresh_from_db(fields=["status"])
        if run.is_finished:
            continue  # its own run_finished signal takes it from here
        alert = claim(run, AlertKind.SLA, run.alert_rule, now=now)
        if alert is not None and alert.status == AlertStatus.PENDING:
            _enqueue_delivery(alert.pk)
            queued.append(alert.pk)
    Alert.objects.filter(status=AlertStatus.SENDING, claimed_at__lt=now - STUCK_AFTER).update(
        status=AlertStatus.FAILED,
        error=alert_messages.stuck_error(),
    )
    return queued
