"""The test settings with the demo project installed in place of the test app.

The settings module of the demo worker (``demo_worker`` in tests/support/demo.py); in the test
process ``demo_project`` applies the settings named in ``CHANGED`` for the length of a test.
"""

from pathlib import Path

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, TASK_ADMIN, TEMPLATES

ROOT = Path(__file__).resolve().parent.parent

INSTALLED_APPS = ["project.demo" if app == "tests.testapp" else app for app in INSTALLED_APPS]
# The demo site's admin overrides (branding, the dashboard on the index).
TEMPLATES = [{**TEMPLATES[0], "DIRS": [ROOT / "templates"]}]
TASK_ADMIN = {**TASK_ADMIN, "CELERY_APP": "project.celery.app"}
# A queue of the demo's own, so that the session's worker (the test app) never takes its tasks.
CELERY_TASK_DEFAULT_QUEUE = "demo"

CHANGED = ("INSTALLED_APPS", "TEMPLATES", "TASK_ADMIN", "CELERY_TASK_DEFAULT_QUEUE")
