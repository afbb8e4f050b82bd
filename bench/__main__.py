"""``make bench``: task_admin against raw Celery, measured in the same run on the same worker.

Each scenario sends the same canvas twice: once as plain Celery (``group``/``chain`` of
``suma``), once as a stored workflow through ``services.run_workflow`` (which also records every
node from the worker's signals). Both wait by polling the database every 20 ms until every task
has finished. Prints seconds and the task_admin/raw ratio. BENCH_N sets the group size.
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="task-admin-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
os.environ.setdefault("DATABASE_URL", f"sqlite:///{WORK}/bench.sqlite3")

from project import localredis  # noqa: E402  (after the settings module is chosen)

REDIS = localredis.ensure(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
TOKEN = secrets.token_hex(8)
DB = localredis.claim_database(REDIS.url, TOKEN) if REDIS.process is None else 0
os.environ["REDIS_URL"] = localredis.with_db(REDIS.url, DB)

import django  # noqa: E402

django.setup()

from celery import chain, group, uuid  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django_celery_results.models import TaskResult  # noqa: E402

from project.celery import app  # noqa: E402
from project.demo.tasks import suma  # noqa: E402
from task_admin import canvas, services  # noqa: E402
from task_admin.canvas.build import to_signature  # noqa: E402
from task_admin.models import TaskInvocation, Workflow, WorkflowNode  # noqa: E402

N = int(os.environ.get("BENCH_N", "300"))
CHAIN = 30
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))


def wait_until(predicate, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.02)


def raw(signature, ids):
    start = time.perf_counter()
    signature.apply_async()
    wait_until(lambda: TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").count()
               == len(ids))
    return time.perf_counter() - start


def ours(workflow):
    start = time.perf_counter()
    run = services.run_workflow(workflow)

    def done():
        run.refresh_from_db(fields=["status"])
        return run.is_finished

    wait_until(done)
    assert run.status == "succeeded", run.status
    return time.perf_counter() - start


def stored(name, kind, invocations):
    workflow = Workflow.objects.create(name=name)
    root = WorkflowNode.objects.create(workflow=workflow, kind=kind)
    WorkflowNode.objects.bulk_create(
        WorkflowNode(workflow=workflow, parent=root, kind="task", position=i, invocation=inv,
                     key=f"n{i}")
        for i, inv in enumerate(invocations)
    )
    return workflow


def main():
    print(f"[bench] Redis: {REDIS.how} (database {DB}); database: {os.environ['DATABASE_URL']}")
    call_command("migrate", verbosity=0)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "worker", "-c", "2", "--pool",
         "prefork", "-l", "WARNING", "-n", f"bench-{TOKEN}@%h"],
        cwd=ROOT, env=os.environ.copy(), start_new_session=True,
    )
    try:
        wait_until(lambda: app.control.ping(timeout=0.5), timeout=60)
        pair = TaskInvocation.objects.create(name="2+2", task=suma.name, args=[2, 2])
        plus = TaskInvocation.objects.create(name="+1", task=suma.name, args=[1])
        wide = stored("wide", "group", [pair] * N)
        long = stored("long", "chain", [pair] + [plus] * (CHAIN - 1))

        def raw_group():
            sig, ids = to_signature(canvas.Group(tasks=[canvas.Task(suma.name, (2, 2))] * N),
                                    app=app)
            return raw(sig, list(ids.values()))

        def raw_chain():
            steps = [suma.s(2, 2).set(task_id=f"c0-{time.time_ns()}")] + [
                suma.s(1).set(task_id=f"c{i}-{time.time_ns()}") for i in range(1, CHAIN)
            ]
            return raw(chain(*steps), [s.options["task_id"] for s in steps])

        scenarios = [
            (f"group of {N} suma", raw_group, lambda: ours(wide)),
            (f"chain of {CHAIN} suma", raw_chain, lambda: ours(long)),
        ]
        print(f"{'scenario':<24}{'raw Celery s':>14}{'task_admin s':>14}{'ratio':>8}")
        for name, plain, tracked in scenarios:
            plain()  # warm up both paths once
            tracked()
            a = statistics.median(plain() for _ in range(ROUNDS))
            b = statistics.median(tracked() for _ in range(ROUNDS))
            print(f"{name:<24}{a:>14.2f}{b:>14.2f}{b / a:>8.2f}")
        big = canvas.Group(tasks=[canvas.Task(suma.name, (i, i)) for i in range(1000)])
        start = time.perf_counter()
        to_signature(big, app=app)
        ours_build = time.perf_counter() - start
        start = time.perf_counter()
        group([suma.s(i, i).set(task_id=uuid()) for i in range(1000)])
        raw_build = time.perf_counter() - start
        print(f"{'build 1000-task group':<24}{raw_build:>14.4f}{ours_build:>14.4f}"
              f"{ours_build / raw_build:>8.2f}")
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
        if REDIS.process is None:
            localredis.release_database(os.environ["REDIS_URL"], TOKEN)
        REDIS.stop()


if __name__ == "__main__":
    main()
