"""The test settings on SQLite exactly as ``startproject`` sets it up: no WAL, no IMMEDIATE
transactions, the default 5-second busy timeout, connections closed after every task, and the
Redis result backend (what is written to the database is task_admin's alone).

``TASK_ADMIN_SQLITE_FILE`` names the database file; ``TASK_ADMIN_TEST_QUEUE`` the queue the
worker consumes and the runs are sent to (the suite's session worker must not take them).
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import REDIS_URL

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["TASK_ADMIN_SQLITE_FILE"],
    }
}
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("TASK_ADMIN_TEST_QUEUE", "celery")
# Celery's Django fixup then closes the connection after every task, as in a new project.
CELERY_DB_REUSE_MAX = None
