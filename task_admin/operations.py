"""Talking to live workers and to the broker, for the admin's operations pages.

Everything here runs in the web process, on demand: nothing is added to the workers' task path
(no signal handlers, no events). What the workers are doing comes from Celery's remote control:
five ``inspect`` broadcasts (stats, active_queues, active, reserved, scheduled) sent at once on
their own connections, each waiting at most ``INSPECT_TIMEOUT`` seconds, so a worker that is
gone or hangs costs one timeout, not one per command. The snapshot is kept in Django's cache
for ``INSPECT_CACHE`` seconds, so pages viewed meanwhile (and the run page's queue hint) cost
no broker round trip at all; a control sent from the admin drops it, so the next page shows
the effect.

Queue depth is asked of the broker with a passive ``queue_declare`` through kombu: on Redis
that is an ``LLEN`` of every priority-step key of the queue (kombu's own ``_size``), on
RabbitMQ the broker's message and consumer counts.
"""

from __future__ import annotations

import contextlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from django.core.cache import cache
from kombu.exceptions import ChannelError

from task_admin.conf import get_config
from task_admin.registry import BROKER_ERRORS, NoCeleryApp, get_app, load_tasks

logger = logging.getLogger(__name__)

COMMANDS = ("stats", "active_queues", "active", "reserved", "scheduled")
SNAPSHOT_KEY = "task_admin:operations:snapshot"
# Workers seen recently, so one that stops answering is listed as such rather than vanishing.
SEEN_KEY = "task_admin:operations:seen"
SEEN_FOR = 3600
DISCOVERED_KEY = "task_admin:operations:discovered"
DISCOVER_EVERY = 60


@dataclass
class TaskInfo:
    """A task a worker holds: running now (active), prefetched (reserved) or waiting for its
    ETA/countdown (scheduled)."""

    id: str
    name: str
    kind: str  # "active", "reserved" or "scheduled"
    worker: str
    args: Any = None
    kwargs: Any = None
    started: datetime | None = None
    eta: datetime | None = None
    priority: int | None = None
    delivery: dict = field(default_factory=dict)

    @property
    def queue(self) -> str:
        return self.delivery.get("routing_key") or ""

    @property
    def arguments(self) -> str:
        """``args`` and ``kwargs`` as JSON (older workers send them as repr strings)."""
        parts = [_json(value) for value in (self.args, self.kwargs) if value not in (None, [],
                                                                                  (), {}, "")]
        return " ".join(parts)


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)


@dataclass
class WorkerInfo:
    hostname: str
    answered: bool = True
    last_seen: datetime | None = None
    pool: str = ""
    concurrency: int | None = None
    processes: list[int] = field(default_factory=list)
    uptime: float | None = None
    processed: int = 0
    prefetch_count: int | None = None
    queues: list[str] = field(default_factory=list)
    active: list[TaskInfo] = field(default_factory=list)
    reserved: list[TaskInfo] = field(default_factory=list)
    scheduled: list[TaskInfo] = field(default_factory=list)

    started_at: datetime | None = None

    @property
    def tasks(self) -> list[TaskInfo]:
        return [*self.active, *self.scheduled, *self.reserved]


@dataclass
class Snapshot:
    """What the workers answered to one round of ``inspect`` broadcasts."""

    workers: list[WorkerInfo]
    taken_at: datetime
    timeout: float
    error: str = ""
    # Every worker had the whole timeout to answer (not a round stopped at the known ones).
    full: bool = True

    @property
    def live(self) -> list[WorkerInfo]:
        return [w for w in self.workers if w.answered]

    def worker(self, hostname: str) -> WorkerInfo | None:
        return next((w for w in self.workers if w.hostname == hostname), None)

    def consumers(self) -> dict[str, list[str]]:
        """``{queue: [hostname, ...]}`` over the workers that answered."""
        out: dict[str, list[str]] = {}
        for worker in self.live:
            for queue in worker.queues:
                out.setdefault(queue, []).append(worker.hostname)
        return out

    def find_task(self, task_id: str) -> TaskInfo | None:
        for worker in self.live:
            for task in worker.tasks:
                if task.id == task_id:
                    return task
        return None


