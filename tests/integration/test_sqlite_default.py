"""SQLite as ``startproject`` leaves it, a multi-process worker, a tracked group beside the
project's own tasks (issue 7's case: 60 beside 300 on two processes; and a heavier one): the run
is recorded whole and the worker logs no ERROR, nor even a write that found the database locked
(before the batches took the write lock first, the heavier case logged about twenty).

Everything that touches that database runs in processes with ``tests.settings_sqlite_default``
(its own file, no WAL, no IMMEDIATE transactions, 5 s busy timeout), never in this test
process, whose database is pytest-django's.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid

import pytest
import redis

from tests.support.factories import SUMA
from tests.support.workers import ROOT, start_celery, wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("leaves", "plain_tasks", "processes"), [(60, 300, 2), (200, 600, 4)])
def test_a_tracked_group_beside_plain_tasks_logs_no_error(tmp_path, celery_app, leaves,
                                                          plain_tasks, processes):
    database = tmp_path / "db.sqlite3"
    queue = f"sqlite-default-{uuid.uuid4().hex[:8]}"
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings_sqlite_default",
           "TASK_ADMIN_SQLITE_FILE": str(database), "TASK_ADMIN_TEST_QUEUE": queue}

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env={**os.environ, **env},
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    manage("migrate", "--noinput", "-v", "0")
    code = "group([" + ", ".join(f"suma.s({i}, {i})" for i in range(leaves)) + "])"
    manage("task_admin", "from-code", code, "--name", "sixty")
    worker = start_celery("worker", log_dir=tmp_path, app=celery_app, env=env,
                          extra=("--queues", queue, "--concurrency", str(processes)))
    results = redis.Redis.from_url(os.environ["REDIS_URL"])
    plain = [f"plain-{uuid.uuid4()}" for _ in range(plain_tasks)]
    half = plain_tasks // 2
    try:
        for task_id in plain[:half]:
            celery_app.send_task(SUMA, args=(1, 2), task_id=task_id, queue=queue)
        manage("task_admin", "run", "sixty")
        for task_id in plain[half:]:
            celery_app.send_task(SUMA, args=(1, 2), task_id=task_id, queue=queue)

        def run_status():
            with sqlite3.connect(database, timeout=30) as db:
                return db.execute(
                    "SELECT status, finished_nodes FROM task_admin_workflowrun"
                ).fetchone()

        wait_for(lambda: run_status()[0] in ("succeeded", "failed", "partially_failed"),
                 timeout=180, what="the tracked run to finish")
        wait_for(lambda: results.exists(*(f"celery-task-meta-{i}" for i in plain)) == plain_tasks,
                 timeout=180, what="the plain tasks")
    finally:
        # The last jobs may still be returning to the main process when their results are
        # stored: a SIGTERM to the whole group would make it log them as lost (an ERROR).
        worker.stop(main_only=True)
    assert run_status() == ("succeeded", leaves)
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM task_admin_taskrun WHERE state = 'SUCCESS'"
                          " AND started_at IS NOT NULL").fetchone() == (leaves,)
    errors = [line for line in worker.log().splitlines()
              if "ERROR" in line or "database is locked" in line]
    assert errors == [], "\n".join(errors[:20])
