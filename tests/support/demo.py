"""The demo project, for the tests that are about it or use its fixtures.

The test settings install the tests' own app, not the demo. ``demo_project`` installs the demo
for one test in its place, with the changes of ``tests/settings_demo.py`` (the demo app, the
demo site's templates, ``project.celery.app`` as task_admin's Celery app): the demo's tasks are
then the project's tasks, as in ``make demo``, and the test app's are not offered (its ``suma``
would make the demo's ambiguous in pasted code). ``demo_worker`` is a worker of the demo
project's own, on the settings module ``tests.settings_demo``, that consumes the queue ``demo``
to which the demo's Celery app sends: the session's worker (the test app) never receives a
demo task it does not know, nor the demo worker a test app task.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import settings_demo
from tests.support.workers import CeleryProcess, start_celery

ROOT = Path(__file__).resolve().parents[2]
# The product's demo workflows (``make demo`` loads them): tasks of project.demo.tasks.
FIXTURE = ROOT / "fixtures" / "demo_workflows.json"


@pytest.fixture
def demo_project(settings):
    """The demo project installed for this test; gives its Celery app."""
    from project.celery import app

    # The demo's app in this process sends to the demo worker's queue (it is used by no test
    # but those about the demo).
    app.conf.task_default_queue = settings_demo.CELERY_TASK_DEFAULT_QUEUE
    for name in settings_demo.CHANGED:
        setattr(settings, name, getattr(settings_demo, name))
    return app


@pytest.fixture
def demo_worker(demo_project, tmp_path, django_db_setup) -> CeleryProcess:
    """A real worker of the demo project (``-A project``, tests/settings_demo.py) on the test
    database, consuming the queue ``demo``; stopped after the test."""
    worker = start_celery("worker", log_dir=tmp_path, app=demo_project, app_module="project",
                          settings="tests.settings_demo")
    yield worker
    worker.stop()
    demo_project.control.purge()
