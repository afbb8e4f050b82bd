from __future__ import annotations

import pytest

from tests.support.demo import demo_project, demo_worker  # noqa: F401  (fixtures)
from tests.support.workers import CeleryProcess, start_celery


@pytest.fixture(scope="session")
def celery_app():
    from tests.testapp.celery import app

    return app


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, celery_app, tmp_path_factory):
    """A real ``celery worker`` (prefork, 2 processes) on the test database and Redis."""
    worker = start_celery(
        "worker",
        log_dir=tmp_path_factory.mktemp("celery"),
        app=celery_app,
    )
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker: CeleryProcess, celery_app):
    """Per test: the session's worker, with the queue emptied afterwards."""
    celery_worker.assert_alive()
    yield celery_worker
    celery_app.control.purge()


@pytest.fixture
def beat(worker, celery_app, tmp_path):
    """A real ``celery beat`` with the DatabaseScheduler, started by the test once its rows
    exist; always stopped."""
    started = []

    def start():
        process = start_celery(
            "beat", log_dir=tmp_path, app=celery_app,
            # Wake every second (default 5 s) so a 1-second schedule is kept.
            extra=("--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                   "--max-interval", "1", "--pidfile", ""),
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
