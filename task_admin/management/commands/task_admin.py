"""``manage.py task_admin <subcommand>``: the subcommands come from ``task_admin.cli``."""

from __future__ import annotations

from importlib import import_module

from django.core.management.base import BaseCommand

from task_admin.cli import SUBCOMMANDS


def subcommand_name(module) -> str:
    return getattr(module, "name", module.__name__.rsplit(".", 1)[-1].replace("_", "-"))


class Command(BaseCommand):
    help = "Run, inspect and maintain Celery workflows (task_admin)."

    def add_arguments(self, parser):
        subparsers = parser.add_subparsers(
            dest="subcommand", metavar="subcommand", title="subcommands", required=True
        )
        for path in SUBCOMMANDS:
            module = import_module(path)
            sub = subparsers.add_parser(
                subcommand_name(module), help=module.help, description=module.help
            )
            module.add_arguments(sub)
            sub.set_defaults(task_admin_handler=module.handle)

    def handle(self, *args, **options):
        handler = options.pop("task_admin_handler")
        options.pop("subcommand", None)
        return handler(self, **options)
