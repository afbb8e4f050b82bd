"""``manage.py task_admin status <run> [--json]``: a run's status and each task's."""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from task_admin import services
from task_admin.models import WorkflowRun

help = "Show a run's status and each task's state, result or exception."


def add_arguments(parser) -> None:
    parser.add_argument("run", type=int, help="the run's number (#12 is 12)")
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="print JSON, for scripts"
    )


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(run: WorkflowRun) -> str:
    lines = [
        _("Run #%(run)s of “%(name)s”: %(status)s, %(finished)d of %(total)d tasks finished.")
        % {"run": run.pk, "name": run.workflow_name, "status": run.get_status_display(),
           "finished": run.finished_nodes, "total": run.total_nodes}
    ]
    if run.error:
        lines.append("  " + run.error)
    for task_run in run.nodes.order_by("position"):
        outcome = task_run.exception or (
            "" if task_run.result is None else json.dumps(task_run.result, ensure_ascii=False)
        )
        lines.append(
            f"  {task_run.path:<16} {task_run.get_state_display():<10} {task_run.task_name}"
            + (f"  {_short(outcome)}" if outcome else "")
        )
    return "\n".join(lines)


def as_dict(run: WorkflowRun) -> dict:
    return {
        "run": run.pk,
        "workflow": run.workflow_name,
        "status": run.status,
        "finished": run.is_finished,
        "total_tasks": run.total_nodes,
        "finished_tasks": run.finished_nodes,
        "error": run.error,
        "tasks": [
            {"path": n.path, "task": n.task_name, "task_id": n.task_id, "state": n.state,
             "result": n.result, "exception": n.exception}
            for n in run.nodes.order_by("position")
        ],
    }


def handle(command, *, run: int, as_json: bool, **options) -> None:
    found = WorkflowRun.objects.filter(pk=run).first()
    if found is None:
        raise CommandError(_("There is no run #%(run)s.") % {"run": run})
    services.reconcile_run(found)
    found.refresh_from_db()
    if as_json:
        command.stdout.write(json.dumps(as_dict(found), ensure_ascii=False, indent=2))
    else:
        command.stdout.write(describe(found))
