"""``manage.py task_admin prune``: delete finished runs older than their retention."""

from __future__ import annotations

from task_admin import retention

help = "Delete finished runs older than TASK_ADMIN['RETENTION_DAYS'], in short batches."


def add_arguments(parser) -> None:
    parser.add_argument(
        "--batch-size", type=int, default=500,
        help="Runs deleted per transaction (default 500): smaller holds locks for less time.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="Only say how many runs would be deleted.",
    )


def handle(command, *, batch_size: int, dry_run: bool, **options) -> None:
    if batch_size < 1:
        from django.core.management import CommandError

        raise CommandError("--batch-size must be at least 1.")
    if not retention.policy():
        command.stdout.write("No retention is set (TASK_ADMIN['RETENTION_DAYS']): nothing to do.")
        return
    if dry_run:
        counts = retention.due_counts()
        verb = "would delete"
    else:
        counts = retention.prune(batch_size=batch_size)
        verb = "deleted"
    for status, count in sorted(counts.items()):
        command.stdout.write(f"{status}: {verb} {count} run(s)")
    command.stdout.write(command.style.SUCCESS(f"{sum(counts.values())} run(s) {verb.split()[-1]}"))