# -- inspect --------------------------------------------------------------------------------


def _inspect(app: Celery, command: str, timeout: float, limit: int | None = None) -> dict:
    """One ``inspect`` broadcast on a connection of its own (kombu's reply queue is per
    thread, so the commands can wait side by side). With ``limit``, stop at that many replies
    instead of waiting ``timeout`` after the last one."""
    # On Redis the replies are read with a blocking BRPOP whose own timeout (1 s by default)
    # the connection must sit out before it can close: keep it a fraction of ours.
    options = {"polling_interval": max(0.01, min(timeout / 5, 0.1))}
    with app.connection_for_write(transport_options=options) as conn:
        conn.ensure_connection(max_retries=1)
        inspect = app.control.inspect(timeout=timeout, connection=conn, limit=limit)
        replies = getattr(inspect, command)()
    return replies or {}


def _when(value: Any) -> datetime | None:
    if isinstance(value, int | float) and value > 1e9:  # an epoch time, not a monotonic clock
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _task(request: dict, kind: str, worker: str, **extra: Any) -> TaskInfo:
    return TaskInfo(
        id=str(request.get("id") or ""),
        name=str(request.get("name") or request.get("type") or ""),
        kind=kind,
        worker=worker,
        args=request.get("args"),
        kwargs=request.get("kwargs"),
        started=_when(request.get("time_start")),
        delivery=request.get("delivery_info") or {},
        **extra,
    )


def _workers(replies: dict[str, dict[str, Any]], taken_at: datetime) -> list[WorkerInfo]:
    names = sorted({name for reply in replies.values() for name in reply})
    workers = []
    for name in names:
        stats = replies["stats"].get(name) or {}
        pool = stats.get("pool") or {}
        worker = WorkerInfo(
            hostname=name,
            pool=str(pool.get("implementation") or "").rsplit(":", 1)[-1],
            # A pool grown or shrunk at run time keeps its "max-concurrency": count processes.
            concurrency=len(pool["processes"]) if pool.get("processes") else pool.get(
                "max-concurrency"
            ),
            processes=list(pool.get("processes") or []),
            uptime=stats.get("uptime"),
            started_at=(
                taken_at - timedelta(seconds=stats["uptime"])
                if isinstance(stats.get("uptime"), int | float) else None
            ),
            processed=sum((stats.get("total") or {}).values()),
            prefetch_count=stats.get("prefetch_count"),
            queues=sorted(q.get("name", "") for q in replies["active_queues"].get(name) or []),
            active=[_task(r, "active", name) for r in replies["active"].get(name) or []],
            reserved=[_task(r, "reserved", name) for r in replies["reserved"].get(name) or []],
            scheduled=[
                _task(
                    entry.get("request") or {}, "scheduled", name,
                    eta=_when(entry.get("eta")), priority=entry.get("priority"),
                )
                for entry in replies["scheduled"].get(name) or []
            ],
        )
        workers.append(worker)
    return workers


def _inspect_all(app: Celery, timeout: float, limit: int | None) -> dict[str, dict]:
    with ThreadPoolExecutor(max_workers=len(COMMANDS)) as pool:
        futures = {c: pool.submit(_inspect, app, c, timeout, limit) for c in COMMANDS}
        return {command: future.result() for command, future in futures.items()}


