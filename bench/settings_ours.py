"""Bench settings with task_admin installed: the demo project's, production-like.

Environment: BENCH_BACKEND ("redis" or "django-db"), BENCH_QUEUE (the queue this worker
consumes and sends to), BENCH_COUNT=1 to count task_admin's SQL statements (bench.counting).
"""

import os

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS, REDIS_URL, TASK_ADMIN

DEBUG = False  # as in production: Django would otherwise keep every query in memory
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
CELERY_RESULT_BACKEND = "django-db" if os.environ.get("BENCH_BACKEND") == "django-db" else REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BENCH_QUEUE", "celery")
LOGGING = {"version": 1, "disable_existing_loggers": False}
if os.environ.get("BENCH_COUNT") == "1":
    INSTALLED_APPS = [*INSTALLED_APPS, "bench.counting.CountingConfig"]
# A group of 1,000 tasks is 1,001 nodes with its container. BENCH_PREPARED: unset measures
# the default ("auto": the start statement is prepared on a direct connection), 1 prepares on
# every connection (True), 0 never (False).
TASK_ADMIN = {**TASK_ADMIN, "MAX_NODES": 2000,
              "PREPARED_STATEMENTS": {"1": True, "0": False}.get(
                  os.environ.get("BENCH_PREPARED", ""), "auto")}
