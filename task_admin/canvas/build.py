"""Turn a spec into the exact Celery canvas, and into readable Python for the UI.

Kept apart from ``spec``/``validate`` because it is the only module importing Celery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import celery
from celery.canvas import Signature
from celery.utils import uuid

from . import paths
from .code import short_expression
from .spec import Chain, Chord, Group, Node, Task, children, leaves

# Lines longer than this are split over several lines by ``to_python``.
PYTHON_WIDTH = 79

# Every task id task_admin assigns starts with this. The worker's signal handlers run for every
# task of the host project; the prefix lets them tell ours apart without asking the database.
# The id (unlike a custom header) survives everything Celery does with a message: retries,
# chord bodies sent by the result backend, chains continued by the previous task, the
# result backend and the reconciler.
TASK_ID_PREFIX = "ta-"


def new_task_id() -> str:
    return TASK_ID_PREFIX + uuid()


def is_tracked(task_id: str | None) -> bool:
    """Whether a task id was assigned by task_admin (so its events are recorded)."""
    return bool(task_id) and task_id.startswith(TASK_ID_PREFIX)


def to_signature(
    root: Node,
    *,
    app: celery.Celery,
    new_id: Callable[[], str] = new_task_id,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Signature, dict[str, str]]:
    """Build the Celery canvas for ``root``.

    Every task signature gets a pre-assigned ``task_id`` so results can be tracked
    before anything runs; returns the canvas and ``{leaf_path: task_id}``.
    ``overrides`` maps leaf paths to kwargs merged into that leaf for this build only.
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - {path for path, _ in leaves(root)}) if overrides else ()
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
                args=tuple(_own(value) for value in node.args),
                kwargs={key: _own(value) for key, value in
                        {**node.kwargs, **overrides.get(path, {})}.items()},
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


def _own(value: Any) -> Any:
    """A copy of a JSON value's lists and dicts: the spec may be kept and started again
    (``spec_cache``), and a task run in process (eager mode) or a publish hook may change the
    arguments it is given."""
    if isinstance(value, list):
        return [_own(item) for item in value]
    if isinstance(value, dict):
        return {key: _own(item) for key, item in value.items()}
    return value


# -- Python rendering --------------------------------------------------------------------


def to_python(root: Node) -> str:
    """Readable, deterministic Python for the canvas, e.g. ``chain(add.s(2, 2), add.s(4))``.

    Tasks by their short names; ``canvas.code.render`` writes the pasteable version with its
    imports (same expression writer).
    """
    return short_expression(root, width=PYTHON_WIDTH)
