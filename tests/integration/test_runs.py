"""Stored workflows run on a real worker; every node's record matches Celery's own results."""

import os
import signal
from pathlib import Path

import pytest
from celery.result import AsyncResult
from django.conf import settings

from task_admin import services
from task_admin.models import NodeState, RunStatus, TaskRun, Trigger, WorkflowRun
from tests.support.factories import SUMA, invocation, workflow
from tests.support.runs import finished
from tests.support.workers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
TASKS = "tests.testapp.tasks."


def nodes(run) -> list[TaskRun]:
    return list(run.nodes.order_by("position"))


def assert_matches_celery(run, app):
    for node in nodes(run):
        celery_state = AsyncResult(node.task_id, app=app).state
        if node.state == NodeState.SKIPPED:
            # Celery marks the rest of a broken chain as failed; a header failure leaves the
            # chord body unknown. Either way it never ran, which SKIPPED says.
            assert celery_state in {"PENDING", "FAILURE"}, node
            continue
        assert celery_state == node.state, node
        if node.state == NodeState.SUCCESS:
            assert AsyncResult(node.task_id, app=app).result == node.result


def test_tutorial_group(worker, celery_app):
    wf = workflow("group", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])]))
    run = finished(services.run_workflow(wf))
    assert run.status == RunStatus.SUCCEEDED
    assert [n.result for n in nodes(run)] == [4, 8]
    assert run.trigger == Trigger.MANUAL and run.finished_nodes == run.total_nodes == 2
    assert_matches_celery(run, celery_app)


def test_tutorial_chain(worker, celery_app):
    wf = workflow("chain", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    run = finished(services.run_workflow(wf))
    assert run.status == RunStatus.SUCCEEDED
    assert [n.result for n in nodes(run)] == [4, 8]
    assert_matches_celery(run, celery_app)


def test_tutorial_chord_records_the_bodys_failure(worker, celery_app):
    # Accepted at save time (suma(results, 10) has two arguments), but list + int fails.
    wf = workflow(
        "chord",
        ("chord", [invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])], invocation(SUMA, [10])),
    )
    run = finished(services.run_workflow(wf))
    header_a, header_b, body = nodes(run)
    assert (header_a.result, header_b.result) == (4, 8)
    assert body.state == NodeState.FAILURE
    assert body.exception.startswith("TypeError: can only concatenate list")
    assert "Traceback" in body.traceback and "return a + b" in body.traceback
    # The chord's result is its body's: it could not be produced, so the run failed.
    assert run.status == RunStatus.FAILED
    assert_matches_celery(run, celery_app)


def test_nested_chord_of_chain_and_group_with_chain_body(worker, celery_app):
    header = [
        ("chain", [invocation(SUMA, [1, 1]), invocation(SUMA, [5])]),
        ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [3, 3])]),
    ]
    body = ("chain", [invocation(TASKS + "sum_list"), invocation(SUMA, [100])])
    wf = workflow("nested", ("chord", header, body))
    run = finished(services.run_workflow(wf))
    assert run.status == RunStatus.SUCCEEDED, [(n.path, n.state, n.exception) for n in nodes(run)]
    by_path = {n.path: n.result for n in nodes(run)}
    assert by_path == {
        "root.header.0.0": 2,
        "root.header.0.1": 7,
        "root.header.1.0": 4,
        "root.header.1.1": 6,
        "root.body.0": 17,  # sum_list([7, [4, 6]])
        "root.body.1": 117,
    }
    assert_matches_celery(run, celery_app)


def test_retries_are_recorded_attempt_by_attempt(worker):
    task = TASKS + "fetch_exchange_rate"
    flaky = invocation(task, kwargs={"fail_times": 2, "countdown": 1}, immutable=True)
    run = finished(services.run_workflow(workflow("flaky", ("chain", [flaky]))))
    [node] = nodes(run)
    assert node.state == NodeState.SUCCESS and node.attempt_count == 3
    assert node.result == {"currency": "EUR", "rate": 1.08, "attempts": 3}
    attempts = list(node.attempts.all())
    assert [(a.number, a.state) for a in attempts] == [(1, "RETRY"), (2, "RETRY"), (3, "SUCCESS")]
    assert attempts[0].reason == "TransientError: rate service unavailable (attempt 1)"
    assert attempts[0].next_eta is not None and attempts[0].next_eta > attempts[0].started_at


def test_retries_end_in_final_failure(worker):
    task = TASKS + "fetch_exchange_rate"
    hopeless = invocation(task, kwargs={"fail_times": 9, "countdown": 0.1}, immutable=True)
    run = finished(services.run_workflow(workflow("hopeless", ("group", [hopeless]))))
    [node] = nodes(run)
    assert node.state == NodeState.FAILURE and run.status == RunStatus.FAILED
    assert [a.state for a in node.attempts.all()] == ["RETRY"] * 3 + ["FAILURE"]
    assert node.exception == "TransientError: rate service unavailable (attempt 4)"


def test_failure_stops_the_chain_and_the_rest_is_skipped(worker, celery_app):
    wf = workflow(
        "stops",
        ("chain", [
            invocation(SUMA, [1, 1]),
            invocation(TASKS + "always_fails", immutable=True),
            invocation(SUMA, [1]),
        ]),
    )
    run = finished(services.run_workflow(wf))
    assert [n.state for n in nodes(run)] == ["SUCCESS", "FAILURE", "SKIPPED"]
    assert run.status == RunStatus.FAILED  # the chain's final result was never produced
    assert_matches_celery(run, celery_app)


