"""Issue 8, item 2 and "two workers on two queues, one killed": a whole worker SIGKILLed
(main process and pool children, so no handler runs) never leaves a run "running".

Real workers: the session's worker on the default queue and one of the test's own on a queue
of its own, killed with SIGKILL. ``LOST_AFTER`` is 1 s in the test settings (30 s by default).
"""

from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command

from task_admin import liveness, scheduling, services
from task_admin.models import NodeState, Overlap, RunStatus, TaskRun, WorkflowRun
from tests.support.factories import SUMA, invocation, schedule, workflow
from tests.support.runs import finished
from tests.support.workers import start_celery, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
TASKS = "tests.testapp.tasks."


@pytest.fixture
def queue_worker(celery_app, tmp_path):
    """Start workers consuming one queue of their own; each is killed or stopped at the end."""
    queue = f"q-{uuid.uuid4().hex[:8]}"
    started = []

    def start(nodename=None):
        process = start_celery("worker", log_dir=tmp_path, app=celery_app,
                               extra=("-Q", queue), nodename=nodename)
        started.append(process)
        return process

    start.queue = queue
    yield start
    for process in started:
        process.kill()


def state_of(task_id: str) -> str:
    return TaskRun.objects.get(task_id=task_id).state


def test_two_queues_one_worker_killed_its_node_is_lost_the_run_ends(
    worker, queue_worker, celery_app
):
    doomed = queue_worker()
    wf = workflow("two queues", ("group", [
        invocation(SUMA, [2, 2]),
        invocation(TASKS + "slow", kwargs={"seconds": 60}, immutable=True,
                   queue=queue_worker.queue),
    ]))
    run = services.run_workflow(wf)
    here, there = run.nodes.order_by("position")
    wait_for(lambda: state_of(there.task_id) == NodeState.STARTED, timeout=90,
             what="the slow task to start on the queue's worker")
    wait_for(lambda: state_of(here.task_id) == NodeState.SUCCESS, timeout=90)
    here.refresh_from_db()
    there.refresh_from_db()
    # Each node went to the worker that consumes its queue.
    assert (here.worker, there.worker) == (worker.nodename, doomed.nodename)

    doomed.kill()
    assert state_of(there.task_id) == NodeState.STARTED  # nothing else would ever change it
    # Polled: a node is only looked at once it has been quiet for LOST_AFTER.
    report = wait_for(lambda: liveness.reconcile(celery_app), timeout=60, what="the reconciler")
    assert report.silent == [doomed.nodename] and report.lost == [there.task_id]

    run.refresh_from_db()
    there.refresh_from_db()
    assert run.status == RunStatus.PARTIALLY_FAILED and run.finished_at is not None
    assert there.state == NodeState.FAILURE
    assert there.exception == (
        f"WorkerLostError: worker {doomed.nodename} stopped answering; the task was lost."
    )
    # The live worker's node is untouched, and a second pass finds nothing to do.
    assert state_of(here.task_id) == NodeState.SUCCESS
    assert not liveness.reconcile(celery_app)


def test_worker_restarted_under_its_name_the_reconciler_task_settles_it(
    worker, queue_worker, celery_app
):
    name = f"doomed-{uuid.uuid4().hex[:6]}@%h"
    doomed = queue_worker(nodename=name)
    wf = workflow("slow then add", ("chain", [
        invocation(TASKS + "slow", kwargs={"seconds": 60}, immutable=True,
                   queue=queue_worker.queue),
        invocation(SUMA, [1]),
    ]))
    sched = schedule(wf, overlap=Overlap.SKIP)
    assert scheduling.fire(sched.pk).startswith("started run")
    run = WorkflowRun.objects.get(schedule=sched)
    slow, then = run.nodes.order_by("position")
    wait_for(lambda: state_of(slow.task_id) == NodeState.STARTED, timeout=90)

    doomed.kill()
    restarted = queue_worker(nodename=name)  # answers pings under the same name
    assert restarted.nodename == doomed.nodename
    # The periodic task, run by a worker (here the restarted one), as beat would send it.
    counts = celery_app.send_task("task_admin.reconcile", queue=queue_worker.queue).get(
        timeout=120
    )
    assert counts == {"lost": 1, "requeued": 0, "settled": 0, "repaired": 0}

    run = finished(run, timeout=150)
    slow.refresh_from_db()
    assert slow.state == NodeState.FAILURE
    assert "no longer holds this task (restarted?)" in slow.exception
    assert state_of(then.task_id) == NodeState.SKIPPED
    assert run.status == RunStatus.FAILED
    # The schedule is no longer held back by a run nobody works on.
    from tests.support.factories import next_due

    next_due(sched)
    assert scheduling.fire(sched.pk).startswith("started run")


def test_a_task_safe_to_repeat_goes_back_to_the_broker(worker, queue_worker, celery_app):
    doomed = queue_worker()
    wf = workflow("repeatable", ("group", [
        invocation(TASKS + "repeatable_sleep", kwargs={"seconds": 60}, immutable=True,
                   queue=queue_worker.queue),
    ]))
    run = services.run_workflow(wf)
    [node] = run.nodes.all()
    wait_for(lambda: state_of(node.task_id) == NodeState.STARTED, timeout=90)
    doomed.kill()

    def reconciled():
        call_command("task_admin", "reconcile")
        node.refresh_from_db()
        return node.state == NodeState.PENDING

    wait_for(reconciled, timeout=60, what="the reconcile command")
    assert node.state == NodeState.PENDING and node.worker == ""
    assert "safe to repeat (acks_late)" in node.exception
    run.refresh_from_db()
    assert not run.is_finished  # the broker delivers it again after its visibility timeout
