"""``make bench``: task_admin against raw Celery, measured side by side in one run.

"Raw" is a worker of the same project WITHOUT task_admin installed (``bench.settings_raw``: no
task_admin app, so none of its signal receivers); "ours" is the same worker with it
(``bench.settings_ours``). Both run at once (prefork, 2 processes, each on its own queue) and
the cases alternate between them round by round, so load from anything else on the machine
falls on both; the figures are medians of the rounds and the ratios are what count.

Cases, with the Redis result backend and then with django-celery-results' database backend:
- plain ``apply_async`` tasks that task_admin did not send (the host project's own tasks);
- a tracked group of 1,000, a chord of 1,000 (Redis), 300 runs of a 2-leaf group (Redis):
  "raw" sends the same canvas with Celery; "ours" starts a stored workflow with
  ``services.run_workflow`` and waits for the run's final status (what the admin shows).
Then the time to start a run (compile, check, build, insert, send) against ``apply_async`` of
the same canvas, SQL statements task_admin runs per plain task and per state change (a worker
with ``bench.counting``), and the admin pages' timings and sizes.

Environment: BENCH_DATABASE_URL (default PostgreSQL ``task_admin_bench`` on 127.0.0.1, created
if missing; ``sqlite`` for a file), REDIS_URL, BENCH_ROUNDS (3), BENCH_PLAIN (3000),
BENCH_SKIP (comma-separated sections: redis, db, start, sql, admin), BENCH_OUT (JSON path),
BENCH_PREPARED (unset: `PREPARED_STATEMENTS` as by default, "auto"; 1: True; 0: False).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.mkdtemp(prefix="task-admin-bench-"))
TOKEN = secrets.token_hex(6)
SKIP = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PLAIN = int(os.environ.get("BENCH_PLAIN", "3000"))
WIDE = 1000
SMALL_RUNS = 300


def _database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/task_admin_bench")
    if url == "sqlite":
        return f"sqlite:///{WORK}/bench.sqlite3"
    if url.startswith("postgres"):
        import psycopg

        base, name = url.rsplit("/", 1)
        try:
            with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                    [name]).fetchone():
                    conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            print(f"[bench] PostgreSQL not reachable ({exc}); using SQLite")
            return f"sqlite:///{WORK}/bench.sqlite3"
    return url


os.environ["DATABASE_URL"] = _database_url()
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings_ours"
os.environ["BENCH_TOKEN"] = TOKEN

from project import localredis  # noqa: E402  (after the settings module is chosen)

REDIS = localredis.ensure(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
DB = localredis.claim_database(REDIS.url, TOKEN) if REDIS.process is None else 0
os.environ["REDIS_URL"] = localredis.with_db(REDIS.url, DB)

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from celery import Celery, chord, group  # noqa: E402
from celery.utils import uuid  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django_celery_results.models import TaskResult  # noqa: E402

from task_admin import services  # noqa: E402
from task_admin.models import (  # noqa: E402
    RunStatus,
    TaskInvocation,
    Workflow,
    WorkflowNode,
    WorkflowRun,
)
from task_admin.models.runs import FINISHED_RUN  # noqa: E402

SUMA = "project.demo.tasks.suma"
SUM_LIST = "project.demo.tasks.sum_list"
R = redis.Redis.from_url(os.environ["REDIS_URL"])


# -- processes ------------------------------------------------------------------------------


class Worker:
    def __init__(self, kind: str, backend: str, queue: str, count: bool = False):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": f"bench.settings_{kind}",
            "BENCH_BACKEND": backend,
            "BENCH_QUEUE": queue,
            "BENCH_COUNT": "1" if count else "0",
        }
        self.name = f"bench-{kind}-{TOKEN}@%h"
        self.log = WORK / f"worker-{kind}-{backend}-{queue}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project", "worker", "-c", "2",
                 "--pool", "prefork", "-Q", queue, "-l", "WARNING", "-n", self.name,
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def wait_ready(self, app: Celery) -> None:
        name = self.name.replace("%h", platform.node())
        deadline = time.monotonic() + 90
        while not app.control.ping(destination=[name], timeout=0.5):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start; see {self.log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()

    def errors(self) -> int:
        return sum(" ERROR/" in line for line in self.log.read_text(errors="replace").splitlines())


def celery_app(backend: str, queue: str) -> Celery:
    app = Celery(f"bench-{queue}", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.result_backend = "django-db" if backend == "django-db" else os.environ["REDIS_URL"]
    app.conf.task_default_queue = queue
    return app


# -- waiting (cheap: the last few ids first, then all of them once) --------------------------


def _done_redis(ids: list[str]) -> bool:
    values = R.mget([f"celery-task-meta-{i}" for i in ids])
    return all(v is not None and b'"status": "SUCCESS"' in v for v in values)


def _done_db(ids: list[str]) -> bool:
    return TaskResult.objects.filter(task_id__in=ids, status="SUCCESS").count() == len(ids)


def wait_results(ids: list[str], backend: str, timeout: float = 600) -> None:
    done = _done_db if backend == "django-db" else _done_redis
    deadline = time.monotonic() + timeout
    tail = ids[-8:]
    while not done(tail):
        if time.monotonic() > deadline:
            raise TimeoutError("results did not arrive")
        time.sleep(0.01)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        while not done(chunk):
            if time.monotonic() > deadline:
                raise TimeoutError("results did not arrive")
            time.sleep(0.01)


def _unfinished(run_ids: list[int]) -> bool:
    # The observer asks every 10 ms; the cores it runs on are the workers'. One plain statement:
    # 0.17 ms of the client's CPU per poll, against 0.47 ms for the ORM's exists() (compiling
    # the query; 60 ms of a chord case's round) and 0.10 ms for the raw side's MGET.
    if not run_ids:
        return False
    table = connection.ops.quote_name(WorkflowRun._meta.db_table)
    marks = ", ".join(["%s"] * len(run_ids))
    finished = ", ".join(["%s"] * len(FINISHED_RUN))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id IN ({marks}) AND status NOT IN"
                       f" ({finished}) LIMIT 1", [*run_ids, *sorted(FINISHED_RUN)])
        return cursor.fetchone() is not None


def wait_runs(run_ids: list[int], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for chunk in (run_ids[-4:], run_ids):
        while _unfinished(chunk):
            if time.monotonic() > deadline:
                raise TimeoutError("runs did not finish")
            time.sleep(0.01)
    bad = WorkflowRun.objects.filter(pk__in=run_ids).exclude(status=RunStatus.SUCCEEDED).count()
    if bad:
        raise AssertionError(f"{bad} runs did not succeed")


# -- stored workflows -------------------------------------------------------------------------


def stored(name: str, kind: str, count: int, body: bool = False) -> Workflow:
    Workflow.objects.filter(name=name).delete()
    old = TaskInvocation.objects.filter(name__startswith=f"{name} ")
    # A workflow made by an earlier version of the bench may use them: it goes too.
    Workflow.objects.filter(nodes__invocation__in=old).distinct().delete()
    old.delete()
    workflow = Workflow.objects.create(name=name)
    root = WorkflowNode.objects.create(workflow=workflow, kind=kind)
    invocations = TaskInvocation.objects.bulk_create(
        TaskInvocation(name=f"{name} {i}", task=SUMA, args=[i, i]) for i in range(count)
    )
    WorkflowNode.objects.bulk_create(
        WorkflowNode(workflow=workflow, parent=root, kind="task", position=i, invocation=inv,
                     key=f"n{i}", **({"role": "header"} if body else {}))
        for i, inv in enumerate(invocations)
    )
    if body:
        total = TaskInvocation.objects.create(name=f"{name} body", task=SUM_LIST)
        WorkflowNode.objects.create(workflow=workflow, parent=root, kind="task", position=0,
                                    invocation=total, key="body", role="body")
    return workflow


# -- the cases: each returns seconds ---------------------------------------------------------


def raw_plain(app, backend):
    ids = [f"plain-{uuid()}" for _ in range(PLAIN)]
    start = time.perf_counter()
    for i, task_id in enumerate(ids):
        app.send_task(SUMA, args=(i, i), task_id=task_id)
    wait_results(ids, backend)
    return time.perf_counter() - start


def raw_group(app, backend, n=WIDE):
    sigs = [app.signature(SUMA, args=(i, i)).set(task_id=uuid()) for i in range(n)]
    start = time.perf_counter()
    group(sigs, app=app).apply_async()
    wait_results([s.options["task_id"] for s in sigs], backend)
    return time.perf_counter() - start


def raw_chord(app, backend, n=WIDE):
    header = [app.signature(SUMA, args=(i, i)).set(task_id=uuid()) for i in range(n)]
    body = app.signature(SUM_LIST).set(task_id=uuid())
    start = time.perf_counter()
    chord(header, body, app=app).apply_async()
    wait_results([body.options["task_id"]], backend)
    return time.perf_counter() - start


def raw_small_runs(app, backend):
    ids = []
    start = time.perf_counter()
    for i in range(SMALL_RUNS):
        sigs = [app.signature(SUMA, args=(i, j)).set(task_id=uuid()) for j in range(2)]
        group(sigs, app=app).apply_async()
        ids += [s.options["task_id"] for s in sigs]
    wait_results(ids, backend)
    return time.perf_counter() - start


def ours_runs(workflow, app, count=1):
    start = time.perf_counter()
    run_ids = [services.run_workflow(workflow, app=app).pk for _ in range(count)]
    wait_runs(run_ids)
    return time.perf_counter() - start


# -- sections --------------------------------------------------------------------------------


def median(values):
    return statistics.median(values)


def interleaved(cases, rounds):
    """Each (name, raw, ours, tasks) case: one warm-up pair, then ``rounds`` pairs alternating
    which side goes first; medians in tasks/s and ours/raw."""
    rows = []
    for name, raw, ours, tasks in cases:
        raw()
        ours()
        times = {"raw": [], "ours": []}
        for r in range(rounds):
            order = (("raw", raw), ("ours", ours)) if r % 2 == 0 else (("ours", ours),
                                                                        ("raw", raw))
            for side, function in order:
                times[side].append(function())
        raw_rate = tasks / median(times["raw"])
        ours_rate = tasks / median(times["ours"])
        row = {"case": name, "tasks": tasks, "raw_tasks_per_s": round(raw_rate, 1),
               "ours_tasks_per_s": round(ours_rate, 1), "ratio": round(ours_rate / raw_rate, 3),
               "raw_s": times["raw"], "ours_s": times["ours"]}
        print(f"  {name:<52} raw {raw_rate:7.0f}/s  ours {ours_rate:7.0f}/s  "
              f"ratio {row['ratio']:.2f}", flush=True)
        rows.append(row)
    return rows


def throughput(backend: str) -> list[dict]:
    label = "Redis" if backend == "redis" else "django-db"
    raw_q, ours_q = f"bench-raw-{TOKEN}-{backend}", f"bench-ours-{TOKEN}-{backend}"
    raw_app, ours_app = celery_app(backend, raw_q), celery_app(backend, ours_q)
    workers = [Worker("raw", backend, raw_q), Worker("ours", backend, ours_q)]
    try:
        workers[0].wait_ready(raw_app)
        workers[1].wait_ready(ours_app)
        wide = stored(f"bench group {backend}", "group", WIDE)
        cases = [
            (f"{PLAIN} plain tasks not sent by task_admin, {label}",
             lambda: raw_plain(raw_app, backend), lambda: raw_plain(ours_app, backend), PLAIN),
            (f"tracked group of {WIDE}, {label}",
             lambda: raw_group(raw_app, backend), lambda: ours_runs(wide, ours_app), WIDE),
        ]
        if backend == "redis":
            fan_in = stored("bench chord", "chord", WIDE, body=True)
            pair = stored("bench pair", "group", 2)
            cases += [
                (f"tracked chord of {WIDE}, {label}",
                 lambda: raw_chord(raw_app, backend), lambda: ours_runs(fan_in, ours_app),
                 WIDE + 1),
                (f"{SMALL_RUNS} tracked runs of a 2-leaf group, {label}",
                 lambda: raw_small_runs(raw_app, backend),
                 lambda: ours_runs(pair, ours_app, SMALL_RUNS), 2 * SMALL_RUNS),
            ]
        rows = interleaved(cases, ROUNDS)
    finally:
        for worker in workers:
            worker.stop()
    errors = workers[1].errors()
    print(f"  ERROR lines in the task_admin worker's log: {errors}")
    for row in rows:
        row["backend"] = backend
        row["worker_errors"] = errors
    return rows


def start_timings() -> list[dict]:
    """One run start, whole (compile, check, build, insert, send) against apply_async of the
    same canvas; sent to a queue nobody consumes, deleted afterwards."""
    queue = f"bench-idle-{TOKEN}"
    app = celery_app("redis", queue)
    rows = []
    for leaves, repeat in ((2, 200), (WIDE, 7)):
        workflow = stored(f"bench start {leaves}", "group", leaves)

        def raw(leaves=leaves):
            start = time.perf_counter()
            group([app.signature(SUMA, args=(i, i)).set(task_id=uuid())
                   for i in range(leaves)], app=app).apply_async()
            return time.perf_counter() - start

        def ours(workflow=workflow):
            start = time.perf_counter()
            services.run_workflow(workflow, app=app)
            return time.perf_counter() - start

        raw(), ours()
        raw_t, ours_t = [], []
        for _ in range(repeat):
            raw_t.append(raw())
            ours_t.append(ours())
        row = {"case": f"start a {leaves}-leaf run (compile, check, build, insert, send)",
               "raw_ms": round(1000 * median(raw_t), 2), "ours_ms": round(1000 * median(ours_t), 2)}
        row["ratio"] = round(row["ours_ms"] / row["raw_ms"], 2)
        print(f"  {row['case']:<60} raw {row['raw_ms']:8.2f} ms  ours {row['ours_ms']:8.2f} ms  "
              f"x{row['ratio']:.2f}", flush=True)
        rows.append(row)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)
    return rows


def sql_counts() -> dict:
    """Statements task_admin runs in a worker: per plain task and per tracked state change."""
    queue = f"bench-count-{TOKEN}"
    app = celery_app("redis", queue)
    worker = Worker("ours", "redis", queue, count=True)
    try:
        worker.wait_ready(app)
        R.delete(f"bench:{TOKEN}:handler", f"bench:{TOKEN}:flush")
        raw_plain_n = 500
        ids = [f"plain-{uuid()}" for _ in range(raw_plain_n)]
        for i, task_id in enumerate(ids):
            app.send_task(SUMA, args=(i, i), task_id=task_id)
        wait_results(ids, "redis")
        time.sleep(0.5)
        plain = sum(int(R.get(f"bench:{TOKEN}:{k}") or 0) for k in ("handler", "flush"))
        R.delete(f"bench:{TOKEN}:handler", f"bench:{TOKEN}:flush")
        workflow = stored("bench count", "group", 500)
        ours_runs(workflow, app)
        time.sleep(0.5)
        handler = int(R.get(f"bench:{TOKEN}:handler") or 0)
        flush = int(R.get(f"bench:{TOKEN}:flush") or 0)
    finally:
        worker.stop()
    changes = 3 * 500  # received, started, succeeded
    result = {
        "statements_per_plain_task": plain / raw_plain_n,
        "statements_per_state_change": round((handler + flush) / changes, 3),
        "statements_in_handlers": handler,
        "statements_in_batches": flush,
        "state_changes": changes,
    }
    print(f"  SQL per plain task: {result['statements_per_plain_task']:.2f}; per tracked state "
          f"change: {result['statements_per_state_change']:.3f} "
          f"({handler} in handlers + {flush} in batched writes for {changes} changes)")
    return result


def admin_pages() -> list[dict]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from task_admin.models import NodeState, TaskRun

    user = get_user_model().objects.filter(username="bench").first() or \
        get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(user)
    app = celery_app("redis", f"bench-idle-{TOKEN}")
    workflow = stored("bench page", "group", WIDE)
    run = services.run_workflow(workflow, app=app)
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(f"bench-idle-{TOKEN}")
    nodes = list(run.nodes.all())
    for i, node in enumerate(nodes):
        node.state = NodeState.SUCCESS if i % 10 else NodeState.FAILURE
        node.result = {"value": i, "text": "x" * 40} if i % 10 else None
        node.exception = "" if i % 10 else "ValueError: boom"
        node.traceback = "" if i % 10 else "Traceback (most recent call last):\n" + "  ...\n" * 30
        node.attempt_count, node.worker, node.runtime = 1, "celery@bench", 0.01
    TaskRun.objects.bulk_update(nodes, ["state", "result", "exception", "traceback",
                                        "attempt_count", "worker", "runtime"])
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    # 100,000 task runs for the lists (1,000 runs of 100 nodes), made once per database.
    missing = 100_000 - TaskRun.objects.count()
    if missing > 0:
        spec = {"version": 1, "root": {"type": "task", "task": SUMA, "args": [1, 2]}}
        runs = WorkflowRun.objects.bulk_create(
            WorkflowRun(workflow_name=f"bulk {i % 7}", spec=spec, trigger="schedule",
                        status=RunStatus.SUCCEEDED, total_nodes=100, finished_nodes=100)
            for i in range(missing // 100 + 1)
        )
        TaskRun.objects.bulk_create(
            (TaskRun(run_id=runs[i // 100].pk, task_id=f"bulk-{TOKEN}-{i}", path=f"root.{i % 100}",
                     position=i % 100, task_name=SUMA, state="SUCCESS", result=i, attempt_count=1,
                     worker="celery@bulk", runtime=0.01) for i in range(missing)),
            batch_size=5000,
        )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    pages = [
        (f"run page of a {WIDE}-node run", reverse("admin:task_admin_workflowrun_change",
                                                   args=[run.pk])),
        ("workflow run list (100,000 task runs)",
         reverse("admin:task_admin_workflowrun_changelist")),
        ("task run list (100,000 task runs)", reverse("admin:task_admin_taskrun_changelist")),
        ("task run list filtered by state", reverse("admin:task_admin_taskrun_changelist")
         + "?state__exact=FAILURE"),
    ]
    try:  # the one-page composer (issue 10), where it exists
        composer = reverse("admin:task_admin_workflow_change", args=[workflow.pk])
        pages.append((f"workflow page of a {WIDE}-node workflow", composer))
    except Exception:
        pass
    rows = []
    for name, url in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - start)
        row = {"page": name, "ms": round(1000 * median(times), 1),
               "kb": round(len(response.content) / 1024, 1)}
        print(f"  {name:<52} {row['ms']:8.1f} ms  {row['kb']:8.1f} KB", flush=True)
        rows.append(row)
    return rows


def workflow_pages() -> list[dict]:
    """Opening and saving 300 and 1,000-node workflows (``bench/workflow_pages.py``)."""
    from bench import workflow_pages as pages

    rows = []
    for case, seconds, queries in pages.rows():
        row = {"case": case, "ms": round(1000 * float(seconds), 1), "queries": int(queries)}
        print(f"  {case:<52} {row['ms']:8.1f} ms  {row['queries']:5d} queries", flush=True)
        rows.append(row)
    return rows


def main():
    print(f"[bench] {platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"Redis: {REDIS.how} (db {DB}); database: {connection.vendor}", flush=True)
    call_command("migrate", verbosity=0)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "database": connection.vendor},
        "rounds": ROUNDS,
    }
    try:
        if "redis" not in SKIP:
            print("[bench] throughput, Redis result backend", flush=True)
            report["redis"] = throughput("redis")
        if "db" not in SKIP:
            print("[bench] throughput, django-db result backend", flush=True)
            report["django_db"] = throughput("django-db")
        if "start" not in SKIP:
            print("[bench] starting a run", flush=True)
            report["start"] = start_timings()
        if "sql" not in SKIP:
            print("[bench] SQL statements from task_admin in the worker", flush=True)
            report["sql"] = sql_counts()
        if "admin" not in SKIP:
            print("[bench] admin pages", flush=True)
            report["admin"] = admin_pages()
            print("[bench] workflow pages: open and save (medians)", flush=True)
            report["workflow_pages"] = workflow_pages()
    finally:
        if REDIS.process is None:
            localredis.release_database(os.environ["REDIS_URL"], TOKEN)
        REDIS.stop()
    out = Path(os.environ.get("BENCH_OUT", WORK / "bench.json"))
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"[bench] JSON written to {out}")


if __name__ == "__main__":
    main()
