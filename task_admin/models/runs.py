from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class RunStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    PARTIALLY_FAILED = "partially_failed", _("partially failed")
    REVOKED = "revoked", _("revoked")
    DISPATCH_FAILED = "dispatch_failed", _("failed to dispatch")


FINISHED_RUN = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.PARTIALLY_FAILED,
        RunStatus.REVOKED,
        RunStatus.DISPATCH_FAILED,
    }
)
# Finished without producing the final result (what alerts and the dashboard call a failure).
FAILED_RUN = frozenset({RunStatus.FAILED, RunStatus.PARTIALLY_FAILED, RunStatus.DISPATCH_FAILED})


class NodeState(models.TextChoices):
    # Celery's state names, plus two of ours for nodes that will never run.
    PENDING = "PENDING", _("pending")
    RECEIVED = "RECEIVED", _("received")
    STARTED = "STARTED", _("started")
    RETRY = "RETRY", _("retrying")
    SUCCESS = "SUCCESS", _("succeeded")
    FAILURE = "FAILURE", _("failed")
    REVOKED = "REVOKED", _("revoked")
    SKIPPED = "SKIPPED", _("skipped: an earlier step failed")
    NOT_SENT = "NOT_SENT", _("not sent")


# The node states, once: every module and query uses these sets (or the querysets below).
FINISHED_NODE = frozenset(
    {NodeState.SUCCESS, NodeState.FAILURE, NodeState.REVOKED, NodeState.SKIPPED, NodeState.NOT_SENT}
)
UNFINISHED_NODE = frozenset(
    {NodeState.PENDING, NodeState.RECEIVED, NodeState.STARTED, NodeState.RETRY}
)
# Finished without a result: failed, or never ran to the end (revoked, skipped, not sent).
FAILED_NODE = frozenset(
    {NodeState.FAILURE, NodeState.REVOKED, NodeState.SKIPPED, NodeState.NOT_SENT}
)


class Trigger(models.TextChoices):
    MANUAL = "manual", _("manual")
    SCHEDULE = "schedule", _("schedule")
    RERUN = "rerun", _("re-run")
    API = "api", _("code")


class WorkflowRunQuerySet(models.QuerySet):
    def unfinished(self):
        return self.exclude(status__in=FINISHED_RUN)

    def finished(self):
        return self.filter(status__in=FINISHED_RUN)

    def failed(self):
        return self.filter(status__in=FAILED_RUN)


class TaskRunQuerySet(models.QuerySet):
    def unfinished(self):
        return self.filter(state__in=UNFINISHED_NODE)

    def finished(self):
        return self.filter(state__in=FINISHED_NODE)

    def failed(self):
        return self.filter(state__in=FAILED_NODE)


