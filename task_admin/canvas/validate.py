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
from types import UnionType
from typing import Any, Union

from . import paths
from .spec import RETRY_POLICY_KEYS, Chain, Chord, Group, Node, Task, json_value_problem, walk
from .text import _

PREVIOUS_RESULT = _("the previous result")
# Celery turns countdown and expires into ``now + timedelta(seconds=...)``: past about 2.5e11 s
# that overflows (year 9999), so every run of such a task would fail at dispatch. No broker
# holds a message for 31 years either; this is the bound whatever the broker.
MAX_SECONDS = 1_000_000_000
HEADER_RESULTS = _("the list of header results")
# The template of the problem of a task that may not run; the Django side replaces it with a
# reason naming the setting.
UNKNOWN_TASK = "unknown or disallowed task %(task)s"


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    ref: str | None = None
    # "error" keeps a workflow from running; "warning" (``warnings()``) is shown, never blocks.
    level: str = "error"

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
        _("the longest Celery can schedule") if longest == MAX_SECONDS
        else _("the longest this broker holds a message before delivering it again "
               "(see TASK_ADMIN['MAX_DELAY'])")
    )
    if _is_number(o.countdown) and o.countdown > longest:
        out.append(_("countdown must be at most %(limit)s seconds, %(why)s",
                      limit=f"{longest:g}", why=why))
    if now is not None and isinstance(o.eta, str) and _parses_iso(o.eta):
        eta = datetime.fromisoformat(o.eta)
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=now.tzinfo)
        if (eta - now).total_seconds() > longest:
            out.append(_("eta must be at most %(limit)s seconds from now, %(why)s",
                          limit=f"{longest:g}", why=why))
    if _is_number(o.expires) and o.expires > MAX_SECONDS:
        out.append(_("expires must be at most %(limit)s seconds, the longest Celery "
                     "can schedule; or give a date", limit=f"{MAX_SECONDS:g}"))
    return out


def _option_problems(
    task: Task, max_delay: float | None = None, now: datetime | None = None
) -> list[str]:
    o = task.options
    out: list[str] = []
    if o.countdown is not None and not (_is_number(o.countdown) and o.countdown >= 0):
        out.append(_("countdown must be a number of seconds >= 0, not %(value)s",
                      value=repr(o.countdown)))
    if o.eta is not None and not (isinstance(o.eta, str) and _parses_iso(o.eta)):
        out.append(_("eta must be an ISO 8601 date and time, not %(value)s", value=repr(o.eta)))
    out.extend(_delay_problems(o, max_delay, now))
    if o.countdown is not None and o.eta is not None:
        # Celery silently lets countdown win; make the ambiguity explicit instead.
        out.append(_("set either countdown or eta, not both"))
    if o.expires is not None:
        if isinstance(o.expires, str):
            if not _parses_iso(o.expires):
                out.append(_("expires must be an ISO 8601 date and time, not %(value)s",
                              value=repr(o.expires)))
        elif not (_is_number(o.expires) and o.expires >= 0):
            out.append(_("expires must be seconds >= 0 or an ISO 8601 date, not %(value)s",
                          value=repr(o.expires)))
    if o.queue is not None and not (isinstance(o.queue, str) and o.queue):
        out.append(_("queue must be a non-empty string, not %(value)s", value=repr(o.queue)))
    if o.priority is not None and not (
        isinstance(o.priority, int) and not isinstance(o.priority, bool) and 0 <= o.priority <= 255
    ):
        out.append(_("priority must be an integer from 0 to 255, not %(value)s",
                      value=repr(o.priority)))
    if o.retry is not None and not isinstance(o.retry, bool):
        out.append(_("retry must be true or false, not %(value)s", value=repr(o.retry)))
    if o.retry_policy is not None:
        if not isinstance(o.retry_policy, dict):
            out.append(_("retry_policy must be a mapping"))
        else:
            for key, value in o.retry_policy.items():
                if key not in RETRY_POLICY_KEYS:
                    out.append(_("unknown retry_policy key %(key)s", key=repr(key)))
                elif not (_is_number(value) and value >= 0):
                    out.append(_("retry_policy %(key)s must be a number >= 0, not %(value)s",
                                  key=key, value=repr(value)))
    limits_ok = True
    for name in ("soft_time_limit", "time_limit"):
        value = getattr(o, name)
        if value is not None and not (_is_number(value) and value > 0):
            out.append(_("%(option)s must be a number of seconds > 0, not %(value)s",
                          option=name, value=repr(value)))
            limits_ok = False
    if (
        limits_ok
        and o.soft_time_limit is not None
        and o.time_limit is not None
        and o.soft_time_limit >= o.time_limit
    ):
        out.append(_("soft_time_limit must be lower than time_limit"))
    return out


