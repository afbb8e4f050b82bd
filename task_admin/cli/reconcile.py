"""``manage.py task_admin reconcile``: settle the nodes of workers that are gone, and bring
unfinished runs up to date from the result backend (what the periodic task does)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from task_admin import liveness

help = "Settle unfinished nodes whose worker is gone (what the periodic task does every 30 s)."


def add_arguments(parser) -> None:
    pass


def handle(command, **options) -> None:
    report = liveness.reconcile_all()
    command.stdout.write(_(
        "Asked %(asked)d worker(s), %(silent)d silent: %(lost)d task(s) lost, %(requeued)d "
        "back to the broker, %(settled)d from the result backend; %(repaired)d node(s) of "
        "unfinished runs brought up to date."
    ) % {
        "asked": len(report.asked), "silent": len(report.silent), "lost": len(report.lost),
        "requeued": len(report.requeued), "settled": len(report.settled),
        "repaired": report.repaired,
    })
