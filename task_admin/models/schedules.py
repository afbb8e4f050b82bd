from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Overlap(models.TextChoices):
    """What a schedule does when it fires while its previous run is still unfinished."""

    SKIP = "skip", _("skip this time")
    ALLOW = "allow", _("start another run alongside")
    REPLACE = "replace", _("revoke the unfinished run, then start")


class WorkflowSchedule(models.Model):
    """Runs a workflow on a django-celery-beat schedule.

    The timing (interval, crontab, solar or clocked; start, expiry, one-off, enabled) lives in the
    linked ``PeriodicTask``, which beat reads; this row says what to run and how to handle an
    overlap. ``task_admin.scheduling.save_schedule`` keeps the two in step.
    """

    workflow = models.ForeignKey(
        "task_admin.Workflow",
        on_delete=models.CASCADE,
        related_name="schedules",
        verbose_name=_("workflow"),
    )
    # A link, not a subclass: beat's admin and scheduler keep working on the PeriodicTask as is.
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        on_delete=models.CASCADE,
        related_name="workflow_schedule",
        editable=False,
        verbose_name=_("periodic task"),
    )
    overlap = models.CharField(
        _("if the previous run is unfinished"),
        max_length=10,
        choices=Overlap.choices,
        default=Overlap.SKIP,
    )
    overrides = models.JSONField(
        _("kwargs overrides"),
        default=dict,
        blank=True,
        help_text=_(
            'Extra keyword arguments by node path for every scheduled run, e.g. '
            '{"root.0": {"b": 5}}.'
        ),
    )
    last_fired_at = models.DateTimeField(_("last fired"), null=True, blank=True, editable=False)
    last_outcome = models.CharField(_("last outcome"), max_length=255, blank=True, editable=False)
    skipped_count = models.PositiveIntegerField(_("times skipped"), default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("workflow schedule")
        verbose_name_plural = _("workflow schedules")
        ordering = ["periodic_task__name"]

    def __str__(self) -> str:
        return self.periodic_task.name


class ScheduleFiring(models.Model):
    """A schedule's claim on one due time: the same firing sent by two beats starts one run.

    Claimed in the transaction that starts (or skips) the run; the unique constraint is what
    makes a second beat's message for the same due time a no-op, on any database.
    """

    schedule = models.ForeignKey(
        WorkflowSchedule,
        on_delete=models.CASCADE,
        related_name="firings",
        verbose_name=_("schedule"),
    )
    due_at = models.DateTimeField(_("due at"))
    fired_at = models.DateTimeField(_("fired at"), auto_now_add=True)
    run = models.ForeignKey(
        "task_admin.WorkflowRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("run"),
    )

    class Meta:
        verbose_name = _("schedule firing")
        verbose_name_plural = _("schedule firings")
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "due_at"], name="task_admin_firing_due_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.due_at:%Y-%m-%d %H:%M:%S}"
