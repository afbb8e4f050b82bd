"""Admin registrations, one module per model family. Nothing else imports this package."""

from task_admin.admin import (  # noqa: F401  (they register)
    invocations,
    operations,
    runs,
    schedules,
    task_runs,
    workflows,
)
