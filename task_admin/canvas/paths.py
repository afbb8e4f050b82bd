"""The one grammar of node paths: ``root``, ``{path}.{i}``, ``{path}.header.{i}``, ``{path}.body``.

Every module that names a node by path (compile, validation, the composer, export, the run page)
builds and reads paths here, so the grammar cannot drift between them. The composer's script
(``static/task_admin/composer.js``) mirrors these four functions.
"""

from __future__ import annotations

ROOT = "root"
HEADER = "header"
BODY = "body"


def step(path: str, index: int) -> str:
    """The ``index``-th node of a group or chain."""
    return f"{path}.{index}"


def header(path: str, index: int) -> str:
    """The ``index``-th node of a chord's header."""
    return f"{path}.{HEADER}.{index}"


def body(path: str) -> str:
    """A chord's body."""
    return f"{path}.{BODY}"


def is_body(path: str) -> bool:
    return path.endswith(f".{BODY}")


def depth(path: str) -> int:
    """Nesting level: ``root`` is 0, ``root.header.1`` and ``root.body`` are 1."""
    return path.count(".") - path.count(f".{HEADER}.")


def parent(path: str) -> str | None:
    """The path of the enclosing node, or ``None`` for the root."""
    if path == ROOT or "." not in path:
        return None
    head, _sep, last = path.rpartition(".")
    if last != BODY and head.endswith(f".{HEADER}"):
        head = head[: -len(HEADER) - 1]
    return head


def nearest(path: str, known) -> str | None:
    """``path`` or its closest ancestor in ``known`` (a problem inside a reused workflow
    belongs to the node that reuses it)."""
    cursor: str | None = path
    while cursor is not None:
        if cursor in known:
            return cursor
        cursor = parent(cursor)
    return None
