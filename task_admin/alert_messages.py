"""What an alert says: the email (plain text and HTML) and the webhook's JSON, from one context.

Plain code, no sending: ``alerting.deliver`` sends what ``compose`` returns. Rendered in the
site's LANGUAGE_CODE, since a worker has no request to take a language from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from task_admin.conf import get_config
from task_admin.links import admin_url
from task_admin.models import Alert, AlertKind, NodeState, TaskRun, WorkflowRun
from task_admin.models.runs import UNFINISHED_NODE

MAX_TASKS_LISTED = 10


@dataclass
class Message:
    subject: str
    text: str
    html: str
    payload: dict[str, Any] = field(default_factory=dict)

    def email(self, recipients: list[str]) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives(
            self.subject,
            self.text,
            get_config()["ALERT_FROM_EMAIL"] or settings.DEFAULT_FROM_EMAIL,
            recipients,
        )
        message.attach_alternative(self.html, "text/html")
        return message


def run_url(run: WorkflowRun) -> str:
    """The run page's absolute URL, from TASK_ADMIN["SITE_URL"]; "" when it is not set."""
    base = get_config()["SITE_URL"]
    if not base:
        return ""
    path = admin_url("task_admin_workflowrun_change", run.pk)
    return base.rstrip("/") + path if path else ""


def subject(kind: str, run: WorkflowRun, minutes: int | None = None) -> str:
    names = {"workflow": run.workflow_name, "run": run.pk}
    if kind == AlertKind.FAILURE:
        return _("Workflow “%(workflow)s” failed (run #%(run)s)") % names
    if kind == AlertKind.PARTIAL_FAILURE:
        return _("Workflow “%(workflow)s” partially failed (run #%(run)s)") % names
    if kind == AlertKind.RECOVERY:
        return _("Workflow “%(workflow)s” succeeded again (run #%(run)s)") % names
    return ngettext(
        "Workflow “%(workflow)s” is late: run #%(run)s has not finished after %(minutes)s "
        "minute",
        "Workflow “%(workflow)s” is late: run #%(run)s has not finished after %(minutes)s "
        "minutes",
        minutes or 0,
    ) % {**names, "minutes": minutes}


def _head(traceback: str) -> str:
    lines = traceback.strip().splitlines()
    limit = get_config()["ALERT_TRACEBACK_LINES"]
    if len(lines) <= limit:
        return "\n".join(lines)
    return "\n".join([*lines[:limit], "…"])


def _tasks(run: WorkflowRun, states) -> tuple[list[dict[str, Any]], int]:
    rows = list(
        TaskRun.objects.filter(run=run, state__in=states)
        .order_by("position")
        .values("path", "task_name", "label", "state", "exception", "traceback", "worker")
        [: MAX_TASKS_LISTED + 1]
    )
    total = len(rows)
    if total > MAX_TASKS_LISTED:
        total = TaskRun.objects.filter(run=run, state__in=states).count()
    tasks = [
        {
            "path": row["path"],
            "task": row["task_name"],
            "label": row["label"],
            "state": row["state"],
            "state_label": str(NodeState(row["state"]).label),
            "exception": row["exception"],
            "traceback": _head(row["traceback"]),
            "worker": row["worker"],
        }
        for row in rows[:MAX_TASKS_LISTED]
    ]
    return tasks, total - len(tasks)


def context(alert: Alert) -> dict[str, Any]:
    run = alert.run
    rule = run.alert_rule
    minutes = rule.sla_minutes if rule is not None else None
    if alert.kind == AlertKind.SLA:
        tasks, more = _tasks(run, UNFINISHED_NODE)
    elif alert.kind == AlertKind.RECOVERY:
        tasks, more = [], 0
    else:
        tasks, more = _tasks(run, (NodeState.FAILURE,))
    return {
        "alert": alert,
        "kind": alert.kind,
        "kind_label": str(AlertKind(alert.kind).label),
        "run": run,
        "status_label": str(run.get_status_display()),
        "trigger_label": str(run.get_trigger_display()),
        "subject": subject(alert.kind, run, minutes),
        "url": run_url(run),
        "tasks": tasks,
        "more_tasks": more,
        "sla_minutes": minutes,
        "elapsed_minutes": int((timezone.now() - run.created_at).total_seconds() // 60),
        "suppressed_before": alert.suppressed_before,
    }


def payload(ctx: dict[str, Any]) -> dict[str, Any]:
    run: WorkflowRun = ctx["run"]
    alert: Alert = ctx["alert"]

    def when(value):
        return value.isoformat() if value else None

    return {
        "alert": {"id": alert.pk, "kind": alert.kind, "suppressed_before": alert.suppressed_before},
        "summary": ctx["subject"],
        "workflow": {"id": run.workflow_id, "name": run.workflow_name},
        "run": {
            "id": run.pk,
            "status": run.status,
            "trigger": run.trigger,
            "trigger_detail": run.trigger_detail,
            "error": run.error,
            "created_at": when(run.created_at),
            "started_at": when(run.started_at),
            "finished_at": when(run.finished_at),
            "url": ctx["url"] or None,
        },
        "sla_minutes": ctx["sla_minutes"] if alert.kind == AlertKind.SLA else None,
        "tasks": [
            {k: task[k] for k in ("path", "task", "label", "state", "exception", "traceback")}
            for task in ctx["tasks"]
        ],
        "more_tasks": ctx["more_tasks"],
    }


def compose(alert: Alert) -> Message:
    with translation.override(settings.LANGUAGE_CODE):
        ctx = context(alert)
        return Message(
            subject=ctx["subject"],
            text=render_to_string("task_admin/alerts/alert_email.txt", ctx),
            html=render_to_string("task_admin/alerts/alert_email.html", ctx),
            payload=payload(ctx),
        )


def channel_error(channel: str, exc: BaseException) -> str:
    label = _("email") if channel == "email" else _("webhook")
    return _("%(channel)s: %(error)s") % {
        "channel": label, "error": str(exc) or type(exc).__name__,
    }


def nobody_error() -> str:
    return _("Nobody to tell: no active staff user with an email address, no other address and "
             "no webhook in the alert settings.")


def no_secret_error() -> str:
    return _("The alert settings have no webhook secret any more: nothing was sent unsigned.")


def stuck_error() -> str:
    return _("The worker sending this alert stopped before it finished; not retried, so that "
             "nobody gets it twice.")


def run_page_alerts(run: WorkflowRun) -> list[dict[str, Any]]:
    """The run's alerts, for the run page: a presenter, one query."""
    return [
        {
            "kind": str(alert.get_kind_display()),
            "status": alert.status,
            "status_label": str(alert.get_status_display()),
            "recipients": ", ".join(alert.recipients),
            "webhook": bool(alert.webhook_url),
            "created_at": alert.created_at,
            "sent_at": alert.sent_at,
            "attempts": alert.attempts,
            "suppressed_before": alert.suppressed_before,
            "error": alert.error,
        }
        for alert in run.alerts.order_by("created_at", "pk")
    ]
