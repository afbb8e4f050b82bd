"""Pure description, validation and (in ``build``) construction of Celery workflows.

Importing this package never imports Django or Celery; use
``from task_admin.canvas.build import to_signature`` for the Celery side.
"""

from __future__ import annotations

from .spec import (
    SPEC_VERSION,
    Chain,
    Chord,
    Group,
    Node,
    Options,
    SpecError,
    Task,
    count_leaves,
    dumps,
    from_dict,
    leaves,
    loads,
    map_leaves,
    node_at,
    replace_succeeded,
    to_dict,
    walk,
)
from .validate import Problem, signature_text, validate

__all__ = [
    "SPEC_VERSION",
    "Chain",
    "Chord",
    "Group",
    "Node",
    "Options",
    "Problem",
    "SpecError",
    "Task",
    "count_leaves",
    "dumps",
    "from_dict",
    "leaves",
    "loads",
    "map_leaves",
    "node_at",
    "replace_succeeded",
    "signature_text",
    "to_dict",
    "validate",
    "walk",
]
