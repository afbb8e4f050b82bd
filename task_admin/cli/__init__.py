"""Subcommands of ``manage.py task_admin``: one module each, listed in ``SUBCOMMANDS``.

Each module defines ``help`` (one line), ``add_arguments(parser)`` and
``handle(command, **options)``, where ``command`` is the running ``BaseCommand`` (for
``command.stdout`` and ``command.style``). The subcommand's name is the module's last name,
with ``_`` written ``-``, unless the module sets ``name``. Raise ``CommandError`` to fail: the
process then exits with status 1 (or the error's ``returncode``).
"""

SUBCOMMANDS = [
    "task_admin.cli.from_code",
    "task_admin.cli.run",
    "task_admin.cli.status",
    "task_admin.cli.prune",
    "task_admin.cli.reconcile",
]
