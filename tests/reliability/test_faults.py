"""Issue 8, faults proven with real processes: Redis restarted under a chord in flight, the
database unavailable inside the worker's signal handlers.

Each test uses servers of its own: a Redis server on a free port (never the machine's), and on
PostgreSQL the test database's connections blocked for a few seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from celery import Celery
from celery.result import AsyncResult
from django.db import connection

from project import localredis
from task_admin import liveness, services
from task_admin.models import NodeState, RunStatus, TaskRun, WorkflowRun
from tests.support.factories import SUMA, invocation, workflow
from tests.support.workers import start_celery, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
TASKS = "tests.testapp.tasks."


class RedisServer:
    """A redis-server of the test's own, with its data on disk (append-only file) like a
    production one, so that a restart keeps what the broker held."""

    def __init__(self, workdir):
        self.binary = shutil.which("redis-server")
        self.port = localredis._free_port()
        self.dir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: localredis.answers(self.url), timeout=10, what="redis-server to start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()  # a clean shutdown: the append-only file is flushed
            self.process.wait(timeout=10)


def app_on(broker: str, **conf) -> Celery:
    app = Celery("fault", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_url = broker
    app.conf.update(conf)
    return app


def finished(run: WorkflowRun, app: Celery, timeout: float = 150) -> WorkflowRun:
    """Wait for the run to finish, running the periodic reconciler as beat would."""
    def done():
        liveness.reconcile_all(app)
        run.refresh_from_db()
        return run.is_finished

    wait_for(done, timeout=timeout, interval=0.5, what=f"run #{run.pk} to finish")
    return run


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
def test_redis_restarted_under_a_chord_in_flight(tmp_path, settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RECONCILE_AFTER": 0}
    redis = RedisServer(tmp_path)
    redis.start()
    app = app_on(redis.url)
    worker = None
    try:
        worker = start_celery("worker", log_dir=tmp_path, app=app,
                              env={"REDIS_URL": redis.url})
        wf = workflow("chord across a restart", ("chord", [
            invocation(TASKS + "slow", kwargs={"seconds": 2}, immutable=True),
            invocation(TASKS + "slow", kwargs={"seconds": 2}, immutable=True),
        ], invocation(TASKS + "sum_list")))
        run = services.run_workflow(wf, app=app)
        header = list(run.nodes.filter(path__contains="header"))
        wait_for(lambda: TaskRun.objects.filter(
            pk__in=[n.pk for n in header], state=NodeState.STARTED).count() == 2, timeout=90,
            what="the chord's header to start")
        # Down while the header finishes and the body is sent, then back on the same port.
        redis.stop()
        time.sleep(3)
        redis.start()

        run = finished(run, app)
        body = run.nodes.get(path__endswith="body")
        # Completed, or failed with the reason: never stuck.
        if run.status == RunStatus.SUCCEEDED:
            assert body.result == 4
        else:
            assert body.state == NodeState.FAILURE and body.exception, body
        assert all(n.state == NodeState.SUCCESS for n in run.nodes.filter(pk__in=[
            n.pk for n in header]))
        # The worker reconnected: a new run goes through.
        again = finished(services.run_workflow(
            workflow("after", ("group", [invocation(SUMA, [2, 2])])), app=app), app)
        assert again.status == RunStatus.SUCCEEDED
        worker.assert_alive()
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="blocks PostgreSQL connections")
def test_database_unavailable_inside_the_handlers(tmp_path, settings, celery_app):
    """Handlers that cannot write do not touch the task's own result; the reconciler repairs
    the nodes from the result backend once the database is back."""
    import psycopg

    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RECONCILE_AFTER": 0}
    results = os.environ["REDIS_URL"]
    app = app_on(celery_app.conf.broker_url, result_backend=results)
    queue = f"db-fault-{os.getpid()}"
    # Only this worker's connections are cut: the session's worker, used by later tests, keeps
    # its own (its main process would otherwise fail on its next use of a closed connection).
    tag = f"ta-db-fault-{os.getpid()}"
    worker = start_celery("worker", log_dir=tmp_path, app=app, extra=("-Q", queue),
                          env={"TASK_ADMIN_TEST_RESULT_BACKEND": results,
                               "TASK_ADMIN_TEST_DB_TAG": tag})
    name = connection.settings_dict["NAME"]
    admin_dsn = dict(connection.get_connection_params(), dbname="postgres")
    admin_dsn.pop("cursor_factory", None)
    admin_dsn.pop("context", None)
    admin_dsn.pop("prepare_threshold", None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        mine = cursor.fetchone()[0]

    def allow(flag: bool):
        with psycopg.connect(**admin_dsn, autocommit=True) as pg:
            pg.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(flag).lower()}')
            if not flag:
                pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = %s AND application_name = %s AND pid <> %s",
                           [name, tag, mine])

    try:
        wf = workflow("while the database is away", ("group", [
            invocation(SUMA, [2, 2], queue=queue), invocation(SUMA, [4, 4], queue=queue),
        ]))
        with pytest.MonkeyPatch.context() as patch:
            # Rows committed now; the canvas is sent once the database is unreachable.
            sent = []
            patch.setattr(services, "dispatch", lambda run_id, sig: sent.append((run_id, sig)))
            run = services.run_workflow(wf, app=app)
        allow(False)
        try:
            sent[0][1].apply_async()
            ids = list(run.nodes.values_list("task_id", flat=True))
            # The tasks' own results are stored (in the Redis result backend) all the same.
            wait_for(lambda: all(AsyncResult(i, app=app).state == "SUCCESS" for i in ids),
                     timeout=90, what="the tasks to succeed while the database is away")
            assert sorted(AsyncResult(i, app=app).result for i in ids) == [4, 8]
        finally:
            allow(True)
        assert set(run.nodes.values_list("state", flat=True)) <= {
            NodeState.PENDING, NodeState.RECEIVED, NodeState.STARTED
        }  # nothing could be recorded
        run = finished(run, app)
        assert run.status == RunStatus.SUCCEEDED
        assert sorted(run.nodes.values_list("result", flat=True)) == [4, 8]
        # The worker's handlers work again once the database is back.
        again = services.run_workflow(workflow("after", ("group", [
            invocation(SUMA, [1, 1], queue=queue)])), app=app)
        wait_for(lambda: WorkflowRun.objects.get(pk=again.pk).is_finished, timeout=90,
                 what="a run recorded by the handlers again")
        worker.assert_alive()
    finally:
        worker.stop()
