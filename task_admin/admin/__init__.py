"""Admin registrations, one module per model family. Nothing else imports this package."""

from task_admin.admin import invocations, runs, schedules, workflows  # noqa: F401  (they register)