def test_unreachable_broker_fails_the_dispatch(settings):
    # Nothing listens on this port: publishing fails after kombu's retries.
    from celery import Celery

    from project import localredis

    closed = Celery("closed", set_as_current=False)
    closed.config_from_object("django.conf:settings", namespace="CELERY")
    closed.conf.broker_url = f"redis://127.0.0.1:{localredis._free_port()}/0"
    wf = workflow("nowhere", ("group", [invocation(SUMA, [1, 1]), invocation(SUMA, [2, 2])]))
    run = services.run_workflow(wf, app=closed)
    run.refresh_from_db()
    assert run.status == RunStatus.DISPATCH_FAILED
    assert run.error.startswith("OperationalError: "), run.error  # kombu's, with the reason
    assert {n.state for n in nodes(run)} == {NodeState.NOT_SENT}
    assert run.finished_at is not None


def test_revoke_a_running_run(worker, celery_app):
    wf = workflow("slow", ("chain", [
        invocation(TASKS + "slow", kwargs={"seconds": 30}, immutable=True),
        invocation(SUMA, [1]),
    ]))
    run = services.run_workflow(wf)
    first = run.nodes.get(position=0)
    wait_for(lambda: TaskRun.objects.get(pk=first.pk).state == NodeState.STARTED, timeout=30)
    assert services.revoke_run(run, terminate=True, app=celery_app) == 2
    run.refresh_from_db()
    assert run.status == RunStatus.REVOKED
    assert {n.state for n in nodes(run)} == {NodeState.REVOKED}
    wait_for(lambda: AsyncResult(first.task_id, app=celery_app).state == "REVOKED", timeout=30)


def test_revoke_without_terminate_lets_the_running_task_finish(worker, celery_app):
    """Regression: the running task was marked revoked while the worker went on to succeed."""
    wf = workflow("slow-then-sum", ("chain", [
        invocation(TASKS + "slow", kwargs={"seconds": 2}, immutable=True),
        invocation(SUMA, [1]),
    ]))
    run = services.run_workflow(wf)
    first, second = nodes(run)
    wait_for(lambda: TaskRun.objects.get(pk=first.pk).state == NodeState.STARTED, timeout=30)
    assert services.revoke_run(run, app=celery_app) == 1  # only the step not yet started
    run = finished(run)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.result) == (NodeState.SUCCESS, 2)
    assert AsyncResult(first.task_id, app=celery_app).state == "SUCCESS"
    assert second.state == NodeState.REVOKED
    assert run.status == RunStatus.REVOKED


def test_rerun_from_failure_keeps_what_succeeded(worker, celery_app):
    data = Path(settings.EXAMPLE_DATA_DIR)
    (data / "late.csv").unlink(missing_ok=True)
    wf = workflow("late-file", ("chord", [
        invocation(SUMA, [2, 2]),
        invocation(TASKS + "file_total", kwargs={"name": "late.csv"}, immutable=True),
    ], invocation(TASKS + "sum_list")))
    first = finished(services.run_workflow(wf))
    assert [n.state for n in nodes(first)] == ["SUCCESS", "FAILURE", "SKIPPED"]
    assert "FileNotFoundError" in nodes(first)[1].exception

    (data / "late.csv").write_text("region,amount\nnorth,100\nsouth,200\n")
    again = finished(services.rerun_from_failure(first, app=celery_app))
    assert again.status == RunStatus.SUCCEEDED and again.rerun_of == first
    kept, file_node, body = nodes(again)
    assert kept.task_name == "task_admin.replay" and kept.reused_from == nodes(first)[0]
    assert (kept.result, file_node.result, body.result) == (4, 300.0, 304.0)
    assert again.note == f"Re-run of #{first.pk}: 2 of 3 tasks run again; results kept: 1."


def test_killed_pool_process_ends_in_failure(worker, celery_app):
    wf = workflow("killed", ("group", [
        invocation(TASKS + "slow", kwargs={"seconds": 60}, immutable=True)
    ]))
    run = services.run_workflow(wf)
    [node] = nodes(run)
    active = wait_for(
        lambda: (celery_app.control.inspect([worker.nodename], timeout=1).active() or {}).get(
            worker.nodename
        ),
        timeout=30,
    )
    os.kill(active[0]["worker_pid"], signal.SIGKILL)
    run = finished(run)
    node.refresh_from_db()
    assert node.state == NodeState.FAILURE
    assert node.exception.startswith("WorkerLostError")
    assert AsyncResult(node.task_id, app=celery_app).state == "FAILURE"


def test_reconcile_from_the_result_backend(worker, celery_app, settings):
    """A node whose handlers never ran is brought up to date from the result backend."""
    wf = workflow("lost", ("group", [invocation(SUMA, [20, 22])]))
    run = finished(services.run_workflow(wf))
    # What a worker killed between storing the result and recording it leaves behind.
    TaskRun.objects.filter(run=run).update(state=NodeState.STARTED, result=None)
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_nodes=0)
    run.refresh_from_db()
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RECONCILE_AFTER": 0}
    assert services.reconcile_run(run, app=celery_app) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert nodes(run)[0].result == 42
