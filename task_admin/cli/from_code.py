"""``manage.py task_admin from-code "<expression>" --name NAME``: a workflow from canvas code.

The same reading and checks as the admin's "from code" page (``canvas_code``): the text is
parsed, never run; anything refused is reported with its line and column, nothing is saved,
and the command exits with status 1. Warnings (e.g. a chord body that receives a list it
cannot take) are printed and do not stop the save.
"""

from __future__ import annotations

import sys

from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from task_admin import canvas_code
from task_admin.models import Workflow

help = (
    "Create a workflow (or, with --replace, replace its tree) from a Celery canvas expression "
    "such as \"chain(suma.s(1, 2), suma.s(5))\"; '-' reads the code from standard input."
)


def add_arguments(parser) -> None:
    parser.add_argument("code", help="the canvas expression, or '-' to read it from stdin")
    parser.add_argument("--name", required=True, help="the workflow's name")
    parser.add_argument("--description", default="", help="the new workflow's description")
    parser.add_argument(
        "--replace", action="store_true",
        help="replace the tree of the existing workflow NAME instead of creating one",
    )
    parser.add_argument(
        "--disabled", action="store_true", help="create the workflow disabled"
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="check and show the tree as code, save nothing",
    )


def handle(command, *, code: str, name: str, description: str, replace: bool, disabled: bool,
           dry_run: bool, **options) -> None:
    text = sys.stdin.read() if code == "-" else code
    reading = canvas_code.read(text)
    for note in reading.notes:
        command.stderr.write(_("note: %(note)s") % {"note": note})
    for warning in reading.warnings:
        command.stderr.write(command.style.WARNING(_("warning: %(warning)s") % {
            "warning": warning}))
    if not reading.ok:
        raise CommandError("\n".join(reading.errors))
    if dry_run:
        command.stdout.write(canvas_code.render(reading.spec))
        return
    try:
        if replace:
            workflow = Workflow.objects.filter(name=name).first()
            if workflow is None:
                raise CommandError(_("No workflow is named “%(name)s”.") % {"name": name})
            created = canvas_code.replace_tree(workflow, reading)
            done = _("Replaced the tree of “%(name)s” (#%(pk)s).")
        else:
            workflow, created = canvas_code.create_workflow(
                reading, name=name, description=description, enabled=not disabled
            )
            done = _("Created workflow “%(name)s” (#%(pk)s).")
    except canvas_code.Refused as exc:
        raise CommandError("\n".join(exc.messages)) from None
    command.stdout.write(command.style.SUCCESS(done % {"name": workflow.name, "pk": workflow.pk}))
    if created:
        command.stdout.write(
            ngettext("%(count)d new task invocation: %(names)s",
                     "%(count)d new task invocations: %(names)s", len(created))
            % {"count": len(created), "names": ", ".join(i.name for i in created)}
        )
