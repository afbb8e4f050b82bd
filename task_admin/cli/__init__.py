"""The subcommands of ``manage.py task_admin``: one module each, listed here.

Each module defines ``help``, ``add_arguments(parser)`` and ``handle(command, **options)``
(``command`` is the running ``BaseCommand``, for ``stdout`` and ``style``).
"""

SUBCOMMANDS = [
    "task_admin.cli.prune",
]
