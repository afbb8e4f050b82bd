from task_admin.models.alerts import Alert, AlertKind, AlertRule, AlertStatus
from task_admin.models.invocations import TaskInvocation
from task_admin.models.operations import CeleryTask, Queue, Worker
from task_admin.models.runs import NodeState, RunStatus, TaskAttempt, TaskRun, Trigger, WorkflowRun
from task_admin.models.schedules import Overlap, ScheduleFiring, WorkflowSchedule
from task_admin.models.workflows import NodeKind, NodeRole, Workflow, WorkflowNode

__all__ = [
    "Alert",
    "AlertKind",
    "AlertRule",
    "AlertStatus",
    "CeleryTask",
    "NodeKind",
    "NodeRole",
    "NodeState",
    "Overlap",
    "Queue",
    "RunStatus",
    "ScheduleFiring",
    "TaskAttempt",
    "TaskInvocation",
    "TaskRun",
    "Trigger",
    "Worker",
    "Workflow",
    "WorkflowNode",
    "WorkflowRun",
    "WorkflowSchedule",
]
