"""The tests' Celery app (``TASK_ADMIN["CELERY_APP"]`` of the test settings; ``-A tests.testapp``
for the worker and beat processes the tests start)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("testapp")
# Every CELERY_* setting of tests/settings.py configures the app (the run's own broker, ...).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
