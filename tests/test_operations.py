"""task_admin.operations without workers: queue depth on the real brokers, caching, routing."""

from __future__ import annotations

import socket
import uuid

import pytest
from celery import Celery
from django.test import override_settings
from kombu import Connection, Exchange, Producer
from kombu import Queue as KombuQueue

from task_admin import operations

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture(autouse=True)
def _clean_cache():
    operations.forget_snapshot(workers=True)
    yield
    operations.forget_snapshot(workers=True)


def _publish(url: str, queue: str, count: int, **options) -> None:
    # Publisher confirms on AMQP: the broker has queued every message before we count.
    options_ = {"confirm_publish": True} if url.startswith("amqp") else {}
    with Connection(url, transport_options=options_) as conn:
        q = KombuQueue(queue, Exchange(queue, type="direct"), routing_key=queue)
        producer = Producer(conn.default_channel)
        for _ in range(count):
            producer.publish({"x": 1}, exchange=q.exchange, routing_key=queue, declare=[q],
                             **options)


def test_redis_depth_counts_every_priority_step(celery_app):
    queue = f"ops-prio-{uuid.uuid4().hex[:6]}"
    missing = f"ops-missing-{uuid.uuid4().hex[:6]}"
    url = celery_app.conf.broker_url
    _publish(url, queue, 2)
    _publish(url, queue, 3, priority=9)  # kombu keeps these under "<queue>\x06\x169"
    try:
        import redis

        client = redis.Redis.from_url(url)
        assert client.llen(queue) == 2  # one LLEN of the plain key would miss three
        depths = operations.queue_depths([queue, missing], app=celery_app)
        assert depths == {queue: (5, None, ""), missing: (None, None, "")}
    finally:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)


@pytest.mark.django_db
def test_a_name_that_is_no_queue_is_a_row_error_not_a_server_error(admin_client, celery_app):
    """Staff may type any name into "Check a queue": on Redis it may name a key of another
    type (a result, a set of bindings), which LLEN refuses."""
    import redis
    from django.urls import reverse

    name = f"ops-string-{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    client.set(name, "not a list")
    try:
        depths = operations.queue_depths([name, "celery"], app=celery_app)
        assert depths[name][:2] == (None, None) and "WRONGTYPE" in depths[name][2]
        assert depths["celery"][2] == ""  # the next queue is still read
        page = admin_client.get(reverse("admin:task_admin_queue_changelist"), {"queue": name})
        assert page.status_code == 200 and "not readable as a queue" in page.content.decode()
    finally:
        client.delete(name)


# Celery's Redis result backend still calls redis-py's deprecated setex.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_any_result_backend_through_asyncresult(celery_app):
    """The lookup reads the result backend the app has, here Redis rather than the test
    settings' django-db."""
    import redis

    app = Celery("ops-redis-results", broker=celery_app.conf.broker_url,
                 backend=celery_app.conf.broker_url, set_as_current=False)
    app.conf.result_extended = True
    done, failed = uuid.uuid4().hex, uuid.uuid4().hex
    app.backend.store_result(done, {"total": 12}, "SUCCESS")
    app.backend.store_result(failed, ValueError("no <b>"), "FAILURE", traceback="Traceback...")
    try:
        found = operations.lookup_task(done, app=app)
        assert (found.state, found.result, found.ready) == ("SUCCESS", {"total": 12}, True)
        found = operations.lookup_task(failed, app=app)
        assert found.state == "FAILURE" and found.result == "ValueError: no <b>"
        assert found.traceback == "Traceback..."
        unknown = operations.lookup_task("never-sent", app=app)
        assert unknown.state == "PENDING" and not unknown.ready and unknown.error == ""
    finally:
        redis.Redis.from_url(celery_app.conf.broker_url).delete(
            *(f"celery-task-meta-{i}" for i in (done, failed)))


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _rabbit_up(), reason="needs RabbitMQ on 127.0.0.1:5672")
def test_rabbitmq_depth_and_consumers_through_a_passive_declare():
    app = Celery("ops-rabbit", broker=RABBIT_URL, set_as_current=False)
    queue = f"ops-rabbit-{uuid.uuid4().hex[:8]}"
    missing = f"ops-missing-{uuid.uuid4().hex[:8]}"
    _publish(RABBIT_URL, queue, 4)
    try:
        depths = operations.queue_depths([missing, queue], app=app)
        # A missing queue closes the AMQP channel: the next queue is still read.
        assert depths == {missing: (None, None, ""), queue: (4, 0, "")}
    finally:
        with Connection(RABBIT_URL) as conn:
            conn.default_channel.queue_delete(queue)


