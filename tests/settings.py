"""The test settings: a project of the tests' own (tests/testapp), on an isolated database and
Redis database. The demo project is not installed; tests about the demo install it themselves
(``demo_project`` in tests/support/demo.py; its worker runs tests/settings_demo.py).

``tests.support.redis_plugin`` has already pointed REDIS_URL at a Redis database of this run's
own. Worker processes started by the tests load these settings too, with TASK_ADMIN_WORKER_DB
naming the test database that pytest-django created.
"""

import os
import tempfile
from pathlib import Path

from project import database

SQLITE_DIR = Path(os.environ.setdefault("TASK_ADMIN_TEST_DIR", tempfile.mkdtemp(prefix="ta-")))

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    # First: its admin/index.html (the dashboard on the index) overrides the admin's.
    "tests.testapp",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "import_export",
    "task_admin",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = SQLITE_DIR / "static"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- Celery: JSON only, results in the database, as the README's setup ------------------------
REDIS_URL = os.environ["REDIS_URL"]
# Redis, or RabbitMQ in a vhost of this run's own (tests/support/rabbitmq_plugin.py).
CELERY_BROKER_URL = os.environ.get("TASK_ADMIN_TEST_BROKER_URL") or REDIS_URL
# A fault test may give its worker a result backend other than the database.
CELERY_RESULT_BACKEND = os.environ.get("TASK_ADMIN_TEST_RESULT_BACKEND", "django-db")
CELERY_RESULT_EXTENDED = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}
# Celery's Django fixup closes the database connection around every task unless told to reuse
# it; task_admin's tracking writes from the worker, so reconnecting each time would dominate.
CELERY_DB_REUSE_MAX = 200
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# The file tasks (examples/tasks.py) read here; tests write the files, workers read them.
EXAMPLE_DATA_DIR = str(SQLITE_DIR / "data")
os.makedirs(EXAMPLE_DATA_DIR, exist_ok=True)

# --- alerts -----------------------------------------------------------------------------------
# Workers are other processes: what they email is recorded as files (tests/support/mailbox.py).
EMAIL_BACKEND = "tests.support.mailbox.RecordingBackend"
DEFAULT_FROM_EMAIL = "task-admin-tests@localhost"
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
    "CELERY_APP": "tests.testapp.celery.app",
    "SITE_URL": "http://admin.test",
    # The lost-worker reconciler settles a node quiet for a second (30 s by default), so tests
    # that kill a worker need not wait.
    "LOST_AFTER": 1,
    "ALERT_RETRY_DELAY": 1,
    "ALERT_WEBHOOK_ALLOWED": [f"http://127.0.0.1:{TEST_HOOK_PORT}/hooks/"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"task_admin": {"handlers": ["console"], "level": "INFO"}},
}
