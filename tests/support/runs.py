"""Runs for tests: recorded without being sent, given final states by hand, or waited for."""

from __future__ import annotations

from django.utils import timezone

from task_admin import services
from task_admin.models import NodeState, WorkflowRun
from task_admin.tracking import derive_status
from tests.support.factories import SUMA, invocation, workflow
from tests.support.workers import wait_for


def start_run(capture, name: str = "adds", tree=None) -> WorkflowRun:
    """A run recorded by ``services.run_workflow`` and never sent (on_commit not executed)."""
    tree = tree or ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])])
    wf = workflow(name, tree)
    with capture(execute=False):
        return services.run_workflow(wf)


def finish(run: WorkflowRun, **states: tuple[str, object]) -> WorkflowRun:
    """Give nodes (keyed by path, dots as underscores) a final state and result."""
    now = timezone.now()
    for key, (state, result) in states.items():
        node = run.nodes.get(path=key.replace("_", "."))
        node.state = state
        node.finished_at = now
        node.started_at = now
        if state == NodeState.SUCCESS:
            node.result = result
        else:
            node.exception = f"ValueError: {result}"
            node.traceback = f"Traceback (most recent call last):\n  ...\nValueError: {result}"
        node.attempt_count = 1
        node.worker = "celery@test"
        node.save()
    counts = {s: run.nodes.filter(state=s).count() for s in NodeState}
    run.finished_nodes = run.nodes.exclude(state=NodeState.PENDING).count()
    run.status = derive_status({k: v for k, v in counts.items() if v})
    run.started_at = now
    run.finished_at = now if run.finished_nodes == run.total_nodes else None
    run.save()
    return run


def finished(run: WorkflowRun, timeout: float = 60) -> WorkflowRun:
    def done():
        run.refresh_from_db()
        return run.is_finished

    wait_for(done, timeout=timeout, what=f"run #{run.pk} to finish")
    return run
