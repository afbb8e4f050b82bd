"""Build stored invocations and workflows from a compact description.

    workflow("adds", ("chord", [inv_a, inv_b], inv_c))
    workflow("steps", ("chain", [inv_a, ("group", [inv_b, inv_c]), ("workflow", other)]))
"""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.db.models import F

from task_admin import scheduling
from task_admin.models import (
    NodeKind,
    NodeRole,
    Overlap,
    ScheduleFiring,
    TaskInvocation,
    Workflow,
    WorkflowNode,
    WorkflowSchedule,
)

SUMA = "tests.testapp.tasks.suma"
_names = itertools.count()


def invocation(task: str = SUMA, args=(), kwargs=None, *, name: str | None = None, clean=True,
               **fields) -> TaskInvocation:
    inv = TaskInvocation(
        name=name or f"{task.rsplit('.', 1)[-1]}-{next(_names)}",
        task=task,
        args=list(args),
        kwargs=kwargs or {},
        **fields,
    )
    if clean:
        inv.full_clean()
    inv.save()
    return inv


def workflow(name: str, tree, **fields) -> Workflow:
    wf = Workflow.objects.create(name=name, **fields)
    add_node(wf, tree)
    return wf


def add_node(wf, tree, parent=None, role=NodeRole.STEP, position=0) -> WorkflowNode:
    if isinstance(tree, TaskInvocation):
        return WorkflowNode.objects.create(
            workflow=wf, parent=parent, role=role, position=position, kind=NodeKind.TASK,
            invocation=tree,
        )
    kind = tree[0]
    if kind == "workflow":
        return WorkflowNode.objects.create(
            workflow=wf, parent=parent, role=role, position=position, kind=NodeKind.WORKFLOW,
            reuse=tree[1],
        )
    node = WorkflowNode.objects.create(
        workflow=wf, parent=parent, role=role, position=position, kind=kind
    )
    if kind == "chord":
        for i, child in enumerate(tree[1]):
            add_node(wf, child, node, NodeRole.HEADER, i)
        if len(tree) > 2 and tree[2] is not None:
            add_node(wf, tree[2], node, NodeRole.BODY, 0)
    else:
        for i, child in enumerate(tree[1]):
            add_node(wf, child, node, NodeRole.STEP, i)
    return node


def schedule(wf: Workflow, *, name: str | None = None, every: int = 60, period: str = "seconds",
             overlap: str = Overlap.SKIP, enabled: bool = True, **fields) -> WorkflowSchedule:
    """A schedule of ``wf`` every ``every`` ``period``, saved as the admin saves one."""
    from django_celery_beat.models import IntervalSchedule

    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    return scheduling.save_schedule(
        WorkflowSchedule(workflow=wf, overlap=overlap, **fields),
        name=name or f"{wf.name} every {every} {period}",
        interval=interval,
        enabled=enabled,
    )


def without_refs(spec):
    """A spec without its refs: they name database ids, which differ between databases."""
    if isinstance(spec, dict):
        return {k: without_refs(v) for k, v in spec.items() if k != "ref"}
    if isinstance(spec, list):
        return [without_refs(v) for v in spec]
    return spec


def next_due(sched: WorkflowSchedule) -> None:
    """Make the schedule's next ``fire()`` a new due time, as if a day had passed since the
    earlier ones (a firing claims its due time: the same due time fires once)."""
    ScheduleFiring.objects.filter(schedule=sched).update(due_at=F("due_at") - timedelta(days=1))
