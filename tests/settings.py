"""Test settings: the demo project's, on an isolated database and Redis database.

``tests.support.redis_plugin`` has already pointed REDIS_URL at a Redis database of this run's own.
Worker processes started by the tests load these settings too, with TASK_ADMIN_WORKER_DB naming
the test database that pytest-django created.
"""

import os
import tempfile
from pathlib import Path

from project import database
from project.settings import *  # noqa: F403
from project.settings import DATABASES

SQLITE_DIR = Path(os.environ.setdefault("TASK_ADMIN_TEST_DIR", tempfile.mkdtemp(prefix="ta-")))

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database.from_url(os.environ["DATABASE_URL"])}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES = {"default": database.sqlite(SQLITE_DIR / "main.sqlite3")}
    # A file, not Django's in-memory default, so worker processes share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(SQLITE_DIR / "test.sqlite3")}

if os.environ.get("TASK_ADMIN_WORKER_DB"):
    DATABASES["default"]["NAME"] = os.environ["TASK_ADMIN_WORKER_DB"]
if os.environ.get("TASK_ADMIN_TEST_DB_TAG") and os.environ.get("DATABASE_URL"):
    # Names a worker's PostgreSQL connections, so a fault test can cut that worker's alone.
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = os.environ[
        "TASK_ADMIN_TEST_DB_TAG"]

# Redis, or RabbitMQ in a vhost of this run's own (tests/support/rabbitmq_plugin.py).
CELERY_BROKER_URL = os.environ.get("TASK_ADMIN_TEST_BROKER_URL") or os.environ["REDIS_URL"]
# A fault test may give its worker a result backend other than the database.
CELERY_RESULT_BACKEND = os.environ.get("TASK_ADMIN_TEST_RESULT_BACKEND", CELERY_RESULT_BACKEND)  # noqa: F405
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}
# The lost-worker reconciler settles a node quiet for a second (30 s by default), so tests that
# kill a worker need not wait.
TASK_ADMIN = {**TASK_ADMIN, "LOST_AFTER": 1}  # noqa: F405

# Tests write files for the demo's file tasks here, workers read them.
DEMO_DATA_DIR = str(SQLITE_DIR / "data")
os.makedirs(DEMO_DATA_DIR, exist_ok=True)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- alerts -----------------------------------------------------------------------------------
# Workers are other processes: what they email is recorded as files (tests/support/mailbox.py).
EMAIL_BACKEND = "tests.support.mailbox.RecordingBackend"
TEST_MAIL_DIR = str(SQLITE_DIR / "mail")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The loopback webhook receiver of the alert tests listens here; chosen once per test run and
# handed to the workers through the environment, like the test directory.
TEST_HOOK_PORT = int(os.environ.setdefault("TASK_ADMIN_TEST_HOOK_PORT", str(_free_port())))
TASK_ADMIN = {
    **TASK_ADMIN,
    "SITE_URL": "http://admin.test",
    "ALERT_RETRY_DELAY": 1,
    "ALERT_WEBHOOK_ALLOWED": [f"http://127.0.0.1:{TEST_HOOK_PORT}/hooks/"],
}