def snapshot(
    *, app: Celery | None = None, refresh: bool = False, discover: bool = False
) -> Snapshot:
    """The live workers, from the cache when a snapshot younger than ``INSPECT_CACHE`` exists.

    ``discover``: when asking, wait the whole timeout for workers started since the last
    full round (the workers page: a new worker shows within ``INSPECT_CACHE`` seconds, not
    ``DISCOVER_EVERY``). Never raises for a broker that cannot be reached: the snapshot then
    carries the error.
    """
    config = get_config()
    if not refresh:
        cached = cache.get(SNAPSHOT_KEY)
        if cached is not None and (cached.full or not discover):
            return cached
    timeout = float(config["INSPECT_TIMEOUT"])
    now = datetime.now(UTC)
    error = ""
    replies: dict[str, dict[str, Any]] = {command: {} for command in COMMANDS}
    seen: dict[str, datetime] = cache.get(SEEN_KEY) or {}
    # Waiting out the timeout after the last reply is what a broadcast costs. Once the workers
    # are known, stop as soon as each of them answered; a worker that does not answer still
    # costs one timeout. A full round every DISCOVER_EVERY seconds finds workers started since.
    limit = len(seen) if seen and not discover and cache.get(DISCOVERED_KEY) else None
    try:
        app = app or get_app()
        replies = _inspect_all(app, timeout, limit)
        if limit is not None and {n for r in replies.values() for n in r} - set(seen):
            # A new worker answered, maybe in place of a known one: ask everyone properly.
            limit = None
            replies = _inspect_all(app, timeout, limit)
    except BROKER_ERRORS as exc:
        logger.warning("task_admin: inspecting workers failed: %s", exc)
        error = str(exc) or exc.__class__.__name__
    workers = _workers(replies, now)
    if not error and limit is None:
        cache.set(DISCOVERED_KEY, True, DISCOVER_EVERY)
    if not error:
        for worker in workers:
            worker.last_seen = seen[worker.hostname] = now
        answered = {w.hostname for w in workers}
        for hostname, when in sorted(seen.items()):
            if hostname not in answered and (now - when).total_seconds() < SEEN_FOR:
                workers.append(WorkerInfo(hostname=hostname, answered=False, last_seen=when))
        cache.set(SEEN_KEY, {h: w for h, w in seen.items()
                             if (now - w).total_seconds() < SEEN_FOR}, SEEN_FOR)
    result = Snapshot(workers=workers, taken_at=now, timeout=timeout, error=error,
                      full=limit is None)
    cache.set(SNAPSHOT_KEY, result, config["INSPECT_CACHE"])
    return result


def forget_snapshot(*, workers: bool = False) -> None:
    """Drop the cached snapshot: the next page asks the workers again (with ``workers``, also
    forget which workers exist: the next round waits for any that answer)."""
    cache.delete(SNAPSHOT_KEY)
    if workers:
        cache.delete_many([SEEN_KEY, DISCOVERED_KEY])


def unconsumed(queues: set[str], *, app: Celery | None = None) -> set[str]:
    """The queues of ``queues`` that no live worker consumes (from the cached snapshot); empty
    when the workers could not be asked at all, since then nothing is known."""
    if not queues:
        return set()
    current = snapshot(app=app)
    if current.error:
        return set()
    return set(queues) - set(current.consumers())


def spec_queues(spec) -> set[str]:
    """The ``queue`` options named anywhere in a canvas spec."""
    from task_admin import canvas

    return {task.options.queue for _path, task in canvas.leaves(spec) if task.options.queue}


def pending_queue_hints(run, nodes, spec, *, app: Celery | None = None) -> list[dict]:
    """For a run page: the queues its pending nodes wait in that no live worker consumes,
    ``[{"queue": name, "nodes": [label, ...]}]``. Asks nothing when no node is pending."""
    from task_admin import canvas
    from task_admin.models import NodeState

    if run.is_finished:
        return []
    pending = [task_run for task_run in nodes if task_run.state == NodeState.PENDING]
    if not pending:
        return []
    try:
        app = app or get_app()
        options = {path: task.options.queue for path, task in canvas.leaves(spec)} if spec else {}
        by_queue: dict[str, list[str]] = {}
        for task_run in pending:
            queue = queue_for_task(task_run.task_name, options.get(task_run.path), app=app)
            by_queue.setdefault(queue, []).append(task_run.label or task_run.path)
        missing = unconsumed(set(by_queue), app=app)
    except BROKER_ERRORS:
        return []
    return [{"queue": q, "nodes": by_queue[q]} for q in sorted(missing)]


def queue_for_task(task_name: str, queue: str | None, *, app: Celery | None = None) -> str:
    """The queue a task is sent to: its ``queue`` option, else the app's routes and default."""
    if queue:
        return queue
    app = app or get_app()
    try:
        route = app.amqp.router.route({}, task_name)
    except Exception:  # a broken route must not break a page; the default queue is the guess
        return app.conf.task_default_queue
    found = route.get("queue")
    return getattr(found, "name", None) or str(found or app.conf.task_default_queue)


