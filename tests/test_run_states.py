"""The run and node state vocabulary, said once in models/runs.py and used through querysets."""

import pytest

from task_admin.models import NodeState, RunStatus, TaskRun, WorkflowRun
from task_admin.models.runs import (
    FAILED_NODE,
    FAILED_RUN,
    FINISHED_NODE,
    FINISHED_RUN,
    UNFINISHED_NODE,
)


def test_every_node_state_is_finished_or_unfinished_never_both():
    assert set(NodeState) == FINISHED_NODE | UNFINISHED_NODE
    assert not FINISHED_NODE & UNFINISHED_NODE
    assert FAILED_NODE < FINISHED_NODE
    assert FAILED_RUN < FINISHED_RUN
    assert RunStatus.SUCCEEDED not in FAILED_RUN


@pytest.mark.django_db
def test_the_querysets_select_by_those_sets():
    runs = {
        status: WorkflowRun.objects.create(workflow_name="w", spec={}, status=status,
                                           trigger="manual")
        for status in RunStatus
    }
    assert set(WorkflowRun.objects.unfinished()) == {
        runs[s] for s in RunStatus if s not in FINISHED_RUN
    }
    assert set(WorkflowRun.objects.finished()) == {runs[s] for s in FINISHED_RUN}
    assert set(WorkflowRun.objects.failed()) == {runs[s] for s in FAILED_RUN}

    run = runs[RunStatus.RUNNING]
    nodes = {
        state: TaskRun.objects.create(run=run, path=f"root.{i}", position=i, task_id=f"ta-{i}",
                                      task_name="t", state=state)
        for i, state in enumerate(NodeState)
    }
    assert set(run.nodes.unfinished()) == {nodes[s] for s in UNFINISHED_NODE}
    assert set(run.nodes.finished()) == {nodes[s] for s in FINISHED_NODE}
    assert set(TaskRun.objects.failed()) == {nodes[s] for s in FAILED_NODE}
