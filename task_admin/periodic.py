"""The app's own periodic tasks, installed into django-celery-beat after ``migrate``.

Each entry is (name, task name, interval in seconds). ``install()`` creates or updates the beat
``PeriodicTask`` of each by name, so running ``migrate`` again never duplicates one, and beat
(with the DatabaseScheduler) sends them like any other entry: disable or retime one in beat's
admin if you need to (a later ``migrate`` sets the interval back, and keeps it disabled).
"""

from __future__ import annotations

from typing import NamedTuple

from django.db.models.signals import post_migrate


class Entry(NamedTuple):
    name: str
    task: str
    every: int  # seconds


ENTRIES: list[Entry] = [
    # Runs that have not finished within their alert settings' SLA (also those whose worker
    # died and will never report).
    Entry("task_admin: check late runs (alerts)", "task_admin.check_alert_slas", 60),
    # Nodes of workers that are gone, and runs whose events never reached the database
    # (task_admin.liveness).
    Entry("task_admin: settle nodes of lost workers", "task_admin.reconcile", 30),
    # Finished runs past TASK_ADMIN["RETENTION_DAYS"] (task_admin.retention).
    Entry("task_admin: prune old runs", "task_admin.prune", 3600),
]


def install(using: str = "default", entries: list[Entry] | None = None) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for entry in ENTRIES if entries is None else entries:
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=entry.every, period=IntervalSchedule.SECONDS
        )
        task = PeriodicTask.objects.using(using).filter(name=entry.name).first()
        if task is None:
            task = PeriodicTask(name=entry.name)
        elif task.task == entry.task and task.interval_id == interval.pk:
            continue  # unchanged: saving would make beat reload its schedule for nothing
        task.task = entry.task
        task.interval = interval
        task.crontab = task.solar = task.clocked = None
        task.save(using=using)  # save() tells beat that its schedule changed


def _post_migrate(sender, using="default", plan=None, **kwargs) -> None:
    from django.apps import apps

    if not apps.is_installed("django_celery_beat"):
        return
    install(using)


def connect(app_config) -> None:
    """Called once from ``TaskAdminConfig.ready()``."""
    post_migrate.connect(_post_migrate, sender=app_config, dispatch_uid="task_admin.periodic")
