"""The one tree over stored ``WorkflowNode`` rows: children in order, paths, level order.

Pure (no queries): it arranges rows already loaded. ``compile`` builds specs with it, the
composer turns it into its JSON document, export and copy walk it. Paths come from
``canvas.paths`` so they match what validation and the run page say.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from task_admin.canvas import paths
from task_admin.models import NodeKind, NodeRole, WorkflowNode

CONTAINERS = frozenset({NodeKind.GROUP, NodeKind.CHAIN, NodeKind.CHORD})


def _order(node: WorkflowNode):
    return (node.role, node.position, node.pk or 0)


class Tree:
    """Rows of one or more workflows (a workflow and those it reuses), arranged."""

    def __init__(self, nodes: Iterable[WorkflowNode]):
        self.nodes: dict[int, WorkflowNode] = {}
        self.roots: dict[int, WorkflowNode] = {}
        self.extra_roots: list[WorkflowNode] = []  # a second top-level node: unplaceable
        self._children: dict[int, list[WorkflowNode]] = defaultdict(list)
        for node in sorted(nodes, key=_order):
            self.nodes[node.pk] = node
        for node in self.nodes.values():
            if node.parent_id is None or node.parent_id not in self.nodes:
                if node.workflow_id in self.roots:
                    self.extra_roots.append(node)
                else:
                    self.roots[node.workflow_id] = node
            else:
                self._children[node.parent_id].append(node)

    def children(self, node: WorkflowNode) -> list[WorkflowNode]:
        """Every child row, ordered by role then position (a chord: body, then header)."""
        return self._children.get(node.pk, [])

    def header(self, node: WorkflowNode) -> list[WorkflowNode]:
        return [kid for kid in self.children(node) if kid.role == NodeRole.HEADER]

    def bodies(self, node: WorkflowNode) -> list[WorkflowNode]:
        return [kid for kid in self.children(node) if kid.role == NodeRole.BODY]

    def steps(self, node: WorkflowNode) -> list[WorkflowNode]:
        return [kid for kid in self.children(node) if kid.role == NodeRole.STEP]

    def placed_children(self, node: WorkflowNode, path: str) -> list[tuple[WorkflowNode, str]]:
        """The children with their paths; a child that has no place in ``node`` (a step in a
        chord, a body in a chain, a second body, anything in a task) gets the path ``""``."""
        kids = self.children(node)
        if not path or node.kind not in CONTAINERS:
            return [(kid, "") for kid in kids]
        if node.kind != NodeKind.CHORD:
            steps = [kid for kid in kids if kid.role == NodeRole.STEP]
            placed = [(kid, paths.step(path, i)) for i, kid in enumerate(steps)]
            return placed + [(kid, "") for kid in kids if kid.role != NodeRole.STEP]
        placed = [(kid, paths.header(path, i)) for i, kid in enumerate(self.header(node))]
        placed += [
            (kid, paths.body(path) if i == 0 else "") for i, kid in enumerate(self.bodies(node))
        ]
        return placed + [(kid, "") for kid in self.steps(node)]

    def walk(self, workflow_id: int) -> Iterator[tuple[WorkflowNode, str, int]]:
        """``(node, path, depth)`` in pre-order from the workflow's top-level node; unplaced
        nodes (and nodes in a parent cycle) come last with the path ``""``."""
        seen: set[int] = set()
        root = self.roots.get(workflow_id)
        stack = [(root, paths.ROOT, 0)] if root is not None else []
        while stack:
            node, path, depth = stack.pop()
            if node.pk in seen:
                continue
            seen.add(node.pk)
            yield node, path, depth
            stack.extend(
                (kid, kid_path, depth + 1)
                for kid, kid_path in reversed(self.placed_children(node, path))
            )
        for node in self.nodes.values():
            if node.workflow_id == workflow_id and node.pk not in seen:
                yield node, "", 0

    def paths(self, workflow_id: int) -> dict[int, str]:
        return {node.pk: path for node, path, _depth in self.walk(workflow_id)}

    def levels(self, workflow_id: int) -> list[list[WorkflowNode]]:
        """The workflow's nodes level by level, parents before children (one insert each)."""
        root = self.roots.get(workflow_id)
        out, level, seen = [], [root] if root is not None else [], set()
        while level:
            out.append(level)
            seen.update(node.pk for node in level)
            level = [kid for node in level for kid in self.children(node) if kid.pk not in seen]
        return out