# -- queues -----------------------------------------------------------------------------------


@dataclass
class QueueInfo:
    name: str
    depth: int | None  # None: the broker does not know the queue (on Redis: it is empty)
    consumers: list[str]  # live workers consuming it
    broker_consumers: int | None = None  # what RabbitMQ counts (None on Redis)
    error: str = ""

    @property
    def unconsumed(self) -> bool:
        return not self.consumers and not self.broker_consumers

    @property
    def needs_attention(self) -> bool:
        return self.unconsumed and bool(self.depth)


def known_queues(app: Celery, current: Snapshot) -> set[str]:
    """Every queue task_admin has a reason to know: consumed by a worker, declared in the
    Celery configuration, or named by an invocation."""
    from task_admin.models import TaskInvocation

    names = {app.conf.task_default_queue}
    names.update(current.consumers())
    names.update(q.name for q in app.conf.task_queues or ())
    routes = app.conf.task_routes
    if isinstance(routes, dict):
        names.update(r["queue"] for r in routes.values() if isinstance(r, dict) and r.get("queue"))
    names.update(
        TaskInvocation.objects.exclude(queue="").values_list("queue", flat=True).distinct()
    )
    names.update(get_config()["QUEUES"] or ())
    return {n for n in names if n}


def queue_depths(names: list[str], *, app: Celery | None = None) -> dict[str, tuple]:
    """``{queue: (messages or None, broker consumers or None, error)}`` through kombu, one
    passive ``queue_declare`` each. Raises a broker error when the broker cannot be reached."""
    app = app or get_app()
    out: dict[str, tuple] = {}
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1)
        # Virtual transports (Redis, ...) always say 0 consumers: only AMQP counts them.
        virtual = getattr(conn.transport, "driver_type", "") != "amqp"
        channel = conn.channel()
        try:
            for name in names:
                try:
                    _name, messages, consumers = channel.queue_declare(queue=name, passive=True)
                except conn.connection_errors:
                    raise
                except Exception as exc:
                    # Unknown to the broker (kombu's ChannelError, AMQP's 404), or a name the
                    # broker refuses to count (Redis: a key that is not a list). On AMQP the
                    # failed declare closed the channel.
                    missing = isinstance(exc, ChannelError) or getattr(exc, "code", None) == 404
                    out[name] = (None, None, "" if missing else str(exc) or repr(exc))
                    channel = _reopen(conn, channel)
                    continue
                out[name] = (messages, None if virtual else consumers, "")
        finally:
            _close(channel)
    return out


def _reopen(conn, channel):
    _close(channel)
    return conn.channel()


def _close(channel) -> None:
    with contextlib.suppress(Exception):  # a channel the broker already closed
        channel.close()


def queues(*, app: Celery | None = None, extra: tuple[str, ...] = ()) -> tuple[
    list[QueueInfo], Snapshot, str
]:
    """Every known queue with its depth and consumers, the snapshot used, and a broker error."""
    try:
        app = app or get_app()
    except NoCeleryApp as exc:
        return [], snapshot(), str(exc)
    current = snapshot(app=app)
    consumers = current.consumers()
    names = sorted(known_queues(app, current) | {n for n in extra if n})
    error = ""
    try:
        depths = queue_depths(names, app=app)
    except BROKER_ERRORS as exc:
        logger.warning("task_admin: reading queue depths failed: %s", exc)
        depths, error = {}, str(exc) or exc.__class__.__name__
    rows = []
    for name in names:
        depth, broker_consumers, problem = depths.get(name, (None, None, ""))
        rows.append(QueueInfo(
            name=name, depth=depth, consumers=sorted(consumers.get(name, [])),
            broker_consumers=broker_consumers, error=problem,
        ))
    return rows, current, error


# -- tasks by id --------------------------------------------------------------------------------


@dataclass
class TaskLookup:
    task_id: str
    state: str
    result: Any = None
    traceback: str = ""
    name: str = ""
    worker: str = ""
    date_done: datetime | None = None
    live: TaskInfo | None = None  # where a worker holds it now (from the cached snapshot)
    error: str = ""

    @property
    def ready(self) -> bool:
        from celery import states

        return self.state in states.READY_STATES


