"""Admin registrations, one module per model family. Nothing else imports this package."""

from task_admin.admin import invocations, runs, workflows  # noqa: F401  (they register)
