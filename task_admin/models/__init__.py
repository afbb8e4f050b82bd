from task_admin.models.invocations import TaskInvocation
from task_admin.models.runs import NodeState, RunStatus, TaskAttempt, TaskRun, Trigger, WorkflowRun
from task_admin.models.schedules import Overlap, ScheduleFiring, WorkflowSchedule
from task_admin.models.workflows import NodeKind, NodeRole, Workflow, WorkflowNode

__all__ = [
    "NodeKind",
    "NodeRole",
    "NodeState",
    "Overlap",
    "RunStatus",
    "ScheduleFiring",
    "TaskAttempt",
    "TaskInvocation",
    "TaskRun",
    "Trigger",
    "Workflow",
    "WorkflowNode",
    "WorkflowRun",
    "WorkflowSchedule",
]
