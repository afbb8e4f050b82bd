"""Models with no table: they give the operations pages (workers, queues, any task by id) an
entry in the admin index and permissions of their own. Their data lives in the workers and the
broker (``task_admin.operations``), never in the database."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Worker(models.Model):
    hostname = models.CharField(_("hostname"), max_length=255, primary_key=True)

    class Meta:
        managed = False
        verbose_name = _("worker")
        verbose_name_plural = _("workers")
        default_permissions = ("view",)
        permissions = [
            ("shutdown_worker", _("Can shut workers down")),
            ("resize_pool", _("Can grow or shrink a worker's pool")),
            ("manage_consumers", _("Can add or cancel a worker's queue consumers")),
            ("set_rate_limit", _("Can set a task's rate limit on workers")),
        ]

    def __str__(self) -> str:
        return self.hostname


class Queue(models.Model):
    name = models.CharField(_("name"), max_length=255, primary_key=True)

    class Meta:
        managed = False
        verbose_name = _("queue")
        verbose_name_plural = _("queues")
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.name


class CeleryTask(models.Model):
    """Any Celery task, by id: revoking one needs ``task_admin.revoke_workflowrun``."""

    task_id = models.CharField(_("task id"), max_length=255, primary_key=True)

    class Meta:
        managed = False
        verbose_name = _("Celery task")
        verbose_name_plural = _("Celery tasks (by id)")
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.task_id
