"""The one bridge between stored workflows and the pure canvas spec."""

from __future__ import annotations

from dataclasses import replace

from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from task_admin import canvas
from task_admin.canvas import paths
from task_admin.conf import get_config
from task_admin.models import NodeKind, NodeRole, Workflow, WorkflowNode
from task_admin.tree import Tree


class InvalidWorkflow(ValueError):
    def __init__(self, problems: list[canvas.Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


NODE_REF = "node:"


def node_ref(node: WorkflowNode) -> str:
    """The ``ref`` a spec keeps for a stored node: how a leaf finds its row again."""
    return f"{NODE_REF}{node.pk}"


def node_pk(ref: str | None) -> int | None:
    """The stored node's primary key in a ``ref`` made by ``node_ref`` (None for other refs)."""
    if ref and ref.startswith(NODE_REF):
        return int(ref[len(NODE_REF):])
    return None


def _reachable_workflows_sql() -> str:
    # One recursive query finds the workflow and every workflow it reuses, at any depth.
    # UNION (not UNION ALL) makes a reuse cycle terminate: compile() reports it.
    table = WorkflowNode._meta.db_table
    return (
        "WITH RECURSIVE reachable(id) AS ("
        " SELECT CAST(%s AS BIGINT)"
        f" UNION SELECT n.reuse_id FROM {table} n JOIN reachable r ON n.workflow_id = r.id"
        " WHERE n.reuse_id IS NOT NULL"
        ") SELECT id FROM reachable"
    )


def _users_sql(seed: str) -> str:
    # The other way round: the seed workflows and every workflow reusing one of them, at any
    # depth (UNION stops at a cycle).
    table = WorkflowNode._meta.db_table
    return (
        f"WITH RECURSIVE users(id) AS ({seed}"
        f" UNION SELECT n.workflow_id FROM {table} n JOIN users u ON n.reuse_id = u.id"
        ") SELECT id FROM users"
    )


def workflows_using(invocation_id: int):
    """The workflows that run the invocation, directly or through a reused workflow."""
    from task_admin.models import Workflow

    table = WorkflowNode._meta.db_table
    seed = f"SELECT n.workflow_id FROM {table} n WHERE n.invocation_id = CAST(%s AS BIGINT)"
    return Workflow.objects.filter(pk__in=RawSQL(_users_sql(seed), [invocation_id]))


def workflows_reusing(workflow_id: int):
    """The workflow and every workflow that reuses it, at any depth."""
    from task_admin.models import Workflow

    seed = "SELECT CAST(%s AS BIGINT)"
    return Workflow.objects.filter(pk__in=RawSQL(_users_sql(seed), [workflow_id]))


def load_nodes(workflow_id: int) -> list[WorkflowNode]:
    """Every node of the workflow and of the workflows it reuses, in one query."""
    return list(
        WorkflowNode.objects.filter(
            workflow_id__in=RawSQL(_reachable_workflows_sql(), [workflow_id])
        )
        .select_related("invocation", "reuse")
        .order_by("workflow_id", "parent_id", "role", "position", "pk")
    )


class _Builder:
    def __init__(self, nodes: list[WorkflowNode]):
        self.tree = Tree(nodes)
        self.problems: list[canvas.Problem] = []
        self.max_depth = get_config()["MAX_DEPTH"]

    def problem(self, path: str, node: WorkflowNode | None, message: str) -> None:
        self.problems.append(canvas.Problem(path, message, node_ref(node) if node else None))

    def build_workflow(
        self, workflow_id: int, name: str, path: str, stack: tuple[str, ...]
    ) -> canvas.Node | None:
        if name in stack:
            cycle = " → ".join((*stack, name))
            self.problem(path, None, _("reuse cycle: %(cycle)s") % {"cycle": cycle})
            return None
        root = self.tree.roots.get(workflow_id)
        if root is None:
            self.problem(path, None, _("workflow “%(name)s” has no nodes") % {"name": name})
            return None
        return self.build(root, path, (*stack, name))

    def build(self, node: WorkflowNode, path: str, stack: tuple[str, ...]) -> canvas.Node | None:
        ref, label = node_ref(node), node.label
        if paths.depth(path) > self.max_depth:
            # Stop before Python's recursion limit; canvas.validate words the depth problem.
            message = _("nested deeper than %(max)s levels") % {"max": self.max_depth}
            self.problem(path, node, message)
            return None
        kids = self.tree.children(node)
        if node.kind == NodeKind.TASK:
            if kids:
                self.problem(path, node, _("a task node cannot have children"))
            return node.invocation.to_spec(ref=ref, label=label)
        if node.kind == NodeKind.WORKFLOW:
            if kids:
                self.problem(path, node, _("a reused-workflow node cannot have children"))
            built = self.build_workflow(node.reuse_id, node.reuse.name, path, stack)
            if built is not None and not built.label:
                # The graph and the canvas text then say which workflow is reused here.
                built = replace(built, label=label or node.reuse.name)
            return built
        if node.kind in (NodeKind.GROUP, NodeKind.CHAIN):
            for kid in kids:
                if kid.role != NodeRole.STEP:
                    self.problem(path, kid, _("only a chord has header and body nodes"))
            steps = self.tree.steps(node)
            built = [self.build(kid, paths.step(path, i), stack) for i, kid in enumerate(steps)]
            cls = canvas.Group if node.kind == NodeKind.GROUP else canvas.Chain
            return cls(tasks=tuple(b for b in built if b is not None), ref=ref, label=label)
        # A chord: header nodes, then exactly one body (the database allows at most one).
        for kid in self.tree.steps(node):
            self.problem(path, kid, _("a chord's nodes must be in its header or its body"))
        header, bodies = self.tree.header(node), self.tree.bodies(node)
        built = [self.build(kid, paths.header(path, i), stack) for i, kid in enumerate(header)]
        if not bodies:
            self.problem(path, node, _("chord without a body"))
            return None
        body = self.build(bodies[0], paths.body(path), stack)
        if body is None:
            return None
        return canvas.Chord(
            header=tuple(b for b in built if b is not None), body=body, ref=ref, label=label
        )


def workflow_to_spec(workflow: Workflow, nodes: list[WorkflowNode] | None = None) -> canvas.Node:
    """The spec of a stored workflow; raises ``InvalidWorkflow`` on structural problems.

    Two queries at most whatever the size of the tree (the nodes with their invocations and
    reused workflows, in one query), so ``nodes`` may be passed when they are already loaded.
    """
    tree = _Builder(load_nodes(workflow.pk) if nodes is None else nodes)
    spec = tree.build_workflow(workflow.pk, workflow.name, paths.ROOT, ())
    if tree.problems or spec is None:
        raise InvalidWorkflow(tree.problems)
    return spec
