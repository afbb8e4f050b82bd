"""Who is told when a workflow's run fails, recovers or runs late, and what was sent.

An ``AlertRule`` belongs to a workflow, or to one schedule of it (it then replaces the
workflow's rule for that schedule's runs). A run records the rule in force when it started
(``WorkflowRun.alert_rule``), so a run whose workflow has no rule costs the alerting nothing.
An ``Alert`` is one message about one run: unique per (run, kind), claimed in a transaction
before anything is sent, so it is never sent twice.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def split_emails(text: str) -> list[str]:
    """The addresses of a free-text list: one per line or separated by commas or spaces."""
    return [part for part in text.replace(",", " ").split() if part]


def validate_email_list(text: str) -> None:
    bad = []
    for address in split_emails(text):
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    if bad:
        raise ValidationError(
            _("Not an email address: %(addresses)s"),
            code="invalid",
            params={"addresses": ", ".join(bad)},
        )


class AlertKind(models.TextChoices):
    FAILURE = "failure", _("failure")
    PARTIAL_FAILURE = "partial_failure", _("partial failure")
    RECOVERY = "recovery", _("recovery")
    SLA = "sla", _("late (SLA missed)")


class AlertStatus(models.TextChoices):
    PENDING = "pending", _("waiting to be sent")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    SUPPRESSED = "suppressed", _("suppressed (too soon after the last one)")


class AlertRuleQuerySet(models.QuerySet):
    def id_for(self, workflow_id: int | None, schedule_id: int | None) -> int | None:
        """The rule a run of ``workflow_id`` (started by ``schedule_id``) follows, in one
        query: the schedule's own rule if it has one, else the workflow's."""
        if workflow_id is None and schedule_id is None:
            return None
        match = Q(workflow_id=workflow_id) if workflow_id is not None else Q(pk__in=[])
        if schedule_id is not None:
            match |= Q(schedule_id=schedule_id)
        rows = list(self.filter(match).values_list("pk", "schedule_id"))
        rows.sort(key=lambda row: row[1] is None)  # the schedule's rule first
        return rows[0][0] if rows else None


class AlertRule(models.Model):
    workflow = models.OneToOneField(
        "task_admin.Workflow",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rule",
        verbose_name=_("workflow"),
    )
    schedule = models.OneToOneField(
        "task_admin.WorkflowSchedule",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rule",
        verbose_name=_("schedule"),
    )
    on_failure = models.BooleanField(
        _("when a run fails"), default=True,
        help_text=_("Also when a run could not be sent to the broker."),
    )
    on_partial_failure = models.BooleanField(_("when a run partially fails"), default=True)
    on_recovery = models.BooleanField(
        _("when a run succeeds after a failure"), default=True
    )
    sla_minutes = models.PositiveIntegerField(
        _("late after (minutes)"),
        null=True,
        blank=True,
        help_text=_("Tell them when a run has not finished this many minutes after it started. "
                    "Empty: never."),
    )
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="+",
        limit_choices_to={"is_staff": True},
        verbose_name=_("staff users"),
    )
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        verbose_name=_("groups"),
        help_text=_("Their active staff members with an email address are told."),
    )
    emails = models.TextField(
        _("other email addresses"),
        blank=True,
        validators=[validate_email_list],
        help_text=_("One per line, or separated by commas."),
    )
    webhook_url = models.URLField(
        _("webhook URL"),
        max_length=500,
        blank=True,
        help_text=_("Receives each alert as JSON in a POST, signed with the secret below."),
    )
    # Kept to sign requests; the admin never shows it back (only its last characters).
    webhook_secret = models.CharField(_("webhook secret"), max_length=200, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = AlertRuleQuerySet.as_manager()

    class Meta:
        verbose_name = _("alert settings")
        verbose_name_plural = _("alert settings")
        constraints = [
            models.CheckConstraint(
                condition=Q(workflow__isnull=False, schedule__isnull=True)
                | Q(workflow__isnull=True, schedule__isnull=False),
                name="task_admin_alertrule_one_owner",
            ),
            models.CheckConstraint(
                condition=Q(webhook_url="") | ~Q(webhook_secret=""),
                name="task_admin_alertrule_webhook_signed",
            ),
        ]

    def __str__(self) -> str:
        owner = self.workflow if self.workflow_id else self.schedule
        return str(_("Alerts of %(owner)s") % {"owner": owner})

    def wants(self, kind: str) -> bool:
        return {
            AlertKind.FAILURE: self.on_failure,
            AlertKind.PARTIAL_FAILURE: self.on_partial_failure,
            AlertKind.RECOVERY: self.on_recovery,
            AlertKind.SLA: self.sla_minutes is not None,
        }[kind]

    @property
    def secret_hint(self) -> str:
        """What may be shown of the secret: that one is set and how it ends."""
        secret = self.webhook_secret
        if not secret:
            return ""
        return "…" + secret[-4:] if len(secret) >= 16 else "…"


class Alert(models.Model):
    """One alert about one run; the row is claimed before sending, so it is sent once."""

    run = models.ForeignKey(
        "task_admin.WorkflowRun",
        on_delete=models.CASCADE,
        related_name="alerts",
        verbose_name=_("run"),
    )
    # Copied from the run: the throttle counts alerts per workflow and kind.
    workflow = models.ForeignKey(
        "task_admin.Workflow",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("workflow"),
    )
    kind = models.CharField(_("kind"), max_length=20, choices=AlertKind.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=AlertStatus.choices, default=AlertStatus.PENDING
    )
    recipients = models.JSONField(_("recipients"), default=list, blank=True)
    webhook_url = models.CharField(_("webhook URL"), max_length=500, blank=True)
    # How many alerts of this kind were suppressed since the last one sent (told in this one).
    suppressed_before = models.PositiveIntegerField(_("suppressed before this one"), default=0)
    emailed = models.BooleanField(_("email sent"), default=False)
    webhook_delivered = models.BooleanField(_("webhook delivered"), default=False)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.TextField(_("error"), blank=True)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    # Not auto_now_add: the claim sets it, and the throttle compares it.
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # When a worker last took it to send: one SENDING for long means that worker died.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "kind"], name="task_admin_alert_once_per_run")
        ]
        indexes = [
            models.Index(
                fields=["workflow", "kind", "created_at"], name="task_admin_alert_throttle"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.run_id}"
