"""Which leaves of a canvas can no longer run, given the leaves that have failed.

Celery's semantics: a chain stops at its first failed step; a chord's body is not called when
a header task fails; a group's members are independent, but the group as a whole has failed
(so what follows it in a chain, or a chord body it heads, will not run).
"""

from __future__ import annotations

from collections.abc import Collection

from . import paths
from .spec import Chain, Chord, Group, Node, Task, children


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


# What a finished canvas produced, judged from its final result (see ``outcome``).
SUCCEEDED, PARTIAL, FAILED, REVOKED = "succeeded", "partial", "failed", "revoked"


def outcome(root: Node, states: dict[str, str]) -> str:
    """Whether a finished canvas produced its final result, from each leaf's Celery state.

    The rule: a run failed when its final result could not be produced. A chain's result is
    its last step's, a chord's is its body's, so a failed step or body fails the whole; a
    group's result is the list of its members' results, so a group where some members
    succeeded and some did not is ``partial``. A leaf that was revoked (and nothing failed
    on the way) is ``revoked``.
    """

    def visit(path: str, node: Node) -> str:
        if isinstance(node, Task):
            state = states.get(path, "")
            if state == "SUCCESS":
                return SUCCEEDED
            return REVOKED if state == "REVOKED" else FAILED
        kids = children(path, node)
        if not kids:  # an empty container (refused before sending) produced nothing to fail
            return SUCCEEDED
        if isinstance(node, Chain | Chord):  # a chord's last child is its body
            last_path, last = kids[-1]
            return visit(last_path, last)
        results = {visit(p, child) for p, child in kids}
        if results == {SUCCEEDED}:
            return SUCCEEDED
        if SUCCEEDED in results or PARTIAL in results:
            return PARTIAL
        return FAILED if FAILED in results else REVOKED

    return visit("root", root)
