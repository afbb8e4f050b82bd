"""Which leaves of a canvas can no longer run, given the leaves that have failed.

Celery's semantics: a chain stops at its first failed step; a chord's body is not called when
a header task fails; a group's members are independent, but the group as a whole has failed
(so what follows it in a chain, or a chord body it heads, will not run).
"""

from __future__ import annotations

from collections.abc import Collection

from . import paths
from .spec import Chain, Chord, Group, Node, Task, children, leaves


def _leaf_paths(path: str, node: Node) -> list[str]:
    if isinstance(node, Task):
        return [path]
    return [p for child_path, child in children(path, node) for p in _leaf_paths(child_path, child)]


def blocked_leaves(root: Node, failed: Collection[str]) -> set[str]:
    """Paths of the leaves that will never run because a leaf in ``failed`` did not succeed."""
    blocked: set[str] = set()

    def visit(path: str, node: Node) -> bool:
        """Whether ``node`` as a whole has failed (or will fail)."""
        if isinstance(node, Task):
            return path in failed or path in blocked
        if isinstance(node, Group):
            results = [visit(p, child) for p, child in children(path, node)]
            return any(results)
        if isinstance(node, Chain):
            broken = False
            for child_path, child in children(path, node):
                if broken:
                    blocked.update(_leaf_paths(child_path, child))
                    continue
                broken = visit(child_path, child)
            return broken
        assert isinstance(node, Chord)
        header_failed = any(
            [visit(p, child) for p, child in children(path, node) if p != paths.body(path)]
        )
        if header_failed:
            blocked.update(_leaf_paths(paths.body(path), node.body))
            return True
        return visit(paths.body(path), node.body)

    visit(paths.ROOT, root)
    return blocked - set(failed)


def leaf_order(root: Node) -> dict[str, int]:
    return {path: index for index, (path, _task) in enumerate(leaves(root))}