def _keyword_names(sig: inspect.Signature) -> list[str]:
    return [
        name for name, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _unknown_keywords(sig: inspect.Signature, kwargs: Mapping[str, Any]) -> list[str]:
    """Keyword arguments no parameter takes (none when the task has ``**kwargs``)."""
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return []
    known = set(_keyword_names(sig))
    return sorted(str(name) for name in kwargs if name not in known)


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
            out.append(_(
                "arguments take %(size)d bytes as JSON, more than the limit of %(limit)d",
                size=size, limit=max_value_bytes,
            ))
    out.extend(_option_problems(node, max_delay, now))

    if not isinstance(node.task, str) or node.task not in tasks:
        out.append(_("unknown or disallowed task %(task)s", task=repr(node.task)))
        return out
    sig = tasks[node.task]
    if sig is None or not values_ok:
        return out
    counts_parent = parent_result is not None and not node.immutable
    args = (_PARENT_RESULT, *node.args) if counts_parent else node.args
    unknown = _unknown_keywords(sig, node.kwargs)
    if unknown:
        # Said before binding: Python would first complain about the parameter the misspelt
        # keyword was meant for ("missing a required argument: 'email'").
        out.append(_(
            "%(signature)s has no parameter %(names)s (its keyword parameters: %(known)s)",
            signature=signature_text(node.task, sig),
            names=", ".join(repr(name) for name in unknown),
            known=", ".join(_keyword_names(sig)) or "none",
        ))
        return out
    try:
        sig.bind(*args, **node.kwargs)
    except TypeError as exc:
        text = signature_text(node.task, sig)
        if counts_parent:
            out.append(_(
                "%(signature)s cannot take these arguments: %(error)s (counting %(parent)s "
                "passed as the first argument)",
                signature=text, error=str(exc), parent=parent_result,
            ))
        else:
            out.append(_("%(signature)s cannot take these arguments: %(error)s",
                         signature=text, error=str(exc)))
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
                    _("nested deeper than the limit of %(limit)d levels", limit=max_depth),
                    getattr(node, "ref", None),
                )
            )
    if count > max_nodes:
        # Stop here: checking thousands of nodes one by one helps nobody.
        problems.append(
            Problem(
                "root",
                _("%(count)d nodes, more than the limit of %(limit)d", count=count,
                  limit=max_nodes),
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
                problems.append(Problem(path, _("empty group"), node.ref))
            todo = [
                (paths.step(path, i), child, parent_result) for i, child in enumerate(node.tasks)
            ]
        elif isinstance(node, Chain):
            if not node.tasks:
                problems.append(Problem(path, _("empty chain"), node.ref))
            todo = [
                (paths.step(path, i), child, parent_result if i == 0 else PREVIOUS_RESULT)
                for i, child in enumerate(node.tasks)
            ]
        elif isinstance(node, Chord):
            if not node.header:
                problems.append(Problem(path, _("chord without header tasks"), node.ref))
            todo = [
                (paths.header(path, i), child, parent_result) for i, child in enumerate(node.header)
            ]
            todo.append((paths.body(path), node.body, HEADER_RESULTS))
        else:
            problems.append(
                Problem(path, _("not a canvas node: %(type)s", type=type(node).__name__))
            )
        stack.extend(reversed(todo))
    return problems


# -- warnings: likely mistakes that Celery would still send ------------------------------


_LIST_NAMES = frozenset(
    {"list", "List", "Sequence", "MutableSequence", "Iterable", "Collection", "Any", "object",
     "Reversible", "Container", "Sized"}
)
_SCALAR_DEFAULT = (bool, int, float, str, bytes)


def _annotation_takes_list(annotation: Any) -> bool | None:
    """True/False when the annotation says whether a list fits; None when it cannot be told."""
    if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
        return True
    if isinstance(annotation, str):
        # ``from __future__ import annotations``: read the text, never evaluate it.
        parts = [part.strip() for part in annotation.split("|")]
        heads = [part.split("[", 1)[0].rsplit(".", 1)[-1] for part in parts]
        if any(head in _LIST_NAMES for head in heads):
            return True
        if heads and all(
            head in ("int", "float", "str", "bool", "bytes", "dict", "Mapping", "None")
            for head in heads
        ):
            return False
        if any(head in ("Optional", "Union") for head in heads):
            inner = annotation.split("[", 1)[-1].rstrip("]")
            return _annotation_takes_list(" | ".join(inner.split(",")))
        return None
    args = getattr(annotation, "__args__", None)
    origin = getattr(annotation, "__origin__", None)
    if args is not None and (origin is Union or type(annotation) is UnionType):
        verdicts = [_annotation_takes_list(arg) for arg in args]
        if any(verdicts):
            return True
        return None if None in verdicts else False
    if isinstance(origin, type):
        annotation = origin
    if isinstance(annotation, type):
        try:
            return issubclass(list, annotation)
        except TypeError:
            return None
    return None


def _receivers(node: Node) -> list[tuple[str, Task]]:
    """The tasks that receive a result handed to ``node`` (relative paths from ``node``)."""
    if isinstance(node, Task):
        return [] if node.immutable else [("", node)]
    if isinstance(node, Chain):
        return [(f".0{p}", t) for p, t in _receivers(node.tasks[0])] if node.tasks else []
    if isinstance(node, Group):
        return [(f".{i}{p}", t) for i, c in enumerate(node.tasks) for p, t in _receivers(c)]
    if isinstance(node, Chord):
        return [
            (f".header.{i}{p}", t) for i, c in enumerate(node.header) for p, t in _receivers(c)
        ]
    return []


def _list_parameter_problem(task: Task, sig: inspect.Signature) -> str | None:
    """Why the first parameter of ``task`` will not cope with the list it receives, if so.

    The rule (docs/architecture.md, "Chord body warning"): the parameter the list binds to
    is judged by its annotation when it has one (a list fits ``list``, ``Sequence``,
    ``Iterable``, ``Any``...; it does not fit ``int``, ``str``, ``dict``...). Without an
    annotation, by what the body itself gives: a scalar default (``seconds=5``) or the body's
    own positional arguments all being numbers (``suma.s(10)`` → ``suma([4, 8], 10)``) say
    the task computes on scalars, where a list fails (``[4, 8] + 10``) or silently does
    something else (``[4, 8] * 3``).
    """
    marker = _ParentResult()
    try:
        bound = sig.bind(marker, *task.args, **task.kwargs)
    except TypeError:
        return None  # an arity problem, which validate() reports
    name = next((key for key, value in bound.arguments.items() if value is marker), None)
    if name is None:
        return None
    param = sig.parameters[name]
    if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
        return None
    verdict = _annotation_takes_list(param.annotation)
    if param.annotation is not inspect.Parameter.empty:
        if verdict is False:
            shown = (
                param.annotation if isinstance(param.annotation, str)
                else inspect.formatannotation(param.annotation)
            )
            return _("its parameter '%(name)s' is annotated %(annotation)s", name=name,
                     annotation=str(shown))
        return None
    if param.default is not inspect.Parameter.empty and isinstance(
        param.default, _SCALAR_DEFAULT
    ):
        return _("its parameter '%(name)s' defaults to %(default)s, not a list", name=name,
                 default=repr(param.default))
    if task.args and all(_is_number(value) for value in task.args):
        given = ", ".join(repr(value) for value in task.args)
        return _(
            "its parameter '%(name)s' takes the list while the body's own arguments "
            "(%(given)s) are numbers: a task computing on numbers fails on a list "
            "(e.g. %(example)s)",
            name=name, given=given, example=f"{name} + {task.args[0]!r}",
        )
    return None


def warnings(root: Node, *, tasks: Mapping[str, inspect.Signature | None]) -> list[Problem]:
    """Likely mistakes Celery would still send; shown, but they never keep a tree from running.

    Today one kind: a chord body (or what its first step hands it to) receives the list of
    header results as its first argument, where the task cannot take a list.
    """
    out: list[Problem] = []
    for path, node, _depth in walk(root):
        if not isinstance(node, Chord):
            continue
        for relative, task in _receivers(node.body):
            sig = tasks.get(task.task) if isinstance(task.task, str) else None
            if sig is None:
                continue
            reason = _list_parameter_problem(task, sig)
            if reason:
                out.append(
                    Problem(
                        f"{path}.body{relative}",
                        _("as the chord's body, %(signature)s receives %(what)s first, and "
                          "%(reason)s; make it .si() or use a task that takes a list",
                          signature=signature_text(task.task, sig), what=HEADER_RESULTS,
                          reason=reason),
                        task.ref,
                        "warning",
                    )
                )
    return out
