"""``manage.py task_admin reconcile``: settle the nodes of workers that are gone."""

from __future__ import annotations

from django.core.management import CommandError

from task_admin import liveness

help = "Settle unfinished nodes whose worker is gone (what the periodic task does every 30 s)."


def add_arguments(parser) -> None:
    pass


def handle(command, **options) -> None:
    try:
        report = liveness.reconcile_all()
    except liveness.BrokerUnreachable as exc:
        raise CommandError(f"The workers could not be asked (broker: {exc}).") from exc
    command.stdout.write(
        f"asked {len(report.asked)} worker(s), {len(report.silent)} silent: "
        f"{len(report.lost)} task(s) lost, {len(report.requeued)} back to the broker, "
        f"{len(report.settled)} from the result backend; {report.repaired} node(s) of "
        "unfinished runs brought up to date"
    )
