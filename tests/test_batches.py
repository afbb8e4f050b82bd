"""The worker's batch statements (``models.batches``): values written back exactly, runs
finished in as few statements as a batch can take, listeners given whole runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from task_admin import services, tracking
from task_admin.models import NodeState, RunStatus, TaskRun, WorkflowRun
from task_admin.signals import run_finished
from tests.support.factories import SUMA, invocation, workflow
from tests.support.plans import index_name, searches, statements

pytestmark = pytest.mark.django_db
S = NodeState


@pytest.fixture
def group_run(django_capture_on_commit_callbacks):
    wf = workflow("values", ("group", [invocation(SUMA, [i, i]) for i in range(8)]))
    with django_capture_on_commit_callbacks(execute=False):
        return services.run_workflow(wf)


def split(ctx) -> tuple[list[str], int]:
    """The statements captured, and how many transactions (savepoints inside a test) they
    opened."""
    sql = [q["sql"] for q in ctx.captured_queries]
    statements = [q for q in sql if not q.startswith(("SAVEPOINT", "RELEASE"))]
    return statements, sum(q.startswith("SAVEPOINT") for q in sql)


def run_version(run: WorkflowRun):
    """Something that changes whenever the run's row is written (PostgreSQL: its row version;
    SQLite: the connection's count of changed rows)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f'SELECT xmin::text FROM "{WorkflowRun._meta.db_table}" WHERE id = %s',
                           [run.pk])
        else:
            cursor.execute("SELECT total_changes()")
        return cursor.fetchone()[0]


RESULTS = ["text", "", [1, "two", None], {"a": {"b": [True, 1.5]}}, None, 0, False, 2**60]


def test_every_kind_of_value_is_written_back_as_it_was(group_run):
    nodes = list(group_run.nodes.order_by("position"))
    at = timezone.now() - timedelta(seconds=5, microseconds=123)
    events = []
    for node, result in zip(nodes, RESULTS, strict=True):
        events += [
            tracking.Event(tracking.RECEIVED, node.task_id, at=at, worker="celery@é"),
            tracking.Event(tracking.STARTED, node.task_id, at=at + timedelta(seconds=1),
                           attempt=1, worker="celery@é"),
            tracking.Event(tracking.SUCCEEDED_EVENT, node.task_id, at=at + timedelta(seconds=2),
                           attempt=1, result=result, runtime=0.25),
        ]
    assert tracking.apply(events) == len(nodes)
    for node, result in zip(group_run.nodes.order_by("position"), RESULTS, strict=True):
        assert node.state == S.SUCCESS and node.attempt_count == 1
        assert node.result == result and type(node.result) is type(result)
        assert node.received_at == at and node.started_at == at + timedelta(seconds=1)
        assert node.finished_at == at + timedelta(seconds=2) and node.runtime == 0.25
        assert node.worker == "celery@é" and node.exception == node.traceback == ""
    # A result of None is SQL NULL, as the ORM writes it, not JSON null.
    assert TaskRun.objects.filter(run=group_run, result__isnull=True).count() == 1


def test_a_failure_keeps_its_text_and_the_run_fails(group_run):
    first = group_run.nodes.order_by("position").first()
    text = "ValueError: l'été \"quoted\" \\ back\nslash"
    tracking.apply([tracking.Event(tracking.FAILED_EVENT, first.task_id, attempt=1,
                                   exception=text, traceback="Traceback\n  line ✓")])
    first.refresh_from_db()
    assert (first.state, first.exception, first.traceback) == (S.FAILURE, text,
                                                                "Traceback\n  line ✓")


def test_a_run_that_succeeded_is_finished_in_the_batch_that_ends_it(
        group_run, django_capture_on_commit_callbacks):
    ids = list(group_run.nodes.values_list("task_id", flat=True))
    received = []

    def listener(sender, run, **kwargs):
        received.append(run)

    run_finished.connect(listener, sender=WorkflowRun)
    try:
        with django_capture_on_commit_callbacks(execute=True), \
                CaptureQueriesContext(connection) as ctx:
            tracking.apply([tracking.Event(tracking.SUCCEEDED_EVENT, task_id, attempt=1,
                                           result=1) for task_id in ids])
    finally:
        run_finished.disconnect(listener, sender=WorkflowRun)
    statements, transactions = split(ctx)
    # Lock the runs, read the nodes, write them, then recount and finish in one statement: no
    # canvas read, and the listener's run comes from the finishing statement.
    assert len(statements) == 4, statements
    assert statements[-1].startswith(f'UPDATE "{WorkflowRun._meta.db_table}"')
    assert transactions == 1  # the batch's own (a savepoint here, inside the test's)
    [run] = received
    assert (run.pk, run.status, run.finished_nodes) == (group_run.pk, RunStatus.SUCCEEDED, 8)
    assert run.finished_at is not None and run.started_at is not None
    assert run.spec == group_run.spec  # deferred, read when asked for
    stored = WorkflowRun.objects.get(pk=group_run.pk)
    assert (stored.status, stored.finished_at) == (RunStatus.SUCCEEDED, run.finished_at)


