"""A typed, versioned JSON description of a Celery workflow tree.

This module is deliberately free of Django and Celery imports so that specs can be
parsed, compared and stored anywhere (migrations, workers, command line tools).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, TypeAlias

from . import paths
from .text import _

SPEC_VERSION = 1

# Bounds recursion while parsing untrusted input; ``validate`` applies the real,
# configurable depth limit afterwards.
PARSE_MAX_DEPTH = 200

RETRY_POLICY_KEYS = frozenset({"max_retries", "interval_start", "interval_step", "interval_max"})


class SpecError(ValueError):
    """A malformed spec; ``path`` locates the offending node (e.g. ``root.1``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Options:
    """The subset of ``apply_async`` options a workflow node may carry."""

    countdown: float | None = None
    eta: str | None = None
    expires: float | str | None = None
    queue: str | None = None
    priority: int | None = None
    retry: bool | None = None
    retry_policy: dict[str, Any] | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The options that are set, JSON-ready (ISO strings stay strings)."""
        out: dict[str, Any] = {}
        for name in OPTION_NAMES:  # not dataclasses.fields(): 40% of to_dict()
            value = getattr(self, name)
            if value is not None:
                out[name] = dict(value) if isinstance(value, dict) else value
        return out

    def to_apply_async(self) -> dict[str, Any]:
        """The options that are set, with ISO timestamps turned into datetimes for Celery."""
        out = self.as_dict()
        for key in ("eta", "expires"):
            if isinstance(out.get(key), str):
                out[key] = datetime.fromisoformat(out[key])
        return out


# The options' names, in order (canvas.code checks pasted code against them).
OPTION_NAMES = tuple(f.name for f in fields(Options))


@dataclass(frozen=True)
class Task:
    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: Options = field(default_factory=Options)
    immutable: bool = False
    ref: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        # Callers may pass lists/mappings; normalise so equality with parsed specs holds.
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))


@dataclass(frozen=True)
class _Members:
    """What a group and a chain both are: their members in order (equal only to their own
    kind: a dataclass compares classes too)."""

    tasks: tuple[Node, ...] = ()
    ref: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))


@dataclass(frozen=True)
class Group(_Members):
    """Members run in parallel."""


@dataclass(frozen=True)
class Chain(_Members):
    """Members run one after the other, each (unless immutable) given the previous result."""


@dataclass(frozen=True)
class Chord:
    header: tuple[Node, ...]
    body: Node
    ref: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "header", tuple(self.header))


Node: TypeAlias = Task | Group | Chain | Chord


# -- paths and traversal -----------------------------------------------------------------


def children(path: str, node: Node) -> list[tuple[str, Node]]:
    """The direct children of ``node`` with their paths, in execution-ish order."""
    if isinstance(node, Group | Chain):
        return [(paths.step(path, i), child) for i, child in enumerate(node.tasks)]
    if isinstance(node, Chord):
        header = [(paths.header(path, i), child) for i, child in enumerate(node.header)]
        return [*header, (paths.body(path), node.body)]
    return []


def walk(root: Node) -> Iterator[tuple[str, Node, int]]:
    """Yield ``(path, node, depth)`` in pre-order; the root is ``"root"`` at depth 0."""
    # Iterative so that absurdly deep trees produce validation errors, not RecursionError.
    stack: list[tuple[str, Node, int]] = [(paths.ROOT, root, 0)]
    while stack:
        path, node, depth = stack.pop()
        yield path, node, depth
        stack.extend(
            (child_path, child, depth + 1) for child_path, child in reversed(children(path, node))
        )


def leaves(root: Node) -> list[tuple[str, Task]]:
    return [(path, node) for path, node, _depth in walk(root) if isinstance(node, Task)]


def count_leaves(root: Node) -> int:
    return len(leaves(root))


def node_at(root: Node, path: str) -> Node:
    """The node at ``path``; raises ``KeyError`` when there is none."""
    for node_path, node, _depth in walk(root):
        if node_path == path:
            return node
    raise KeyError(path)


# -- JSON values -------------------------------------------------------------------------


MAX_VALUE_DEPTH = 32


def json_value_problem(value: Any, where: str = "value") -> str | None:
    """Why ``value`` is not plain JSON (``None`` when it is).

    Stricter than ``json.dumps``: non-string keys are refused because json would
    silently turn them into strings and the task would receive something else, and values
    nested deeper than ``MAX_VALUE_DEPTH`` are refused because the pages that show them (and
    many a task) would recurse that deep.
    """
    # Explicit stack: values come from users and may be deeply nested.
    stack: list[tuple[str, Any, int]] = [(where, value, 0)]
    while stack:
        loc, item, depth = stack.pop()
        if item is None or isinstance(item, bool | int | str):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return _("%(where)s is %(value)s, which is not valid JSON", where=loc,
                         value=repr(item))
            continue
        if isinstance(item, list | tuple | dict) and depth >= MAX_VALUE_DEPTH:
            return _("%(where)s is nested deeper than %(limit)d levels", where=where,
                     limit=MAX_VALUE_DEPTH)
        if isinstance(item, list | tuple):
            stack.extend((f"{loc}[{i}]", v, depth + 1) for i, v in enumerate(item))
            continue
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    return _("%(where)s has a non-string key %(key)s", where=loc, key=repr(k))
                stack.append((f"{loc}[{k!r}]", v, depth + 1))
            continue
        return _("%(where)s is a %(type)s, which is not JSON-serialisable", where=loc,
                 type=type(item).__name__)
    return None


# -- serialisation -----------------------------------------------------------------------


def _common_to_dict(node: Node, out: dict[str, Any]) -> dict[str, Any]:
    if node.label:
        out["label"] = node.label
    if node.ref is not None:
        out["ref"] = node.ref
    return out


def node_to_dict(node: Node) -> dict[str, Any]:
    if isinstance(node, Task):
        out: dict[str, Any] = {
            "type": "task",
            "task": node.task,
            "args": list(node.args),
            "kwargs": dict(node.kwargs),
            "immutable": node.immutable,
        }
        options = node.options.as_dict()
        if options:
            out["options"] = options
        return _common_to_dict(node, out)
    if isinstance(node, Group | Chain):
        kind = "group" if isinstance(node, Group) else "chain"
        return _common_to_dict(node, {"type": kind, "tasks": [node_to_dict(c) for c in node.tasks]})
    if isinstance(node, Chord):
        return _common_to_dict(
            node,
            {
                "type": "chord",
                "header": [node_to_dict(c) for c in node.header],
                "body": node_to_dict(node.body),
            },
        )
    raise TypeError(f"not a canvas node: {node!r}")


def to_dict(root: Node) -> dict[str, Any]:
    return {"version": SPEC_VERSION, "root": node_to_dict(root)}


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but ``countdown=True`` is certainly a mistake.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def _options_from_dict(path: str, data: Any) -> Options:
    if not isinstance(data, dict):
        raise SpecError(path, _("'options' must be an object"))
    known = {f.name for f in fields(Options)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise SpecError(path, _("unknown option(s): %(names)s", names=", ".join(unknown)))

    def bad(key: str, expected: str) -> SpecError:
        return SpecError(path, _("option '%(key)s' must be %(expected)s, not %(value)s",
                                  key=key, expected=expected, value=repr(data[key])))

    checks: dict[str, tuple[Any, str]] = {
        "countdown": (_is_number, _("a number")),
        "eta": (lambda v: isinstance(v, str), _("an ISO 8601 string")),
        "expires": (
            lambda v: _is_number(v) or isinstance(v, str),
            _("a number of seconds or an ISO 8601 string"),
        ),
        "queue": (lambda v: isinstance(v, str), _("a string")),
        "priority": (lambda v: isinstance(v, int) and not isinstance(v, bool), _("an integer")),
        "retry": (lambda v: isinstance(v, bool), _("true or false")),
        "retry_policy": (lambda v: isinstance(v, dict), _("an object")),
        "soft_time_limit": (_is_number, _("a number")),
        "time_limit": (_is_number, _("a number")),
    }
    for key, value in data.items():
        check, expected = checks[key]
        if value is not None and not check(value):
            raise bad(key, expected)
    policy = data.get("retry_policy")
    if policy is not None:
        for key, value in policy.items():
            if key not in RETRY_POLICY_KEYS:
                raise SpecError(path, _("unknown retry_policy key %(key)s", key=repr(key)))
            if not _is_number(value):
                raise SpecError(path, _("retry_policy '%(key)s' must be a number, not %(value)s",
                                         key=key, value=repr(value)))
        policy = dict(policy)
    return Options(**{**data, "retry_policy": policy})


_NODE_KEYS: dict[str, frozenset[str]] = {
    "task": frozenset({"type", "task", "args", "kwargs", "options", "immutable", "label", "ref"}),
    "group": frozenset({"type", "tasks", "label", "ref"}),
    "chain": frozenset({"type", "tasks", "label", "ref"}),
    "chord": frozenset({"type", "header", "body", "label", "ref"}),
}


def _node_list(path: str, data: dict[str, Any], key: str) -> list[Any]:
    if key not in data:
        raise SpecError(path, _("missing '%(key)s'", key=key))
    value = data[key]
    if not isinstance(value, list):
        raise SpecError(path, _("'%(key)s' must be a list", key=key))
    return value


def node_from_dict(data: Any, path: str = "root", depth: int = 0) -> Node:
    """Parse one node dict (without the version envelope)."""
    if depth > PARSE_MAX_DEPTH:
        raise SpecError(path, _("nested more than %(limit)d levels deep", limit=PARSE_MAX_DEPTH))
    if not isinstance(data, dict):
        raise SpecError(path, _("a node must be an object"))
    kind = data.get("type")
    if kind not in _NODE_KEYS:
        raise SpecError(path, _("unknown node type %(type)s", type=repr(kind)))
    unknown = sorted(str(k) for k in data if k not in _NODE_KEYS[kind])
    if unknown:
        raise SpecError(path, _("unknown key(s) for a %(type)s: %(keys)s", type=kind,
                                 keys=", ".join(unknown)))
    label = data.get("label", "")
    if not isinstance(label, str):
        raise SpecError(path, _("'label' must be a string"))
    ref = data.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise SpecError(path, _("'ref' must be a string or null"))

    if kind == "task":
        name = data.get("task")
        if not isinstance(name, str) or not name:
            raise SpecError(path, _("'task' must be a non-empty string"))
        args = data.get("args", [])
        if not isinstance(args, list):
            raise SpecError(path, _("'args' must be a list"))
        kwargs = data.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise SpecError(path, _("'kwargs' must be an object"))
        for value, where in ((args, "args"), (kwargs, "kwargs")):
            problem = json_value_problem(value, where)
            if problem:
                raise SpecError(path, problem)
        immutable = data.get("immutable", False)
        if not isinstance(immutable, bool):
            raise SpecError(path, _("'immutable' must be true or false"))
        options = _options_from_dict(path, data["options"]) if "options" in data else Options()
        return Task(name, tuple(args), kwargs, options, immutable, ref, label)

    if kind == "chord":
        header = _node_list(path, data, "header")
        if "body" not in data:
            raise SpecError(path, _("missing 'body'"))
        return Chord(
            tuple(
                node_from_dict(c, paths.header(path, i), depth + 1) for i, c in enumerate(header)
            ),
            node_from_dict(data["body"], paths.body(path), depth + 1),
            ref,
            label,
        )

    cls = Group if kind == "group" else Chain
    items = _node_list(path, data, "tasks")
    return cls(
        tuple(node_from_dict(c, paths.step(path, i), depth + 1) for i, c in enumerate(items)),
        ref,
        label,
    )


def from_dict(data: Any) -> Node:
    """Parse ``{"version": 1, "root": {...}}``; raises ``SpecError`` when malformed."""
    if not isinstance(data, dict):
        raise SpecError("root", _("a spec must be an object with 'version' and 'root'"))
    unknown = sorted(str(k) for k in data if k not in {"version", "root"})
    if unknown:
        raise SpecError("root", _("unknown top-level key(s): %(keys)s", keys=", ".join(unknown)))
    if "version" not in data:
        raise SpecError("root", _("missing spec 'version'"))
    version = data["version"]
    if type(version) is not int or version != SPEC_VERSION:
        # Refuse newer specs instead of guessing: silently dropping a field could run
        # a different workflow than the one that was designed.
        raise SpecError(
            "root", _("unsupported spec version %(version)s (this code reads version %(ours)d)",
                      version=repr(version), ours=SPEC_VERSION)
        )
    if "root" not in data:
        raise SpecError("root", _("missing 'root' node"))
    return node_from_dict(data["root"])


def dumps(root: Node) -> str:
    """Stable JSON text (sorted keys, strict: no NaN/Infinity)."""
    return json.dumps(to_dict(root), sort_keys=True, allow_nan=False)


class NotJSONConstant(json.JSONDecodeError):
    """NaN, Infinity or -Infinity: Python's json reads them, JSON (and Celery) does not."""


def _refuse_constant(name: str) -> Any:
    raise NotJSONConstant(f"{name} is not valid JSON", name, 0)


class StrictJSONDecoder(json.JSONDecoder):
    """The one NaN-refusing decoder: specs here, the admin's JSON fields (``json.loads(text,
    cls=StrictJSONDecoder)`` or a form field's ``decoder``)."""

    def __init__(self, *args, **kwargs):
        kwargs["parse_constant"] = _refuse_constant
        super().__init__(*args, **kwargs)


def loads(text: str | bytes) -> Node:
    try:
        data = json.loads(text, cls=StrictJSONDecoder)
    except NotJSONConstant as exc:
        raise SpecError("root", _("%(name)s is not valid JSON", name=exc.doc)) from exc
    except json.JSONDecodeError as exc:
        raise SpecError("root", _("invalid JSON: %(error)s", error=str(exc))) from exc
    except RecursionError as exc:
        raise SpecError("root", _("JSON nested too deeply")) from exc
    return from_dict(data)


# -- re-running from the point of failure ------------------------------------------------


def map_leaves(root: Node, change: Callable[[str, Task], Task]) -> Node:
    """A copy of the tree with every leaf replaced by ``change(path, leaf)``; paths unchanged."""

    def rebuild(path: str, node: Node) -> Node:
        if isinstance(node, Task):
            return change(path, node)
        if isinstance(node, Group | Chain):
            return replace(node, tasks=tuple(rebuild(p, c) for p, c in children(path, node)))
        header = tuple(rebuild(paths.header(path, i), c) for i, c in enumerate(node.header))
        return replace(node, header=header, body=rebuild(paths.body(path), node.body))

    return rebuild(paths.ROOT, root)


def replace_succeeded(
    root: Node, results: Mapping[str, Any], *, replay_task: str = "task_admin.replay"
) -> Node:
    """Swap every leaf whose path is in ``results`` for an immutable task returning it.

    The replay task is immutable so it ignores any parent result, and it returns the
    kept value so chain successors and chord bodies still receive what they got before.
    Paths of all nodes are unchanged.
    """
    leaf_paths = {path for path, _leaf in leaves(root)}
    unknown = sorted(set(results) - leaf_paths)
    if unknown:
        raise SpecError(unknown[0], _("not a task of this workflow"))

    def replay(path: str, task: Task) -> Task:
        if path not in results:
            return task
        return Task(
            replay_task,
            args=(results[path],),
            immutable=True,
            label=f"kept result of {path}",
            ref=task.ref,
        )

    return map_leaves(root, replay)
