"""Node state transitions are guarded: late or repeated events never move a node backwards."""

import pytest

from task_admin import services, tracking
from task_admin.models import NodeState, RunStatus, TaskRun
from tests.support.factories import SUMA, invocation, workflow

pytestmark = pytest.mark.django_db
S = NodeState


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    wf = workflow("chain", ("chain", [invocation(SUMA, [1, 1]), invocation(SUMA, [2])]))
    with django_capture_on_commit_callbacks(execute=False):  # recorded, not sent
        return services.run_workflow(wf)


def states(run):
    return [n.state for n in run.nodes.order_by("position")]


def test_a_node_moves_forward_only(run):
    first, second = run.nodes.order_by("position")
    tracking.received(first.task_id, "w1")
    tracking.started(first.task_id, "w1", 1)
    tracking.succeeded(first.task_id, 2, 0.01)
    tracking.received(first.task_id, "late")  # a late or repeated event
    tracking.started(first.task_id, "late", 1)
    first.refresh_from_db()
    assert (first.state, first.worker, first.result) == (S.SUCCESS, "w1", 2)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.finished_nodes == 1
    tracking.started(second.task_id, "w2", 1)
    tracking.succeeded(second.task_id, 4, 0.01)
    tracking.succeeded(second.task_id, 4, 0.01)  # counted once
    run.refresh_from_db()
    assert (run.status, run.finished_nodes) == (RunStatus.SUCCEEDED, 2)


def test_a_failure_skips_the_rest_of_the_chain(run):
    first, _second = run.nodes.order_by("position")
    tracking.started(first.task_id, "w1", 1)
    tracking.failed(first.task_id, "ValueError: no", "Traceback ...")
    run.refresh_from_db()
    assert states(run) == [S.FAILURE, S.SKIPPED]
    assert run.status == RunStatus.FAILED and run.finished_at is not None


def test_results_that_are_not_json_are_kept_as_text(run):
    first = run.nodes.order_by("position").first()
    tracking.succeeded(first.task_id, {1, 2}, None)
    assert TaskRun.objects.get(pk=first.pk).result == {"repr": "{1, 2}"}


def test_events_of_unknown_tasks_change_nothing(run):
    tracking.received("not-ours", "w")
    tracking.succeeded("not-ours", 1, None)
    assert states(run) == [S.PENDING, S.PENDING]


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ({S.PENDING: 3}, RunStatus.PENDING),
        ({S.PENDING: 2, S.STARTED: 1}, RunStatus.RUNNING),
        ({S.SUCCESS: 3}, RunStatus.SUCCEEDED),
        ({S.SUCCESS: 2, S.FAILURE: 1}, RunStatus.PARTIALLY_FAILED),
        ({S.FAILURE: 1, S.SKIPPED: 2}, RunStatus.FAILED),
        ({S.SUCCESS: 1, S.REVOKED: 2}, RunStatus.REVOKED),
        ({S.NOT_SENT: 3}, RunStatus.DISPATCH_FAILED),
    ],
)
def test_run_status_is_derived_from_its_nodes(counts, status):
    assert tracking.derive_status(counts) == status
