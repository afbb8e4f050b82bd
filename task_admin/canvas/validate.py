"""Validation of a workflow spec against the tasks that may run.

Returns a list of problems instead of raising, so a UI can show all of them next to
the nodes they concern.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import paths
from .spec import RETRY_POLICY_KEYS, Chain, Chord, Group, Node, Task, json_value_problem, walk

PREVIOUS_RESULT = "the previous result"
# Celery turns countdown and expires into ``now + timedelta(seconds=...)``: past about 2.5e11 s
# that overflows (year 9999), so every run of such a task would fail at dispatch. No broker
# holds a message for 31 years either; this is the bound whatever the broker.
MAX_SECONDS = 1_000_000_000
HEADER_RESULTS = "the list of header results"


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    ref: str | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class _ParentResult:
    """Stands in for the result Celery prepends to a mutable task's arguments."""

    def __repr__(self) -> str:
        return "<parent result>"


_PARENT_RESULT = _ParentResult()


def signature_text(name: str, sig: inspect.Signature | None) -> str:
    """``name(a, b=2)`` without annotations, for messages and the UI."""
    if sig is None:
        return f"{name}(...)"
    plain = sig.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )
    return f"{name}{plain}"


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def _parses_iso(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _delay_problems(o, max_delay: float | None, now: datetime | None) -> list[str]:
    """A countdown or eta that waits longer than the broker can hold a message."""
    out: list[str] = []
    longest = MAX_SECONDS if max_delay is None else min(max_delay, MAX_SECONDS)
    why = (
        "the longest Celery can schedule" if longest == MAX_SECONDS
        else "the longest this broker holds a message before delivering it again "
        "(see TASK_ADMIN['MAX_DELAY'])"
    )
    if _is_number(o.countdown) and o.countdown > longest:
        out.append(f"countdown must be at most {longest:g} seconds, {why}")
    if now is not None and isinstance(o.eta, str) and _parses_iso(o.eta):
        eta = datetime.fromisoformat(o.eta)
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=now.tzinfo)
        if (eta - now).total_seconds() > longest:
            out.append(f"eta must be at most {longest:g} seconds from now, {why}")
    if _is_number(o.expires) and o.expires > MAX_SECONDS:
        out.append(f"expires must be at most {MAX_SECONDS:g} seconds, the longest Celery "
                   "can schedule; or give a date")
    return out


def _option_problems(
    task: Task, max_delay: float | None = None, now: datetime | None = None
) -> list[str]:
    o = task.options
    out: list[str] = []
    if o.countdown is not None and not (_is_number(o.countdown) and o.countdown >= 0):
        out.append(f"countdown must be a number of seconds >= 0, not {o.countdown!r}")
    if o.eta is not None and not (isinstance(o.eta, str) and _parses_iso(o.eta)):
        out.append(f"eta must be an ISO 8601 date and time, not {o.eta!r}")
    out.extend(_delay_problems(o, max_delay, now))
    if o.countdown is not None and o.eta is not None:
        # Celery silently lets countdown win; make the ambiguity explicit instead.
        out.append("set either countdown or eta, not both")
    if o.expires is not None:
        if isinstance(o.expires, str):
            if not _parses_iso(o.expires):
                out.append(f"expires must be an ISO 8601 date and time, not {o.expires!r}")
        elif not (_is_number(o.expires) and o.expires >= 0):
            out.append(f"expires must be seconds >= 0 or an ISO 8601 date, not {o.expires!r}")
    if o.queue is not None and not (isinstance(o.queue, str) and o.queue):
        out.append(f"queue must be a non-empty string, not {o.queue!r}")
    if o.priority is not None and not (
        isinstance(o.priority, int) and not isinstance(o.priority, bool) and 0 <= o.priority <= 255
    ):
        out.append(f"priority must be an integer from 0 to 255, not {o.priority!r}")
    if o.retry is not None and not isinstance(o.retry, bool):
        out.append(f"retry must be true or false, not {o.retry!r}")
    if o.retry_policy is not None:
        if not isinstance(o.retry_policy, dict):
            out.append("retry_policy must be a mapping")
        else:
            for key, value in o.retry_policy.items():
                if key not in RETRY_POLICY_KEYS:
                    out.append(f"unknown retry_policy key {key!r}")
                elif not (_is_number(value) and value >= 0):
                    out.append(f"retry_policy {key} must be a number >= 0, not {value!r}")
    limits_ok = True
    for name in ("soft_time_limit", "time_limit"):
        value = getattr(o, name)
        if value is not None and not (_is_number(value) and value > 0):
            out.append(f"{name} must be a number of seconds > 0, not {value!r}")
            limits_ok = False
    if (
        limits_ok
        and o.soft_time_limit is not None
        and o.time_limit is not None
        and o.soft_time_limit >= o.time_limit
    ):
        out.append("soft_time_limit must be lower than time_limit")
    return out


