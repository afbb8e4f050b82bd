"""The worker's signal handlers: free for the host project's own tasks, batched for ours.

The handlers are called as Celery calls them, with a real worker ``Request`` built from a real
task message and the task's own request context.
"""

from __future__ import annotations

import pytest
from billiard.einfo import ExceptionInfo
from celery.exceptions import Retry
from celery.utils import uuid
from celery.worker.request import Request
from django.db import connection
from django.test.utils import CaptureQueriesContext
from kombu.transport.base import Message
from kombu.utils.json import dumps

from task_admin import canvas, receivers, registry, services, tracking
from task_admin.canvas.build import TASK_ID_PREFIX, is_tracked, to_signature
from task_admin.models import NodeState, RunStatus, WorkflowRun
from task_admin.recorder import Recorder
from task_admin.signals import run_finished
from tests.support.factories import SUMA, invocation, workflow

S = NodeState


@pytest.fixture
def app():
    app = registry.get_app()
    registry.load_tasks(app)
    return app


@pytest.fixture
def buffered(monkeypatch):
    """The handlers as inside a worker: events wait in a recorder that only the test flushes."""
    recorder = Recorder()
    recorder.buffered = True
    monkeypatch.setattr(recorder, "_start", lambda: None)  # no thread: the test flushes
    monkeypatch.setattr(receivers, "recorder", recorder)
    return recorder


def worker_request(app, task_id: str, retries: int = 0) -> Request:
    """What ``task_received`` gets: the worker's Request for a real task message."""
    message = app.amqp.as_task_v2(task_id, SUMA, args=(1, 2), kwargs={}, retries=retries)
    raw = Message(
        body=dumps(message.body), headers=message.headers, properties=message.properties,
        content_type="application/json", content_encoding="utf-8",
        delivery_info={"exchange": "", "routing_key": "celery"},
    )
    return Request(raw, app=app, hostname="celery@bench", task=app.tasks[SUMA])


def lifecycle(app, task_id: str, *, fail: bool = False, retry: bool = False) -> None:
    """Call every handler the way a worker does for one execution of ``task_id``."""
    task = app.tasks[SUMA]
    request = worker_request(app, task_id)
    receivers.on_received(sender=None, request=request)
    task.push_request(id=task_id, retries=0, hostname="celery@bench")
    try:
        receivers.on_prerun(sender=task, task_id=task_id, task=task, args=(1, 2), kwargs={})
        if retry:
            try:
                raise Retry("again", when=5)
            except Retry as exc:
                receivers.on_retry(sender=task, request=task.request, reason=exc,
                                   einfo=ExceptionInfo())
        elif fail:
            try:
                raise ValueError("boom")
            except ValueError as exc:
                receivers.on_failure(sender=task, task_id=task_id, exception=exc,
                                     einfo=ExceptionInfo())
        else:
            receivers.on_success(sender=task, result=3)
    finally:
        task.pop_request()
    receivers.on_revoked(sender=None, request=request, terminated=False, expired=False)


def test_task_ids_we_send_carry_the_prefix_chord_bodies_too(app):
    spec = canvas.Chain(tasks=(
        canvas.Task(SUMA, (1, 1)),
        canvas.Chord(header=(canvas.Task(SUMA, (1, 2)), canvas.Task(SUMA, (3, 4))),
                     body=canvas.Task("tests.testapp.tasks.sum_list")),
    ))
    signature, ids = to_signature(spec, app=app)
    assert len(ids) == 4 and all(i.startswith(TASK_ID_PREFIX) for i in ids.values())
    chord = signature.tasks[1]
    assert chord.body.options["task_id"] == ids["root.1.body"]
    assert not is_tracked(uuid()) and not is_tracked(None)


@pytest.mark.django_db
@pytest.mark.parametrize("outcome", ["success", "failure", "retry"])
def test_a_task_not_sent_by_task_admin_costs_no_statement(app, outcome, buffered):
    # A row whose id is a plain uuid: even a task that happens to share it is not looked up.
    with CaptureQueriesContext(connection) as ctx:
        lifecycle(app, uuid(), fail=outcome == "failure", retry=outcome == "retry")
    assert ctx.captured_queries == []
    assert buffered._events == []
    assert receivers._started == {}


@pytest.mark.django_db
def test_a_task_not_sent_by_task_admin_costs_no_statement_outside_a_worker(app):
    with CaptureQueriesContext(connection) as ctx:
        lifecycle(app, uuid())
        lifecycle(app, uuid(), fail=True)
    assert ctx.captured_queries == []


@pytest.fixture
def group_run(django_capture_on_commit_callbacks):
    wf = workflow("wide", ("group", [invocation(SUMA, [i, i]) for i in range(20)]))
    with django_capture_on_commit_callbacks(execute=False):
        return services.run_workflow(wf)


