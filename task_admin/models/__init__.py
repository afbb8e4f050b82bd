from task_admin.models.alerts import Alert, AlertKind, AlertRule, AlertStatus
from task_admin.models.invocations import TaskInvocation
from task_admin.models.runs import NodeState, RunStatus, TaskAttempt, TaskRun, Trigger, WorkflowRun
from task_admin.models.schedules import Overlap, WorkflowSchedule
from task_admin.models.workflows import NodeKind, NodeRole, Workflow, WorkflowNode

__all__ = [
    "Alert",
    "AlertKind",
    "AlertRule",
    "AlertStatus",
    "NodeKind",
    "NodeRole",
    "NodeState",
    "Overlap",
    "RunStatus",
    "TaskAttempt",
    "TaskInvocation",
    "TaskRun",
    "Trigger",
    "Workflow",
    "WorkflowNode",
    "WorkflowRun",
    "WorkflowSchedule",
]