def _task_problems(
    node: Task,
    parent_result: str | None,
    tasks: Mapping[str, inspect.Signature | None],
    max_value_bytes: int,
    max_delay: float | None = None,
    now: datetime | None = None,
) -> list[str]:
    out: list[str] = []
    values_ok = True
    for value, where in ((node.args, "args"), (node.kwargs, "kwargs")):
        problem = json_value_problem(value, where)
        if problem:
            out.append(problem)
            values_ok = False
    if values_ok:
        size = len(json.dumps([list(node.args), node.kwargs], allow_nan=False).encode("utf-8"))
        if size > max_value_bytes:
            out.append(
                f"arguments take {size} bytes as JSON, more than the limit of {max_value_bytes}"
            )
    out.extend(_option_problems(node, max_delay, now))

    if not isinstance(node.task, str) or node.task not in tasks:
        out.append(f"unknown or disallowed task {node.task!r}")
        return out
    sig = tasks[node.task]
    if sig is None or not values_ok:
        return out
    counts_parent = parent_result is not None and not node.immutable
    args = (_PARENT_RESULT, *node.args) if counts_parent else node.args
    try:
        sig.bind(*args, **node.kwargs)
    except TypeError as exc:
        note = f" (counting {parent_result} passed as the first argument)" if counts_parent else ""
        out.append(f"{signature_text(node.task, sig)} cannot take these arguments: {exc}{note}")
    return out


def validate(
    root: Node,
    *,
    tasks: Mapping[str, inspect.Signature | None],
    max_depth: int = 20,
    max_nodes: int = 1000,
    max_value_bytes: int = 64_000,
    root_receives_parent: bool = False,
    max_delay: float | None = None,
    now: datetime | None = None,
) -> list[Problem]:
    """All problems found in ``root``; an empty list means it may be run.

    ``tasks`` maps every task name that may be invoked to its signature (or ``None``
    when it cannot be introspected, which skips the arity check). ``max_delay`` bounds a
    countdown, and an eta counted from ``now`` (aware), in seconds.
    """
    problems: list[Problem] = []
    count = 0
    too_deep = False
    for path, node, depth in walk(root):
        count += 1
        if depth > max_depth and not too_deep:
            too_deep = True
            problems.append(
                Problem(
                    path,
                    f"nested deeper than the limit of {max_depth} levels",
                    getattr(node, "ref", None),
                )
            )
    if count > max_nodes:
        # Stop here: checking thousands of nodes one by one helps nobody.
        problems.append(
            Problem(
                "root",
                f"{count} nodes, more than the limit of {max_nodes}",
                getattr(root, "ref", None),
            )
        )
        return problems

    # Each entry carries what Celery will prepend to a mutable task's arguments (Celery
    # semantics: chain steps after the first get the previous result, a chord body gets
    # the list of header results, and containers pass this on to their children).
    stack: list[tuple[str, Node, str | None]] = [
        (paths.ROOT, root, PREVIOUS_RESULT if root_receives_parent else None)
    ]
    while stack:
        path, node, parent_result = stack.pop()
        todo: list[tuple[str, Node, str | None]] = []
        if isinstance(node, Task):
            problems.extend(
                Problem(path, message, node.ref)
                for message in _task_problems(
                    node, parent_result, tasks, max_value_bytes, max_delay, now
                )
            )
        elif isinstance(node, Group):
            if not node.tasks:
                problems.append(Problem(path, "empty group", node.ref))
            todo = [
                (paths.step(path, i), child, parent_result) for i, child in enumerate(node.tasks)
            ]
        elif isinstance(node, Chain):
            if not node.tasks:
                problems.append(Problem(path, "empty chain", node.ref))
            todo = [
                (paths.step(path, i), child, parent_result if i == 0 else PREVIOUS_RESULT)
                for i, child in enumerate(node.tasks)
            ]
        elif isinstance(node, Chord):
            if not node.header:
                problems.append(Problem(path, "chord without header tasks", node.ref))
            todo = [
                (paths.header(path, i), child, parent_result) for i, child in enumerate(node.header)
            ]
            todo.append((paths.body(path), node.body, HEADER_RESULTS))
        else:
            problems.append(Problem(path, f"not a canvas node: {type(node).__name__}"))
        stack.extend(reversed(todo))
    return problems
