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

pytestmark = pytest.mark.django_db
S = NodeState


@pytest.fixture
def group_run(django_capture_on_commit_callbacks):
    wf = workflow("values", ("group", [invocation(SUMA, [i, i]) for i in range(8)]))
    with django_capture_on_commit_callbacks(execute=False):
        return services.run_workflow(wf)


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
    statements = [q["sql"] for q in ctx.captured_queries
                  if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    # Lock the runs, read the nodes, write them, recount, finish: no canvas read, and the
    # listener's run comes from the finishing statement.
    assert len(statements) == 5, statements
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