def test_a_run_with_a_failure_is_finished_from_its_canvas(
        group_run, django_capture_on_commit_callbacks):
    events = [tracking.Event(tracking.SUCCEEDED_EVENT, n.task_id, attempt=1, result=1)
              for n in group_run.nodes.order_by("position")]
    events[3] = tracking.Event(tracking.FAILED_EVENT, events[3].task_id, attempt=1,
                               exception="ValueError: no")
    received = []

    def listener(sender, run, **kwargs):
        received.append((run.pk, run.status))

    run_finished.connect(listener, sender=WorkflowRun)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tracking.apply(events)
    finally:
        run_finished.disconnect(listener, sender=WorkflowRun)
    assert received == [(group_run.pk, RunStatus.PARTIALLY_FAILED)]


@pytest.fixture
def pairs(django_capture_on_commit_callbacks):
    wf = workflow("pairs", ("group", [invocation(SUMA, [1, 1]), invocation(SUMA, [2, 2])]))
    with django_capture_on_commit_callbacks(execute=False):
        return [services.run_workflow(wf) for _ in range(6)]


def test_a_batch_ending_many_small_runs_is_four_statements_in_one_transaction(
        pairs, django_capture_on_commit_callbacks):
    events = [tracking.Event(kind, node.task_id, attempt=1, worker="w", result=1)
              for run in pairs for node in run.nodes.all()
              for kind in (tracking.STARTED, tracking.SUCCEEDED_EVENT)]
    received = []

    def listener(sender, run, **kwargs):
        received.append(run.pk)

    run_finished.connect(listener, sender=WorkflowRun)
    try:
        with django_capture_on_commit_callbacks(execute=True), \
                CaptureQueriesContext(connection) as ctx:
            assert tracking.apply(events) == 12
    finally:
        run_finished.disconnect(listener, sender=WorkflowRun)
    statements, transactions = split(ctx)
    assert (len(statements), transactions) == (4, 1), statements
    assert sorted(received) == sorted(run.pk for run in pairs)
    assert set(WorkflowRun.objects.filter(pk__in=[r.pk for r in pairs])
               .values_list("status", "finished_nodes")) == {(RunStatus.SUCCEEDED, 2)}


def test_a_batch_that_only_starts_nodes_of_running_runs_leaves_the_runs_alone(pairs):
    first, second = pairs[0].nodes.order_by("position")
    tracking.apply([tracking.Event(tracking.RECEIVED, first.task_id, worker="w")])
    assert WorkflowRun.objects.get(pk=pairs[0].pk).status == RunStatus.RUNNING
    with CaptureQueriesContext(connection) as ctx:
        tracking.apply([
            tracking.Event(tracking.STARTED, first.task_id, attempt=1, worker="w"),
            tracking.Event(tracking.RECEIVED, second.task_id, worker="w"),
            tracking.Event(tracking.STARTED, second.task_id, attempt=1, worker="w"),
        ])
    statements, transactions = split(ctx)
    # Lock, read, write the nodes: nothing to recount, nothing started or finished.
    assert (len(statements), transactions) == (3, 1), statements
    assert set(pairs[0].nodes.values_list("state", flat=True)) == {S.STARTED}


def test_a_recount_that_changes_nothing_does_not_write_the_run(pairs):
    run = pairs[0]
    first = run.nodes.order_by("position").first()
    tracking.apply([tracking.Event(tracking.SUCCEEDED_EVENT, first.task_id, attempt=1,
                                   result=1)])
    before = run_version(run)
    assert tracking.refresh_runs([run.pk]) == []
    assert run_version(run) == before
    stored = WorkflowRun.objects.get(pk=run.pk)
    assert (stored.status, stored.finished_nodes) == (RunStatus.RUNNING, 1)


def test_a_late_duplicate_success_does_not_finish_a_run_twice(
        pairs, django_capture_on_commit_callbacks):
    run = pairs[0]
    events = [tracking.Event(tracking.SUCCEEDED_EVENT, n.task_id, attempt=1, result=1)
              for n in run.nodes.all()]
    received = []

    def listener(sender, run, **kwargs):
        received.append(run.pk)

    run_finished.connect(listener, sender=WorkflowRun)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tracking.apply(events)
            finished_at = WorkflowRun.objects.get(pk=run.pk).finished_at
            tracking.apply(events)
            assert tracking.refresh_runs([run.pk]) == []
    finally:
        run_finished.disconnect(listener, sender=WorkflowRun)
    assert received == [run.pk]
    assert WorkflowRun.objects.get(pk=run.pk).finished_at == finished_at


def test_a_run_that_starts_and_ends_in_one_batch_is_started_when_it_ended(pairs):
    run = pairs[0]
    tracking.apply([tracking.Event(kind, n.task_id, attempt=1, worker="w", result=1)
                    for n in run.nodes.all()
                    for kind in (tracking.STARTED, tracking.SUCCEEDED_EVENT)])
    stored = WorkflowRun.objects.get(pk=run.pk)
    assert stored.status == RunStatus.SUCCEEDED
    assert stored.started_at is not None and stored.started_at == stored.finished_at


def test_the_recount_finds_each_runs_nodes_by_the_run_index_not_the_state_index(pairs):
    """The state condition is inside the sums: a plan may not answer it from the ``state``
    index (with stale statistics that read every finished node of the table for each run)."""
    events = [tracking.Event(tracking.SUCCEEDED_EVENT, n.task_id, attempt=1, result=1)
              for run in pairs for n in run.nodes.all()]
    with CaptureQueriesContext(connection) as ctx:
        tracking.apply(events)
    table = TaskRun._meta.db_table
    [settle] = statements(ctx, "SUM(CASE")
    used = searches(settle)
    assert index_name(table, ("run_id", "path")) in used, used
    assert index_name(table, ("state", "started_at")) not in used, used
