"""Turn a spec into the exact Celery canvas, and into readable Python for the UI.

Kept apart from ``spec``/``validate`` because it is the only module importing Celery.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from typing import Any

import celery
from celery.canvas import Signature
from celery.utils import uuid

from . import paths
from .spec import Chain, Chord, Group, Node, Task, children, leaves

# Lines longer than this are split over several lines by ``to_python``.
PYTHON_WIDTH = 79


def to_signature(
    root: Node,
    *,
    app: celery.Celery,
    new_id: Callable[[], str] = uuid,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Signature, dict[str, str]]:
    """Build the Celery canvas for ``root``.

    Every task signature gets a pre-assigned ``task_id`` so results can be tracked
    before anything runs; returns the canvas and ``{leaf_path: task_id}``.
    ``overrides`` maps leaf paths to kwargs merged into that leaf for this build only.
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - {path for path, _ in leaves(root)})
    if unknown:
        raise ValueError(f"overrides for paths that are not tasks: {', '.join(unknown)}")
    ids: dict[str, str] = {}

    def build(path: str, node: Node) -> Signature:
        if isinstance(node, Task):
            task_id = new_id()
            ids[path] = task_id
            options = {**node.options.to_apply_async(), "task_id": task_id}
            return app.signature(
                node.task,
                args=tuple(node.args),
                kwargs={**node.kwargs, **overrides.get(path, {})},
                options=options,
                immutable=node.immutable,
            )
        built = [build(child_path, child) for child_path, child in children(path, node)]
        if isinstance(node, Group):
            return celery.group(built, app=app)
        if isinstance(node, Chain):
            return celery.chain(built, app=app)
        if isinstance(node, Chord):
            # Explicit chord: ``group | task`` only becomes a chord inside a chain, and
            # only once the chain is prepared.
            *header, body = built
            return celery.chord(header, body, app=app)
        raise TypeError(f"not a canvas node: {node!r}")

    return build(paths.ROOT, root), ids


# -- Python rendering --------------------------------------------------------------------


def _call_args(values: list[str], kwargs: Mapping[str, Any]) -> list[str]:
    plain = {k: v for k, v in kwargs.items() if k.isidentifier() and not keyword.iskeyword(k)}
    other = {k: v for k, v in kwargs.items() if k not in plain}
    out = values + [f"{k}={v!r}" for k, v in plain.items()]
    if other:
        out.append(f"**{other!r}")
    return out


def _task_python(node: Task) -> str:
    name = node.task.rsplit(".", 1)[-1]
    if name.isidentifier() and not keyword.iskeyword(name):
        method = "si" if node.immutable else "s"
        call = ", ".join(_call_args([repr(a) for a in node.args], node.kwargs))
        text = f"{name}.{method}({call})"
    else:
        # Not usable as a Python name: fall back to the generic constructor.
        parts = [repr(node.task), f"args={tuple(node.args)!r}", f"kwargs={node.kwargs!r}"]
        if node.immutable:
            parts.append("immutable=True")
        text = f"signature({', '.join(parts)})"
    options = node.options.as_dict()
    if options:
        text += f".set({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    return text


def _flat(node: Node) -> str:
    if isinstance(node, Task):
        return _task_python(node)
    if isinstance(node, Group):
        return f"group([{', '.join(_flat(c) for c in node.tasks)}])"
    if isinstance(node, Chain):
        return f"chain({', '.join(_flat(c) for c in node.tasks)})"
    return f"chord([{', '.join(_flat(c) for c in node.header)}], {_flat(node.body)})"


def _render(node: Node, level: int) -> str:
    """Render ``node`` starting at indentation ``level``; split it when too wide."""
    flat = _flat(node)
    if isinstance(node, Task) or len(flat) + 4 * level <= PYTHON_WIDTH:
        return flat
    pad, inner = "    " * level, "    " * (level + 1)
    if isinstance(node, Group):
        items = "".join(f"{inner}{_render(c, level + 1)},\n" for c in node.tasks)
        return f"group([\n{items}{pad}])"
    if isinstance(node, Chain):
        items = "".join(f"{inner}{_render(c, level + 1)},\n" for c in node.tasks)
        return f"chain(\n{items}{pad})"
    deeper = "    " * (level + 2)
    header = "".join(f"{deeper}{_render(c, level + 2)},\n" for c in node.header)
    body = _render(node.body, level + 1)
    return f"chord(\n{inner}[\n{header}{inner}],\n{inner}{body},\n{pad})"


def to_python(root: Node) -> str:
    """Readable, deterministic Python for the canvas, e.g. ``chain(add.s(2, 2), add.s(4))``."""
    return _render(root, 0)