def test_an_unreachable_broker_is_reported_not_raised():
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    app = Celery("ops-down", broker=f"redis://127.0.0.1:{closed}/0", set_as_current=False)
    snap = operations.snapshot(app=app)
    assert snap.error and snap.workers == []
    assert operations.unconsumed({"anything"}, app=app) == set()  # nothing known: no warning


def test_snapshot_is_cached_for_inspect_cache_seconds(monkeypatch, celery_app):
    calls = []
    monkeypatch.setattr(operations, "_inspect",
                        lambda app, command, timeout, limit: calls.append((command, timeout))
                        or {})
    with override_settings(TASK_ADMIN={"INSPECT_TIMEOUT": 0.1, "INSPECT_CACHE": 30}):
        first = operations.snapshot(app=celery_app)
        second = operations.snapshot(app=celery_app)
        assert sorted(calls) == sorted((c, 0.1) for c in operations.COMMANDS)
        assert second.taken_at == first.taken_at
        operations.forget_snapshot()
        operations.snapshot(app=celery_app)
        assert len(calls) == 2 * len(operations.COMMANDS)


def test_known_workers_are_waited_for_only_until_each_answered(monkeypatch, celery_app):
    """The first round waits the whole timeout (it cannot know how many workers exist); later
    rounds stop at as many replies as workers are known, until the next discovery round."""
    from django.core.cache import cache

    limits = []

    def fake(app, command, timeout, limit):
        limits.append(limit)
        return {"w1@h": {}, "w2@h": {}} if command == "stats" else {}

    monkeypatch.setattr(operations, "_inspect", fake)
    operations.snapshot(app=celery_app)
    assert set(limits) == {None}
    limits.clear()
    operations.forget_snapshot()
    operations.snapshot(app=celery_app)
    assert set(limits) == {2}
    limits.clear()
    cache.delete(operations.DISCOVERED_KEY)  # as when DISCOVER_EVERY has passed
    operations.forget_snapshot()
    operations.snapshot(app=celery_app)
    assert set(limits) == {None}

    # A worker nobody knew answers within the limit: the round is asked again, in full.
    limits.clear()
    operations.forget_snapshot()
    fake_replies = {"w1@h": {}, "w3@h": {}}
    monkeypatch.setattr(operations, "_inspect", lambda app, command, timeout, limit: (
        limits.append(limit) or fake_replies))
    snap = operations.snapshot(app=celery_app)
    assert limits == [2] * 5 + [None] * 5
    assert {w.hostname for w in snap.live} == {"w1@h", "w3@h"}


def test_asking_to_discover_finds_a_worker_started_since_the_last_full_round(
        monkeypatch, celery_app):
    # Issue 7's follow-up: a worker started after the last full round answered after the known
    # one, so a round that stopped at one reply did not see it for up to DISCOVER_EVERY.
    started = []

    def fake(app, command, timeout, limit):
        replies = {"w1@h": {}, **({"w3@h": {}} if started else {})}
        return dict(list(replies.items())[:limit]) if limit else replies

    monkeypatch.setattr(operations, "_inspect", fake)
    operations.snapshot(app=celery_app)  # a full round: w1 is known
    started.append(True)
    operations.forget_snapshot()
    assert {w.hostname for w in operations.snapshot(app=celery_app).live} == {"w1@h"}
    # The limited round just taken is cached; a page that discovers does not take it.
    found = operations.snapshot(app=celery_app, discover=True)
    assert {w.hostname for w in found.live} == {"w1@h", "w3@h"} and found.full
    cached = operations.snapshot(app=celery_app)  # from the cache now: the full round
    assert cached.full and {w.hostname for w in cached.live} == {"w1@h", "w3@h"}