@pytest.mark.django_db
def test_tracked_events_are_buffered_then_written_in_one_batch(
    app, buffered, group_run, django_capture_on_commit_callbacks
):
    ids = list(group_run.nodes.order_by("position").values_list("task_id", flat=True))
    finished = []

    def listener(sender, run, **kwargs):
        finished.append(run.pk)

    run_finished.connect(listener, sender=WorkflowRun)
    try:
        with CaptureQueriesContext(connection) as handlers:
            for task_id in ids:
                lifecycle(app, task_id)
        assert handlers.captured_queries == []  # the handlers only buffer
        assert len(buffered._events) == 4 * len(ids)  # received, started, succeeded, revoked
        with (
            CaptureQueriesContext(connection) as flush,
            django_capture_on_commit_callbacks(execute=False) as callbacks,
        ):
            assert buffered.flush()
        assert finished == []  # not before the commit
        for callback in callbacks:
            callback()
    finally:
        run_finished.disconnect(listener, sender=WorkflowRun)
    group_run.refresh_from_db()
    assert group_run.status == RunStatus.SUCCEEDED
    assert group_run.finished_nodes == group_run.total_nodes == 20
    assert set(group_run.nodes.values_list("state", "result", "attempt_count")) == {
        (S.SUCCESS, 3, 1)
    }
    assert group_run.nodes.filter(worker="celery@bench", started_at__isnull=False).count() == 20
    assert finished == [group_run.pk]  # once, after the commit
    # 80 state changes in four statements: lock the run, read and write the nodes, then recount
    # and finish the run in one.
    writes = [q for q in flush.captured_queries
              if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(writes) == 4, [q["sql"][:80] for q in writes]


@pytest.mark.django_db
def test_one_state_change_is_at_most_one_round_trip_per_node_statement(group_run):
    """Applied one at a time (the reconciler's way), a success is a bounded set of statements
    that does not grow with the run's size."""
    first, second = group_run.nodes.order_by("position")[:2]
    tracking.started(first.task_id, "w", 1)
    with CaptureQueriesContext(connection) as ctx:
        tracking.succeeded(first.task_id, 2, 0.1)
    with CaptureQueriesContext(connection) as ctx2:
        tracking.started(second.task_id, "w", 1)
    def statements(captured):
        return [q["sql"] for q in captured.captured_queries
                if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]

    # Lock the run, read and write the node, recount the run (a node finished).
    assert len(statements(ctx)) == 4, statements(ctx)
    # The run is already running and no node finished: nothing to recount.
    assert len(statements(ctx2)) == 3, statements(ctx2)


@pytest.mark.django_db
def test_retry_then_late_received_stays_retrying(app, buffered, group_run):
    node = group_run.nodes.order_by("position").first()
    task = app.tasks[SUMA]
    receivers.on_received(sender=None, request=worker_request(app, node.task_id))
    task.push_request(id=node.task_id, retries=0, hostname="celery@bench")
    receivers.on_prerun(sender=task, task_id=node.task_id, task=task)
    try:
        raise Retry("again", when=30)
    except Retry as exc:
        receivers.on_retry(sender=task, request=task.request, reason=exc, einfo=ExceptionInfo())
    task.pop_request()
    # The retried message reaches the worker at once and waits there for its countdown.
    receivers.on_received(sender=None, request=worker_request(app, node.task_id, retries=1))
    buffered.flush()
    node.refresh_from_db()
    assert (node.state, node.attempt_count) == (S.RETRY, 1)
    [attempt] = node.attempts.all()
    assert attempt.state == S.RETRY and attempt.next_eta > attempt.started_at


@pytest.mark.django_db
def test_an_earlier_attempts_late_retry_does_not_move_a_later_attempt(group_run):
    node = group_run.nodes.order_by("position").first()
    tracking.started(node.task_id, "w", 2)  # attempt 2 written first (another process)
    tracking.retried(node.task_id, 1, "TransientError: once", 0, "")
    node.refresh_from_db()
    assert (node.state, node.attempt_count) == (S.STARTED, 2)
    assert [(a.number, a.state) for a in node.attempts.all()] == [(1, S.RETRY), (2, S.STARTED)]


@pytest.mark.django_db
def test_a_write_that_fails_keeps_its_events_for_the_next_try(group_run):
    from django.db import OperationalError

    calls = []

    def flaky(events):
        calls.append(len(events))
        if len(calls) == 1:
            raise OperationalError("database is locked")
        tracking.apply(events)

    recorder = Recorder(write=flaky)
    recorder.buffered = True
    recorder._start = lambda: None
    node = group_run.nodes.first()
    recorder.add(tracking.Event(tracking.STARTED, node.task_id, worker="w", attempt=1))
    assert recorder.flush() is False
    assert recorder.flush() is True
    assert calls == [1, 1]
    node.refresh_from_db()
    assert node.state == S.STARTED


def test_the_main_process_writes_received_only_for_tasks_still_waiting(app, monkeypatch):
    from celery.worker import state

    waiting, running = worker_request(app, "ta-waiting"), worker_request(app, "ta-running")
    monkeypatch.setattr(state, "requests", {"ta-waiting": waiting, "ta-running": running})
    monkeypatch.setattr(state, "active_requests", {running})
    events = [
        tracking.Event(tracking.RECEIVED, task_id)
        for task_id in ("ta-waiting", "ta-running", "ta-finished")
    ] + [tracking.Event(tracking.REVOKED_EVENT, "ta-finished")]
    kept = receivers.still_waiting(events)
    assert [(e.kind, e.task_id) for e in kept] == [
        (tracking.RECEIVED, "ta-waiting"), (tracking.REVOKED_EVENT, "ta-finished")
    ]


def test_a_worker_of_several_processes_on_sqlite_says_so(caplog):
    from django.db import connection

    from task_admin.receivers import warn_about_sqlite

    with caplog.at_level("WARNING", logger="task_admin"):
        warn_about_sqlite(2)
        warn_about_sqlite(1)
    expected = 1 if connection.vendor == "sqlite" else 0
    assert len([r for r in caplog.records if "SQLite" in r.getMessage()]) == expected
