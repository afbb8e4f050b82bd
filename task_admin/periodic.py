"""The app's own periodic tasks, installed into django-celery-beat after ``migrate``.

Each entry is created, or updated by name, by a ``post_migrate`` handler (never duplicated);
staff may disable one in beat's admin and a later migrate keeps it disabled. Add an entry here
rather than asking users to schedule it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    every: int  # seconds


ENTRIES: list[Entry] = [
    Entry("task_admin: prune old runs", "task_admin.prune", 3600),
    Entry("task_admin: settle nodes of lost workers", "task_admin.reconcile", 30),
]


def install(sender=None, using="default", **kwargs) -> None:
    """Create or update each entry's interval PeriodicTask (post_migrate handler)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for entry in ENTRIES:
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=entry.every, period=IntervalSchedule.SECONDS
        )
        task = PeriodicTask.objects.using(using).filter(name=entry.name).first()
        if task is None:
            PeriodicTask.objects.using(using).create(
                name=entry.name, task=entry.task, interval=interval
            )
        elif task.task != entry.task or task.interval_id != interval.pk:
            # save() (not update()) so that beat notices the change.
            task.task, task.interval = entry.task, interval
            task.crontab = task.solar = task.clocked = None
            task.save()