def test_replies_become_workers(monkeypatch, celery_app):
    replies = {
        "stats": {"w1@h": {"pool": {"implementation": "celery.concurrency.prefork:TaskPool",
                                    "max-concurrency": 2, "processes": [11, 12, 13]},
                           "uptime": 65, "total": {"a": 3, "b": 4}, "prefetch_count": 8}},
        "active_queues": {"w1@h": [{"name": "q2"}, {"name": "q1"}]},
        "active": {"w1@h": [{"id": "t1", "name": "a", "args": [1], "kwargs": {},
                             "time_start": 1.8e9, "delivery_info": {"routing_key": "q1"}}]},
        "reserved": {"w1@h": []},
        "scheduled": {"w1@h": [{"eta": "2030-01-01T00:00:00+00:00", "priority": 6,
                                "request": {"id": "t2", "name": "b"}}]},
    }
    monkeypatch.setattr(operations, "_inspect", lambda app, command, *_a: replies[command])
    snap = operations.snapshot(app=celery_app)
    worker = snap.worker("w1@h")
    assert worker.pool == "TaskPool" and worker.concurrency == 3  # grown at run time
    assert worker.processed == 7 and worker.queues == ["q1", "q2"]
    assert worker.active[0].started.year == 2027 and worker.active[0].queue == "q1"
    assert worker.scheduled[0].eta.year == 2030 and worker.scheduled[0].id == "t2"
    assert snap.consumers() == {"q1": ["w1@h"], "q2": ["w1@h"]}
    assert snap.find_task("t2").kind == "scheduled"
    assert operations.unconsumed({"q1", "q3"}, app=celery_app) == {"q3"}


def test_queue_for_task_honours_the_option_then_routes_then_the_default():
    app = Celery("ops-routes", set_as_current=False)
    app.conf.task_routes = {"reports.*": {"queue": "reports"}}
    assert operations.queue_for_task("reports.daily", "urgent", app=app) == "urgent"
    assert operations.queue_for_task("reports.daily", None, app=app) == "reports"
    assert operations.queue_for_task("other.task", None, app=app) == "celery"


@pytest.mark.django_db
def test_run_pages_ask_the_workers_only_for_pending_nodes(
    admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from task_admin.models import NodeState
    from tests.support.runs import finish, start_run

    calls = []
    monkeypatch.setattr(operations, "_inspect",
                        lambda app, command, timeout, limit: calls.append(command) or {})
    run = start_run(django_capture_on_commit_callbacks, "hints")
    finish(run, root_0=(NodeState.SUCCESS, 4), root_1=(NodeState.SUCCESS, 8))
    run.refresh_from_db()
    assert run.is_finished
    page = admin_client.get(reverse("admin:task_admin_workflowrun_change", args=[run.pk]))
    assert page.status_code == 200 and calls == []

    pending = start_run(django_capture_on_commit_callbacks, "hints-pending")
    page = admin_client.get(reverse("admin:task_admin_workflowrun_change", args=[pending.pk]))
    # No worker answered: the default queue of both pending nodes is named, once.
    assert sorted(calls) == sorted(operations.COMMANDS)
    hints = page.context["queue_hints"]
    assert [h["queue"] for h in hints] == ["celery"] and len(hints[0]["nodes"]) == 2
    assert 'class="errornote ta-queue-hint" data-queue="celery"' in page.content.decode()