def lookup_task(task_id: str, *, app: Celery | None = None) -> TaskLookup:
    """What the result backend (any backend, through ``AsyncResult``) and the workers know of a
    task id. Celery answers PENDING for an id it has never heard of."""
    found = TaskLookup(task_id=task_id, state="PENDING")
    try:
        app = app or get_app()
        meta = app.AsyncResult(task_id).backend.get_task_meta(task_id)
    except Exception as exc:  # any backend, any failure: say so on the page
        logger.warning("task_admin: reading task %s from the result backend failed: %s",
                       task_id, exc)
        found.error = str(exc) or exc.__class__.__name__
        meta = {}
    found.state = str(meta.get("status") or "PENDING")
    found.result = meta.get("result")
    found.traceback = str(meta.get("traceback") or "")
    found.name = str(meta.get("name") or meta.get("task_name") or "")
    found.worker = str(meta.get("worker") or "")
    done = meta.get("date_done")
    found.date_done = done if isinstance(done, datetime) else _when(done)
    if isinstance(found.result, BaseException):
        found.result = f"{found.result.__class__.__name__}: {found.result}"
    found.live = snapshot(app=app).find_task(task_id)
    if found.live is not None:
        found.name = found.name or found.live.name
        found.worker = found.worker or found.live.worker
    return found


def result_text(value: Any) -> str:
    """A result as the page shows it: JSON when it is JSON, its repr otherwise."""
    if value is None:
        return ""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


# -- controls (each one a deliberate POST in the admin) ------------------------------------------


class NoReply(Exception):
    """The worker did not confirm the command within the control timeout."""


class Refused(Exception):
    """The worker answered with an error."""


def _control(app: Celery | None, method: str, *args: Any, hostname: str, **kwargs: Any) -> str:
    app = app or get_app()
    timeout = float(get_config()["CONTROL_TIMEOUT"])
    replies = getattr(app.control, method)(
        *args, destination=[hostname], reply=True, timeout=timeout, **kwargs
    )
    forget_snapshot()
    for reply in replies or ():
        answer = reply.get(hostname)
        if answer is None:
            continue
        if "error" in answer:
            raise Refused(str(answer["error"]))
        return str(answer.get("ok", ""))
    raise NoReply(hostname)


def task_names(*, app: Celery | None = None) -> list[str]:
    """The tasks the Celery app knows (for picking one to rate-limit), Celery's own left out."""
    try:
        app = app or get_app()
    except NoCeleryApp:
        return []
    load_tasks(app)  # the web process never starts a worker: once per process, as the registry
    return sorted(name for name in app.tasks if not name.startswith("celery."))


def shutdown(hostname: str, *, app: Celery | None = None) -> None:
    """Warm shutdown: the worker finishes its running tasks and exits. It does not reply."""
    app = app or get_app()
    app.control.shutdown(destination=[hostname])
    forget_snapshot()


def pool_grow(hostname: str, n: int, *, app: Celery | None = None) -> str:
    return _control(app, "pool_grow", n, hostname=hostname)


def pool_shrink(hostname: str, n: int, *, app: Celery | None = None) -> str:
    return _control(app, "pool_shrink", n, hostname=hostname)


def add_consumer(hostname: str, queue: str, *, app: Celery | None = None) -> str:
    return _control(app, "add_consumer", queue, hostname=hostname)


def cancel_consumer(hostname: str, queue: str, *, app: Celery | None = None) -> str:
    return _control(app, "cancel_consumer", queue, hostname=hostname)


def rate_limit(hostname: str, task_name: str, rate: str, *, app: Celery | None = None) -> str:
    return _control(app, "rate_limit", task_name, rate, hostname=hostname)


def revoke_task(task_id: str, *, terminate: bool = False, app: Celery | None = None) -> None:
    """Revoke one task by id (workers discard it, or with ``terminate`` stop it with SIGTERM)."""
    app = app or get_app()
    app.control.revoke(task_id, terminate=terminate, signal="SIGTERM")
    forget_snapshot()
