"""``manage.py task_admin prune``: delete finished runs older than their retention."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from task_admin import retention

help = "Delete finished runs older than TASK_ADMIN['RETENTION_DAYS'], in short batches."


def add_arguments(parser) -> None:
    parser.add_argument(
        "--batch-size", type=int, default=500,
        help="runs deleted per transaction (default 500): smaller holds locks for less time",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="only say how many runs would be deleted",
    )


def handle(command, *, batch_size: int, dry_run: bool, **options) -> None:
    if batch_size < 1:
        raise CommandError(_("--batch-size must be at least 1."))
    if not retention.policy():
        command.stdout.write(
            _("No retention is set (TASK_ADMIN['RETENTION_DAYS']): nothing to do.")
        )
        return
    counts = retention.due_counts(limit=None) if dry_run else retention.prune(batch_size=batch_size)
    for status, count in sorted(counts.items()):
        if dry_run:
            line = ngettext("%(status)s: would delete %(count)d run",
                            "%(status)s: would delete %(count)d runs", count)
        else:
            line = ngettext("%(status)s: deleted %(count)d run",
                            "%(status)s: deleted %(count)d runs", count)
        command.stdout.write(line % {"status": status, "count": count})
    total = sum(counts.values())
    summary = (
        ngettext("%(count)d run would be deleted.", "%(count)d runs would be deleted.", total)
        if dry_run else
        ngettext("%(count)d run deleted.", "%(count)d runs deleted.", total)
    )
    command.stdout.write(command.style.SUCCESS(summary % {"count": total}))
