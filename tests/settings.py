"""Test settings: the demo project's, on an isolated database and Redis database.

``tests.redis_plugin`` has already pointed REDIS_URL at a Redis database of this run's own.
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

# Redis, or RabbitMQ in a vhost of this run's own (tests/rabbitmq_plugin.py).
CELERY_BROKER_URL = os.environ.get("TASK_ADMIN_TEST_BROKER_URL") or os.environ["REDIS_URL"]
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}

# Tests write files for the demo's file tasks here, workers read them.
DEMO_DATA_DIR = str(SQLITE_DIR / "data")
os.makedirs(DEMO_DATA_DIR, exist_ok=True)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
