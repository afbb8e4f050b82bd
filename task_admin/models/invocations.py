from __future__ import annotations

from collections.abc import Callable

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from task_admin import canvas

# Whether an invocation can be sent needs the Celery registry and the workflows using it, which
# sit above the models (``task_admin.validation``). That layer installs its check here when the
# app is ready (``TaskAdminConfig.ready``), so ``full_clean()`` still refuses what cannot be sent
# while the models import nothing above them (see docs/architecture.md, "Layers").
SENDABILITY_CHECKS: list[Callable[[TaskInvocation], None]] = []


def add_sendability_check(check: Callable[[TaskInvocation], None]) -> None:
    if check not in SENDABILITY_CHECKS:
        SENDABILITY_CHECKS.append(check)


def _whole(value: float | None) -> float | int | None:
    """10.0 seconds as 10: float columns read back whole numbers as floats, and the run page,
    the canvas text and the spec would show "10.0" where staff typed 10."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class TaskInvocationManager(models.Manager):
    def get_by_natural_key(self, name):
        return self.get(name=name)


class TaskInvocation(models.Model):
    """A named, reusable call of a registered Celery task: what ``apply_async`` is given."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    task = models.CharField(_("task"), max_length=255, db_index=True)
    args = models.JSONField(_("positional arguments"), default=list, blank=True)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    immutable = models.BooleanField(
        _("immutable"),
        default=False,
        help_text=_(
            "Send as .si(): inside a chain or as a chord callback the task does not receive the "
            "previous result as its first argument."
        ),
    )
    countdown = models.FloatField(
        _("countdown (s)"), null=True, blank=True, validators=[MinValueValidator(0)]
    )
    eta = models.DateTimeField(_("ETA"), null=True, blank=True)
    expires = models.FloatField(
        _("expires after (s)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("The task is discarded if it has not started this many seconds after sending."),
    )
    queue = models.CharField(_("queue"), max_length=200, blank=True)
    priority = models.PositiveSmallIntegerField(
        _("priority"), null=True, blank=True, validators=[MaxValueValidator(255)]
    )
    retry = models.BooleanField(
        _("retry publishing"),
        default=True,
        help_text=_(
            "Retry sending the message if the broker connection fails. How the task itself "
            "retries (max_retries, self.retry(countdown=...)) is defined by the task's code."
        ),
    )
    retry_max_retries = models.PositiveIntegerField(_("max retries"), null=True, blank=True)
    retry_interval_start = models.FloatField(
        _("first retry after (s)"), null=True, blank=True, validators=[MinValueValidator(0)]
    )
    retry_interval_step = models.FloatField(
        _("back-off step (s)"), null=True, blank=True, validators=[MinValueValidator(0)]
    )
    retry_interval_max = models.FloatField(
        _("longest wait (s)"), null=True, blank=True, validators=[MinValueValidator(0)]
    )
    soft_time_limit = models.FloatField(
        _("soft time limit (s)"), null=True, blank=True, validators=[MinValueValidator(0.001)]
    )
    time_limit = models.FloatField(
        _("hard time limit (s)"), null=True, blank=True, validators=[MinValueValidator(0.001)]
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = TaskInvocationManager()

    class Meta:
        verbose_name = _("task invocation")
        verbose_name_plural = _("task invocations")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(soft_time_limit__isnull=True)
                | Q(time_limit__isnull=True)
                | Q(soft_time_limit__lt=models.F("time_limit")),
                name="task_admin_invocation_soft_below_hard_limit",
                violation_error_message=_("The soft time limit must be below the hard limit."),
            ),
            models.CheckConstraint(
                condition=Q(priority__isnull=True) | Q(priority__lte=255),
                name="task_admin_invocation_priority_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def natural_key(self):
        return (self.name,)

    def retry_policy(self) -> dict | None:
        policy = {
            "max_retries": self.retry_max_retries,
            "interval_start": self.retry_interval_start,
            "interval_step": self.retry_interval_step,
            "interval_max": self.retry_interval_max,
        }
        policy = {key: _whole(value) for key, value in policy.items() if value is not None}
        return policy or None

    def to_options(self) -> canvas.Options:
        return canvas.Options(
            countdown=_whole(self.countdown),
            eta=self.eta.isoformat() if self.eta else None,
            expires=_whole(self.expires),
            queue=self.queue or None,
            priority=self.priority,
            retry=None if self.retry else False,
            retry_policy=self.retry_policy(),
            soft_time_limit=_whole(self.soft_time_limit),
            time_limit=_whole(self.time_limit),
        )

    def to_spec(self, *, ref: str | None = None, label: str = "") -> canvas.Task:
        return canvas.Task(
            task=self.task,
            args=tuple(self.args),
            kwargs=dict(self.kwargs),
            options=self.to_options(),
            immutable=self.immutable,
            label=label or self.name,
            ref=ref,
        )

    def clean(self) -> None:
        for check in SENDABILITY_CHECKS:
            check(self)
