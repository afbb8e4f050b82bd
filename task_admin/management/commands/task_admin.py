"""``manage.py task_admin <subcommand>``: the subcommands are listed in ``task_admin.cli``."""

from __future__ import annotations

from importlib import import_module

from django.core.management.base import BaseCommand, CommandError

from task_admin import cli


class Command(BaseCommand):
    help = "task_admin's commands: run one with --help for its options."

    def add_arguments(self, parser):
        subparsers = parser.add_subparsers(
            dest="subcommand", metavar="subcommand", parser_class=type(parser)
        )
        subparsers.required = True
        for path in cli.SUBCOMMANDS:
            module = import_module(path)
            name = path.rsplit(".", 1)[1].replace("_", "-")
            sub = subparsers.add_parser(
                name, help=module.help, description=module.help, called_from_command_line=getattr(
                    parser, "called_from_command_line", None
                ),
            )
            sub.set_defaults(_module=path)
            module.add_arguments(sub)

    def handle(self, *args, **options):
        path = options.pop("_module", None)
        if path is None:
            raise CommandError("Name a subcommand; --help lists them.")
        return import_module(path).handle(self, **options)