class WorkflowRun(models.Model):
    """One dispatch of a workflow, with a snapshot of exactly what was sent."""

    workflow = models.ForeignKey(
        "task_admin.Workflow",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
        verbose_name=_("workflow"),
        db_index=False,  # the (workflow, created_at, id) index in Meta serves it
    )
    workflow_name = models.CharField(_("workflow name"), max_length=200)
    spec = models.JSONField(_("canvas sent"))
    overrides = models.JSONField(_("one-off overrides"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING,
        db_index=False,  # an Index in Meta: no LIKE index beside it on PostgreSQL
    )
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("triggered by"),
        db_index=False,  # partial index in Meta
    )
    trigger_detail = models.CharField(_("trigger detail"), max_length=255, blank=True)
    rerun_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reruns",
        verbose_name=_("re-run of"),
        db_index=False,  # partial index in Meta
    )
    schedule = models.ForeignKey(
        "task_admin.WorkflowSchedule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="runs",
        verbose_name=_("schedule"),
        db_index=False,  # partial index in Meta
    )
    # The alert settings in force when the run started (None: nobody is told about it).
    alert_rule = models.ForeignKey(
        "task_admin.AlertRule",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("alert settings"),
        db_index=False,  # partial index in Meta
    )
    note = models.TextField(_("note"), blank=True)
    error = models.TextField(_("dispatch error"), blank=True)
    total_nodes = models.PositiveIntegerField(_("tasks"), default=0)
    finished_nodes = models.PositiveIntegerField(_("finished tasks"), default=0)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(_("dispatched"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = WorkflowRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("workflow run")
        verbose_name_plural = _("workflow runs")
        ordering = ["-created_at", "-id"]
        # Every start inserts a run and every batch that settles one updates it: each index is
        # written then (migration 0008). The foreign keys that are mostly empty are indexed
        # only where set (what ON DELETE SET NULL looks up), and a workflow's runs by their
        # order, which finds its latest run without reading anyone else's.
        indexes = [
            models.Index(fields=["workflow", "created_at", "id"],
                         name="task_admin_run_latest"),
            models.Index(fields=["status"], name="task_admin_run_status"),
            *(models.Index(fields=[field], condition=models.Q((f"{field}__isnull", False)),
                           name=f"task_admin_run_{field}")
              for field in ("triggered_by", "rerun_of", "schedule", "alert_rule")),
        ]
        permissions = [
            ("revoke_workflowrun", _("Can revoke workflow runs")),
            ("rerun_workflowrun", _("Can re-run workflow runs from the point of failure")),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_name} #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_RUN

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class TaskRun(models.Model):
    """One leaf task of a run: its Celery task id is assigned before the canvas is sent."""

    # No index of its own: the (run, path) constraint's index serves every lookup by run.
    run = models.ForeignKey(
        WorkflowRun, on_delete=models.CASCADE, related_name="nodes", verbose_name=_("run"),
        db_index=False,
    )
    # Unique through Meta.constraints, not ``unique=True``: on PostgreSQL that would add a
    # second, LIKE (varchar_pattern_ops) index that no query uses and every insert maintains.
    task_id = models.CharField(_("task id"), max_length=255)
    path = models.CharField(_("path"), max_length=500)
    position = models.PositiveIntegerField(_("position"))
    task_name = models.CharField(_("task"), max_length=255)
    label = models.CharField(_("label"), max_length=200, blank=True)
    node = models.ForeignKey(
        "task_admin.WorkflowNode",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("workflow node"),
        db_index=False,  # a partial index in Meta.indexes
    )
    reused_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("result kept from"),
        db_index=False,  # a partial index in Meta.indexes
    )
    state = models.CharField(
        _("state"), max_length=10, choices=NodeState.choices, default=NodeState.PENDING
    )
    # How many times the task has started (its retries included); each one is a TaskAttempt
    # in ``attempts`` when the task was retried.
    attempt_count = models.PositiveSmallIntegerField(_("attempts"), default=0)
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    received_at = models.DateTimeField(_("received"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    runtime = models.FloatField(_("runtime (s)"), null=True, blank=True)
    result = models.JSONField(_("result"), null=True, blank=True)
    # False when ``result`` is a stand-in (a repr of a non-JSON or oversized value): a re-run
    # must then run the task again rather than hand the stand-in to the next task.
    result_complete = models.BooleanField(_("result stored whole"), default=True)
    exception = models.TextField(_("exception"), blank=True)
    traceback = models.TextField(_("traceback"), blank=True)

    objects = TaskRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("task run")
        verbose_name_plural = _("task runs")
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "path"], name="task_admin_taskrun_path_unique"),
            models.UniqueConstraint(fields=["task_id"], name="task_admin_taskrun_task_id_unique"),
        ]
        # Every start inserts a row per leaf and every tracking batch updates rows, so each
        # index costs on the hot paths. The links to a workflow node and to a kept result are
        # looked up only by value (on_delete's UPDATE ... WHERE <column> IN (...), the
        # composer's unlinking, retention), never for NULL, so NULLs stay out of their
        # indexes: nearly every task run has no kept result, code-started runs no node.
        indexes = [
            models.Index(fields=["state", "started_at"], name="task_admin_taskrun_state"),
            models.Index(fields=["node"], name="task_admin_taskrun_node",
                         condition=models.Q(node__isnull=False)),
            models.Index(fields=["reused_from"], name="task_admin_taskrun_reused_from",
                         condition=models.Q(reused_from__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.label or self.task_name} ({self.path})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_NODE


class TaskAttempt(models.Model):
    """One execution of a task run: the first try and each retry."""

    task_run = models.ForeignKey(
        TaskRun, on_delete=models.CASCADE, related_name="attempts", verbose_name=_("task run")
    )
    number = models.PositiveSmallIntegerField(_("attempt"))
    state = models.CharField(_("state"), max_length=10, choices=NodeState.choices)
    worker = models.CharField(_("worker"), max_length=255, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    next_eta = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    traceback = models.TextField(_("traceback"), blank=True)

    class Meta:
        verbose_name = _("attempt")
        verbose_name_plural = _("attempts")
        ordering = ["task_run", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["task_run", "number"], name="task_admin_attempt_number_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.task_run} attempt {self.number}"
