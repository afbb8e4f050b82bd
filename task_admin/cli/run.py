"""``manage.py task_admin run "<workflow>" [--set path.kwarg=value ...] [--wait]``."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from task_admin import services
from task_admin.models import RunStatus

help = (
    "Start a workflow by name, with the admin's checks; with --wait, exit non-zero unless "
    "it succeeds."
)


def add_arguments(parser) -> None:
    parser.add_argument("workflow", help="the workflow's name")
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="PATH.KWARG=VALUE",
        help="a keyword argument for this run only, for the task at PATH (e.g. root.1.b=3); "
        "VALUE is read as JSON, or else taken as a string. Repeat for more.",
    )
    parser.add_argument(
        "--wait", action="store_true",
        help="wait until the run has finished; exit with status 1 unless it succeeded",
    )
    parser.add_argument(
        "--timeout", type=float, default=None,
        help="with --wait: give up (exit status 2) after this many seconds",
    )
    parser.add_argument(
        "--user", default=None,
        help="run as this user: needs the run_workflow permission; logged in the admin history",
    )


def parse_assignments(assignments: list[str]) -> dict[str, dict]:
    """``["root.1.b=3", "root.1.c=x"]`` -> ``{"root.1": {"b": 3, "c": "x"}}``."""
    overrides: dict[str, dict] = {}
    for item in assignments:
        target, sep, text = item.partition("=")
        path, dot, kwarg = target.rpartition(".")
        if not sep or not dot or not path or not kwarg:
            raise CommandError(
                _("--set %(item)s: write PATH.KWARG=VALUE, e.g. root.1.b=3.") % {"item": item}
            )
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        overrides.setdefault(path, {})[kwarg] = value
    return overrides


def handle(command, *, workflow: str, assignments: list[str], wait: bool,
           timeout: float | None, user: str | None, **options) -> None:
    overrides = parse_assignments(assignments)
    account = None
    if user is not None:
        account = get_user_model()._default_manager.filter(
            **{get_user_model().USERNAME_FIELD: user}
        ).first()
        if account is None:
            raise CommandError(_("There is no user “%(user)s”.") % {"user": user})
    try:
        run = services.start(
            workflow, overrides=overrides, user=account, detail="manage.py task_admin run"
        )
    except services.WorkflowProblems as exc:
        problems = "\n".join(f"  {problem}" for problem in exc.problems)
        raise CommandError(
            _("“%(name)s” cannot run:\n%(problems)s") % {"name": workflow, "problems": problems}
        ) from exc
    except services.CannotRun as exc:
        raise CommandError(str(exc)) from exc
    run.refresh_from_db()
    if run.status == RunStatus.DISPATCH_FAILED:
        raise CommandError(
            _("Run #%(run)s of “%(name)s” could not be sent: %(error)s")
            % {"run": run.pk, "name": workflow, "error": run.error}
        )
    command.stdout.write(
        _("Run #%(run)s of “%(name)s” was started.") % {"run": run.pk, "name": workflow}
    )
    if not wait:
        return
    try:
        run = services.wait(run, timeout=timeout)
    except TimeoutError as exc:
        raise CommandError(str(exc), returncode=2) from exc
    from task_admin.cli.status import describe

    command.stdout.write(describe(run))
    if run.status != RunStatus.SUCCEEDED:
        raise CommandError(
            _("Run #%(run)s ended %(status)s.")
            % {"run": run.pk, "status": run.get_status_display()}
        )
