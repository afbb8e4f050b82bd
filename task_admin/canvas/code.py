"""Canvas as code: read a pasted Celery canvas expression into a spec, and write one back.

``parse`` reads the text with Python's ``ast`` and walks the tree itself: nothing is ever
evaluated, compiled to code, imported or looked up. What it accepts is a small language::

    from celery import chain, chord, group, signature      # optional, read not run
    from project.demo.tasks import suma                     # optional: names a task

    chord([suma.s(1, 1), suma.s(2, 2)], suma.s(10).set(queue="math"))

- ``group(a, b)`` / ``group([a, b])``, ``chain(a, b)`` / ``chain([a, b])``,
  ``chord([a, b], body)`` / ``chord(group(a, b), body)``, nested to any depth;
- ``task.s(...)``, ``task.si(...)``, ``signature("dotted.name", args=..., kwargs=...,
  immutable=...)``; ``task`` is a short name (resolved when it is unambiguous), a dotted name
  or a name bound by one of the ``from ... import`` lines;
- ``.set(countdown=..., queue=..., ...)`` with the options a spec holds (``spec.Options``);
- ``a | b`` as Celery reads it: chains are flattened, and ``group | x`` becomes
  ``chord(group, x)`` (Celery upgrades it the same way when it sends it), so the tree says
  explicitly what will run;
- arguments are literals only: numbers, strings, True/False/None, lists, tuples (read as
  lists: JSON has no tuples) and dicts with string keys.

Anything else (a call of any other name, attribute access beyond ``.s/.si/.set``, names from
the environment, lambdas, comprehensions, f-strings, operators other than ``|``) is refused
with its line and column (``CodeError``). ``chain(...)`` written out is read as written, so
``render`` can write any tree and ``parse`` reads it back to the same tree; labels and node
refs are not part of the code.

Pure: no Django, no Celery (``tests/canvas/test_spec.py`` proves it in a fresh interpreter).
"""

from __future__ import annotations

import ast
import keyword
import math
import unicodedata
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .spec import (
    MAX_VALUE_DEPTH,
    OPTION_NAMES,
    PARSE_MAX_DEPTH,
    Chain,
    Chord,
    Group,
    Node,
    Options,
    SpecError,
    Task,
    _options_from_dict,
    walk,
)
from .text import _
from .validate import Problem

CANVAS_NAMES = ("chain", "chord", "group", "signature")
# Long enough for a 1,000-node workflow written out; bounded so a paste cannot eat memory.
MAX_TEXT_LENGTH = 500_000
# Lines longer than this are split over several lines by ``render``.
WIDTH = 79

Resolver = Callable[[str], str]


class CodeError(ValueError):
    """Refused text; ``line`` and ``column`` count from 1 (column in characters)."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        # A canvas ``Text``: ``task_admin.i18n.translated(exc.text)`` translates it.
        self.text = _("line %(line)d, column %(column)d: %(message)s", line=line, column=column,
                      message=message)
        super().__init__(self.text)
        self.message = message
        self.line = line
        self.column = column


class UnknownTask(LookupError):
    """Raised by a resolver for a name that is not an allowed task (the text is the reason)."""


# -- resolving task names ----------------------------------------------------------------


def make_resolver(names: Iterable[str]) -> Resolver:
    """Resolve a dotted task name exactly, and a short one when exactly one task ends in it."""
    allowed = set(names)
    by_short: dict[str, list[str]] = defaultdict(list)
    for name in sorted(allowed):
        by_short[name.rsplit(".", 1)[-1]].append(name)

    def resolve(name: str) -> str:
        if name in allowed:
            return name
        matches = by_short.get(name, []) if "." not in name else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownTask(
                _("%(name)s is ambiguous: it may be %(tasks)s; write the dotted name",
                  name=repr(name), tasks=", ".join(matches))
            )
        raise UnknownTask(_("unknown or disallowed task %(name)s", name=repr(name)))

    return resolve


# -- parsing -------------------------------------------------------------------------------


@dataclass
class Parsed:
    """The tree read from the text, with the line and column each node was written at."""

    spec: Node
    positions: dict[str, tuple[int, int]]
    # How the text was read where Python and the tree differ (``group | x`` is a chord).
    notes: list[str] = field(default_factory=list)

    def locate(self, problem: Problem) -> str:
        """``line 1, column 30: root.body: ...``: a problem of the spec, placed in the text."""
        path = problem.path
        while path not in self.positions and "." in path:
            path = path.rsplit(".", 1)[0]
        line, column = self.positions.get(path, (1, 1))
        return _("line %(line)d, column %(column)d: %(path)s: %(message)s", line=line,
                 column=column, path=problem.path, message=problem.message)


_REFUSED_HINTS: dict[type, str] = {
    ast.Lambda: _("lambdas are not allowed"),
    ast.ListComp: _("comprehensions are not allowed"),
    ast.SetComp: _("comprehensions are not allowed"),
    ast.DictComp: _("comprehensions are not allowed"),
    ast.GeneratorExp: _("generator expressions are not allowed"),
    ast.JoinedStr: _("f-strings are not allowed: write the string itself"),
    ast.NamedExpr: _("assignment expressions are not allowed"),
    ast.Await: _("await is not allowed"),
    ast.Yield: _("yield is not allowed"),
    ast.YieldFrom: _("yield is not allowed"),
    ast.IfExp: _("conditional expressions are not allowed"),
    ast.Starred: _("unpacking with * is not allowed"),
    ast.Subscript: _("subscripts are not allowed"),
    ast.Compare: _("comparisons are not allowed"),
    ast.BoolOp: _("'and'/'or' are not allowed"),
    ast.Set: _("sets are not allowed (not JSON): use a list"),
}

_DANGEROUS_CALLS = frozenset(
    {"__import__", "eval", "exec", "compile", "getattr", "setattr", "delattr", "open",
     "globals", "locals", "vars", "breakpoint", "input", "exit", "quit", "help"}
)

_RUNNING_METHODS = frozenset(
    {"delay", "apply_async", "apply", "run", "__call__", "freeze", "link", "on_error"}
)


class _Reader:
    def __init__(self, text: str, resolve: Resolver) -> None:
        self.lines = text.splitlines() or [""]
        self.resolve = resolve
        self.bound: dict[str, str] = {}  # local name -> task name, from import lines
        self.canvas_names: dict[str, str] = {name: name for name in CANVAS_NAMES}
        self.positions: dict[int, tuple[int, int]] = {}
        self.notes: list[str] = []

    # -- positions and errors

    def where(self, node: ast.AST) -> tuple[int, int]:
        line = getattr(node, "lineno", 1) or 1
        offset = getattr(node, "col_offset", 0) or 0
        # ``col_offset`` counts UTF-8 bytes; people count characters.
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        column = len(text.encode("utf-8")[:offset].decode("utf-8", errors="ignore")) + 1
        return line, column

    def error(self, node: ast.AST, message: str) -> CodeError:
        return CodeError(message, *self.where(node))

    def attribute_error(self, node: ast.Attribute, message: str) -> CodeError:
        """Point at the ``.name`` itself rather than at the start of the whole expression."""
        value = node.value
        line, offset = getattr(value, "end_lineno", None), getattr(value, "end_col_offset", None)
        if line is None or offset is None:
            return self.error(node, message)
        return self.error(ast.Name(id="", lineno=line, col_offset=offset), message)

    def made(self, spec: Node, node: ast.AST) -> Node:
        self.positions[id(spec)] = self.where(node)
        return spec

    # -- statements

    def module(self, tree: ast.Module) -> Node:
        # Name the worst first, wherever it hides: a call of a builtin that could run code.
        for node in _walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in _DANGEROUS_CALLS
                and node.func.id not in self.bound
            ):
                raise self.error(
                    node.func, _("%(name)s() is not allowed: the text is read, never run",
                                 name=node.func.id)
                )
        body = tree.body
        if not body:
            raise CodeError(_("nothing to read: paste a canvas expression such as chain(...)"))
        *imports, last = body
        for statement in imports:
            self.import_line(statement)
        if isinstance(last, ast.ImportFrom | ast.Import):
            raise self.error(last, _("the text ends without a canvas expression"))
        if not isinstance(last, ast.Expr):
            raise self.error(
                last,
                _("only 'from ... import ...' lines and one canvas expression are read, "
                  "not %(what)s", what=_describe(last)),
            )
        return self.canvas(last.value, 0)

    def import_line(self, statement: ast.stmt) -> None:
        if isinstance(statement, ast.Import):
            raise self.error(
                statement, "write 'from module import name': plain 'import' lines are not read"
            )
        if isinstance(statement, ast.Expr):
            raise self.error(statement, _("only one canvas expression is read: join them"))
        if not isinstance(statement, ast.ImportFrom):
            raise self.error(
                statement,
                _("only 'from ... import ...' lines and one canvas expression are read, "
                  "not %(what)s", what=_describe(statement)),
            )
        if statement.level or not statement.module:
            raise self.error(statement, _("relative imports are not read: write the module path"))
        for alias in statement.names:
            if alias.name == "*":
                raise self.error(statement, _("'import *' is not read: name what you import"))
            local = alias.asname or alias.name
            if statement.module in ("celery", "celery.canvas"):
                if alias.name not in CANVAS_NAMES:
                    raise self.error(
                        alias,
                        _("only %(names)s may be imported from celery, not %(name)s",
                          names=", ".join(CANVAS_NAMES), name=repr(alias.name)),
                    )
                self.canvas_names[local] = alias.name
                self.bound.pop(local, None)
                continue
            self.bound[local] = self.task_name(f"{statement.module}.{alias.name}", alias)
            self.canvas_names.pop(local, None)

    # -- names

    def task_name(self, name: str, node: ast.AST) -> str:
        try:
            resolved = self.resolve(name)
        except LookupError as exc:
            raise self.error(node, exc.args[0] if exc.args else str(exc)) from None
        if not isinstance(resolved, str) or not resolved:
            raise self.error(node, _("unknown or disallowed task %(name)s", name=repr(name)))
        return resolved

    def task_reference(self, node: ast.expr) -> str:
        """The task a ``<reference>.s(...)`` names: a bound, short or dotted name."""
        if isinstance(node, ast.Name):
            if node.id in self.bound:
                return self.bound[node.id]
            if node.id in self.canvas_names:
                raise self.error(node, _("%(name)s is not a task", name=repr(node.id)))
            return self.task_name(node.id, node)
        parts: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            raise self.error(node, _("a task is named by its (dotted) name, e.g. suma.s(1, 2)"))
        parts.append(current.id)
        return self.task_name(".".join(reversed(parts)), node)

    # -- canvas expressions

    def canvas(self, node: ast.expr, depth: int) -> Node:
        if depth > PARSE_MAX_DEPTH:
            raise self.error(node, _("nested more than %(limit)d levels deep",
                                       limit=PARSE_MAX_DEPTH))
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, ast.BitOr):
                raise self.error(node, _("the only operator between signatures is |"))
            left = self.canvas(node.left, depth + 1)
            right = self.canvas(node.right, depth + 1)
            if _upgrades_to_chord(left, right):
                line, column = self.where(node)
                self.notes.append(_(
                    "line %(line)d, column %(column)d: a group followed by | is read as a chord "
                    "with the group as its header, which is what Celery sends",
                    line=line, column=column,
                ))
            return self.made(_pipe(left, right), node)
        if isinstance(node, ast.Attribute):
            raise self.attribute_error(node, self.not_a_signature(node))
        if not isinstance(node, ast.Call):
            raise self.error(node, self.not_a_signature(node))
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in self.canvas_names and func.id not in self.bound:
                return self.made(self.constructor(self.canvas_names[func.id], node, depth), node)
            raise self.error(
                func,
                _("%(name)s() is not part of a canvas: use group, chain, chord, signature, "
                  "task.s(), task.si() or .set()", name=func.id),
            )
        if isinstance(func, ast.Attribute):
            if func.attr in ("s", "si"):
                name = self.task_reference(func.value)
                args, kwargs = self.call_arguments(node)
                task = Task(name, tuple(args), kwargs, immutable=func.attr == "si")
                return self.made(task, node)
            if func.attr == "set":
                inner = self.canvas(func.value, depth + 1)
                return self.made(self.with_options(inner, node), node)
            if func.attr in _RUNNING_METHODS:
                raise self.attribute_error(
                    func,
                    _(".%(name)s() would run the canvas: paste the canvas only, without "
                      "calling it", name=func.attr),
                )
            raise self.attribute_error(
                func, _("attribute .%(name)s is not allowed: only .s(), .si() and .set()",
                        name=func.attr)
            )
        if isinstance(func, ast.Call):
            raise self.error(node, _("calling a signature would run it: paste the canvas only"))
        raise self.error(node, self.not_a_signature(node))

    def not_a_signature(self, node: ast.expr) -> str:
        hint = _REFUSED_HINTS.get(type(node))
        if hint:
            return hint
        if isinstance(node, ast.Name):
            return _("the name %(name)s is not a signature: write %(id)s.s(...)",
                     name=repr(node.id), id=node.id)
        if isinstance(node, ast.Attribute):
            return _("attribute .%(name)s is not allowed: only .s(), .si() and .set()",
                     name=node.attr)
        return _("%(what)s is not a signature: expected e.g. suma.s(1, 2)",
                 what=_describe(node))

    def canvas_list(self, node: ast.expr, depth: int) -> list[Node]:
        if not isinstance(node, ast.List | ast.Tuple):
            raise self.error(node, _("expected a list of signatures, e.g. [suma.s(1, 1), ...]"))
        return [self.canvas(item, depth + 1) for item in node.elts]

    def members(self, call: ast.Call, depth: int, what: str) -> list[Node]:
        """``group(a, b)`` or ``group([a, b])``; the same for chain."""
        if call.keywords:
            raise self.error(call.keywords[0], _("%(name)s() takes no keyword arguments here",
                                                   name=what))
        if len(call.args) == 1 and isinstance(call.args[0], ast.List | ast.Tuple):
            return self.canvas_list(call.args[0], depth)
        return [self.canvas(arg, depth + 1) for arg in call.args]

    def constructor(self, kind: str, call: ast.Call, depth: int) -> Node:
        for arg in call.args:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, _("unpacking with * is not allowed"))
        if kind == "group":
            return Group(tuple(self.members(call, depth, "group")))
        if kind == "chain":
            members = self.members(call, depth, "chain")
            if (
                len(members) == 1
                and isinstance(members[0], Chain)
                and isinstance(call.args[0], ast.BinOp)
            ):
                # chain(a | b) is the chain a | b: Celery unrolls the inner chain when sending.
                return members[0]
            return Chain(tuple(members))
        if kind == "chord":
            return self.chord(call, depth)
        return self.signature(call)

    def chord(self, call: ast.Call, depth: int) -> Node:
        args = list(call.args)
        named = {}
        for keyword_node in call.keywords:
            if keyword_node.arg not in ("header", "body") or keyword_node.arg in named:
                raise self.error(keyword_node, _("chord() takes a header and a body only"))
            named[keyword_node.arg] = keyword_node.value  # chord(header=[...], body=...)
        for name in ("header", "body")[len(args):]:
            if name in named:
                args.append(named.pop(name))
        if len(args) != 2 or named:
            raise self.error(
                call, "a chord needs a header and a body: chord([suma.s(1, 1), ...], body.s())"
            )
        header_node, body_node = args
        if isinstance(header_node, ast.List | ast.Tuple):
            header = self.canvas_list(header_node, depth)
        else:
            parsed = self.canvas(header_node, depth + 1)
            if not isinstance(parsed, Group):
                raise self.error(header_node, _("a chord's header is a list or a group()"))
            header = list(parsed.tasks)
        return Chord(tuple(header), self.canvas(body_node, depth + 1))

    def signature(self, call: ast.Call) -> Task:
        if not call.args or not (
            isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
        ):
            raise self.error(call, _("signature() takes the task's name as a string first"))
        if len(call.args) > 3:
            raise self.error(call.args[3], _("signature() takes a name, args and kwargs"))
        name = self.task_name(call.args[0].value, call.args[0])
        given: dict[str, ast.expr] = dict(zip(("args", "kwargs"), call.args[1:], strict=False))
        for keyword_node in call.keywords:
            if keyword_node.arg is None:
                raise self.error(keyword_node, _("unpacking with ** is not allowed here"))
            if keyword_node.arg not in ("args", "kwargs", "immutable", "options"):
                raise self.error(
                    keyword_node,
                    _("signature() takes args, kwargs, immutable and options, not %(name)s",
                      name=repr(keyword_node.arg)),
                )
            if keyword_node.arg in given:
                raise self.error(keyword_node, _("%(name)s is given twice", name=keyword_node.arg))
            given[keyword_node.arg] = keyword_node.value
        args = self.value(given["args"]) if "args" in given else []
        if not isinstance(args, list):
            raise self.error(given["args"], _("args must be a list or a tuple"))
        kwargs = self.value(given["kwargs"]) if "kwargs" in given else {}
        if not isinstance(kwargs, dict):
            raise self.error(given["kwargs"], _("kwargs must be a dict"))
        immutable = self.value(given["immutable"]) if "immutable" in given else False
        if not isinstance(immutable, bool):
            raise self.error(given["immutable"], _("immutable must be True or False"))
        task = Task(name, tuple(args), kwargs, immutable=immutable)
        if "options" in given:
            options = self.value(given["options"])
            if not isinstance(options, dict):
                raise self.error(given["options"], _("options must be a dict"))
            task = replace(task, options=self.options(task.options, options, given["options"]))
        return task

    def call_arguments(self, call: ast.Call) -> tuple[list[Any], dict[str, Any]]:
        args = []
        for arg in call.args:
            if isinstance(arg, ast.Starred):
                raise self.error(arg, _("unpacking with * is not allowed"))
            args.append(self.value(arg))
        kwargs: dict[str, Any] = {}
        for keyword_node in call.keywords:
            if keyword_node.arg is None:
                # ``**{"not-an-identifier": 1}``: how ``render`` writes such keys.
                extra = self.value(keyword_node.value)
                if not isinstance(extra, dict):
                    raise self.error(keyword_node.value, _("** takes a dict literal"))
                items = extra.items()
            else:
                items = [(keyword_node.arg, self.value(keyword_node.value))]
            for key, value in items:
                if key in kwargs:
                    raise self.error(keyword_node, _("keyword argument %(name)s is given twice",
                                                      name=repr(key)))
                kwargs[key] = value
        return args, kwargs

    def with_options(self, inner: Node, call: ast.Call) -> Task:
        if not isinstance(inner, Task):
            raise self.error(
                call.func, ".set() applies to a task here: set options on each task"
            )
        if call.args:
            raise self.error(call.args[0], _(".set() takes keyword arguments, e.g. countdown=10"))
        given: dict[str, Any] = {}
        for keyword_node in call.keywords:
            if keyword_node.arg is None:
                raise self.error(keyword_node, _("unpacking with ** is not allowed in .set()"))
            if keyword_node.arg not in OPTION_NAMES:
                raise self.error(
                    keyword_node,
                    _("unknown option %(name)s: .set() takes %(names)s",
                      name=repr(keyword_node.arg), names=", ".join(OPTION_NAMES)),
                )
            given[keyword_node.arg] = self.value(keyword_node.value)
        return replace(inner, options=self.options(inner.options, given, call))

    def options(self, current: Options, given: dict[str, Any], node: ast.AST) -> Options:
        merged = {**current.as_dict(), **{k: v for k, v in given.items() if v is not None}}
        for key, value in given.items():
            if value is None:
                merged.pop(key, None)
        try:
            return _options_from_dict("root", merged)
        except SpecError as exc:
            raise self.error(node, exc.message) from None

    # -- literal values

    def value(self, node: ast.expr, depth: int = 0) -> Any:
        """A literal, read node by node (as ``ast.literal_eval`` would, minus what JSON lacks)."""
        if depth > MAX_VALUE_DEPTH:
            raise self.error(node, _("a value nested deeper than %(limit)d levels",
                                       limit=MAX_VALUE_DEPTH))
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or isinstance(value, bool | int | str):
                return value
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise self.error(node, _("%(value)s is not valid JSON", value=repr(value)))
                return value
            raise self.error(
                node, _("a %(type)s literal is not a JSON value: use a string",
                        type=type(value).__name__)
            )
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub | ast.UAdd)
            and isinstance(node.operand, ast.Constant)
            and isinstance(node.operand.value, int | float)
            and not isinstance(node.operand.value, bool)
        ):
            number = self.value(node.operand, depth + 1)
            return -number if isinstance(node.op, ast.USub) else number
        if isinstance(node, ast.List | ast.Tuple):
            return [self.value(item, depth + 1) for item in node.elts]
        if isinstance(node, ast.Dict):
            out: dict[str, Any] = {}
            for key_node, value_node in zip(node.keys, node.values, strict=True):
                if key_node is None:
                    raise self.error(value_node, _("unpacking with ** is not allowed in a dict"))
                key = self.value(key_node, depth + 1)
                if not isinstance(key, str):
                    raise self.error(key_node, _("dict keys must be strings (JSON), not %(key)s",
                                                   key=repr(key)))
                if key in out:
                    raise self.error(key_node, _("the key %(key)s is given twice", key=repr(key)))
                out[key] = self.value(value_node, depth + 1)
            return out
        if isinstance(node, ast.Name):
            raise self.error(
                node,
                _("the name %(name)s is not a literal: arguments are literals only (numbers, "
                  "strings, True/False/None, lists, dicts)", name=repr(node.id)),
            )
        hint = _REFUSED_HINTS.get(type(node))
        if hint:
            raise self.error(node, hint)
        if isinstance(node, ast.Call | ast.BinOp):
            raise self.error(
                node, "arguments are literals only: nothing is called or computed"
            )
        if isinstance(node, ast.Attribute):
            raise self.error(node, _("attribute .%(name)s is not allowed in an argument",
                                       name=node.attr))
        raise self.error(node, _("%(what)s is not a literal", what=_describe(node)))


def _walk(tree: ast.AST) -> list[ast.AST]:
    # ``ast.walk`` imports ``collections`` on each call; this one touches nothing outside.
    out, stack = [], [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _describe(node: ast.AST) -> str:
    """``an assignment``, ``a loop``...: what a refused piece of code is, for messages."""
    names = {
        ast.Assign: _("an assignment"), ast.AnnAssign: _("an assignment"),
        ast.AugAssign: _("an assignment"), ast.FunctionDef: _("a function definition"),
        ast.AsyncFunctionDef: _("a function definition"), ast.ClassDef: _("a class definition"),
        ast.For: _("a loop"), ast.While: _("a loop"), ast.If: _("an if statement"),
        ast.With: _("a with block"), ast.Try: _("a try block"), ast.Delete: _("del"),
        ast.Global: _("global"), ast.Nonlocal: _("nonlocal"), ast.Raise: _("raise"),
        ast.Assert: _("assert"), ast.Pass: _("pass"), ast.Return: _("return"),
        ast.Constant: _("a constant"), ast.BinOp: _("an arithmetic operation"),
        ast.UnaryOp: _("an operation"), ast.Dict: _("a dict"), ast.List: _("a list"),
        ast.Tuple: _("a tuple"),
    }
    return names.get(type(node)) or _("a %(type)s expression", type=type(node).__name__)


def _upgrades_to_chord(left: Node, right: Node) -> bool:
    return isinstance(left, Group) or (
        isinstance(left, Chain)
        and bool(left.tasks)
        and isinstance(left.tasks[-1], Group)
        and not isinstance(right, Chain | Group)
    )


def _pipe(left: Node, right: Node) -> Node:
    """``left | right`` as Celery composes it (``Signature.__or__`` and friends)."""
    if isinstance(left, Group):
        # group | x → chord: Celery upgrades it when sending; say it in the tree.
        return Chord(left.tasks, right)
    if isinstance(left, Chain):
        if left.tasks and isinstance(left.tasks[-1], Group) and not isinstance(
            right, Chain | Group
        ):
            # chain(..., group) | task → the group and the task become a chord.
            return Chain((*left.tasks[:-1], Chord(left.tasks[-1].tasks, right)))
        if isinstance(right, Chain):
            return Chain((*left.tasks, *right.tasks))
        return Chain((*left.tasks, right))
    if isinstance(left, Chord) and not isinstance(right, Chain | Group):
        # chord | task → the task follows the body (Celery attaches it there).
        return Chord(left.header, _pipe(left.body, right))
    if isinstance(right, Chain):
        return Chain((left, *right.tasks))
    return Chain((left, right))


def parse_located(text: str, resolve: Resolver) -> Parsed:
    """Read ``text``; raises ``CodeError`` (with a line and column) for anything refused."""
    if not isinstance(text, str):
        raise CodeError(_("the canvas must be text"))
    if len(text) > MAX_TEXT_LENGTH:
        raise CodeError(_("the text is longer than %(limit)d characters", limit=MAX_TEXT_LENGTH))
    if "\x00" in text:
        raise CodeError(_("the text contains a NUL character"))
    try:
        # ``ast.parse`` only builds the syntax tree (``PyCF_ONLY_AST``): nothing is compiled
        # to code and nothing runs.
        with warnings.catch_warnings():
            # A SyntaxWarning would be formatted through the import system; it is not ours.
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip("\n"), mode="exec")
    except SyntaxError as exc:
        line = exc.lineno or 1
        column = exc.offset or 1
        raise CodeError(_("not valid Python: %(error)s", error=exc.msg), line, column) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise CodeError(_("cannot be read: %(error)s", error=type(exc).__name__)) from None
    reader = _Reader(text.strip("\n"), resolve)
    try:
        spec = reader.module(tree)
    except RecursionError:
        raise CodeError(_("nested too deeply to read")) from None
    positions = {
        path: reader.positions[id(node)]
        for path, node, _ in walk(spec)
        if id(node) in reader.positions
    }
    return Parsed(spec, positions, reader.notes)


def parse(text: str, resolve: Resolver) -> Node:
    """The spec ``text`` describes; raises ``CodeError`` with a line and column."""
    return parse_located(text, resolve).spec


# -- rendering -----------------------------------------------------------------------------


def _is_name(text: str) -> bool:
    # Python reads identifiers NFKC-normalised (``º=1`` binds ``o``): such a key is written
    # as ``**{...}`` so that it comes back as it was.
    return (
        text.isidentifier()
        and not keyword.iskeyword(text)
        and unicodedata.normalize("NFKC", text) == text
    )


def _import_names(root: Node) -> dict[str, tuple[str, str]]:
    """``{task name: (module, local name)}`` for tasks importable as ``from m import f``.

    Two tasks with the same function name in different modules get ``name_2``... aliases, so
    the code names each exactly.
    """
    taken = set(CANVAS_NAMES)
    out: dict[str, tuple[str, str]] = {}
    names = sorted({node.task for _, node, _ in walk(root) if isinstance(node, Task)})
    for name in names:
        module, _, attr = name.rpartition(".")
        if not module or not all(_is_name(part) for part in name.split(".")):
            continue  # written as signature("name", ...)
        local, number = attr, 2
        while local in taken:
            local, number = f"{attr}_{number}", number + 1
        taken.add(local)
        out[name] = (module, local)
    return out


def _call_args(values: list[str], kwargs: Mapping[str, Any]) -> list[str]:
    plain = {k: v for k, v in kwargs.items() if _is_name(k)}
    other = {k: v for k, v in kwargs.items() if k not in plain}
    out = values + [f"{k}={v!r}" for k, v in plain.items()]
    if other:
        out.append(f"**{other!r}")
    return out


def _task_code(node: Task, local: Callable[[str], str | None]) -> str:
    name = local(node.task)
    if name is not None:
        method = "si" if node.immutable else "s"
        call = ", ".join(_call_args([repr(a) for a in node.args], node.kwargs))
        text = f"{name}.{method}({call})"
    else:
        parts = [repr(node.task), f"args={tuple(node.args)!r}", f"kwargs={node.kwargs!r}"]
        if node.immutable:
            parts.append("immutable=True")
        text = f"signature({', '.join(parts)})"
    options = node.options.as_dict()
    if options:
        text += f".set({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    return text


def expression(root: Node, local: Callable[[str], str | None], width: int = WIDTH) -> str:
    """The canvas as one Python expression; ``local`` gives the name a task is written with
    (``None``: write ``signature("name", ...)``). Split over lines when wider than ``width``."""

    def flat(node: Node) -> str:
        if isinstance(node, Task):
            return _task_code(node, local)
        if isinstance(node, Group):
            return f"group([{', '.join(flat(c) for c in node.tasks)}])"
        if isinstance(node, Chain):
            return f"chain({', '.join(flat(c) for c in node.tasks)})"
        return f"chord([{', '.join(flat(c) for c in node.header)}], {flat(node.body)})"

    def render(node: Node, level: int) -> str:
        text = flat(node)
        if isinstance(node, Task) or len(text) + 4 * level <= width:
            return text
        pad, inner = "    " * level, "    " * (level + 1)
        if isinstance(node, Group):
            items = "".join(f"{inner}{render(c, level + 1)},\n" for c in node.tasks)
            return f"group([\n{items}{pad}])"
        if isinstance(node, Chain):
            items = "".join(f"{inner}{render(c, level + 1)},\n" for c in node.tasks)
            return f"chain(\n{items}{pad})"
        deeper = "    " * (level + 2)
        header = "".join(f"{deeper}{render(c, level + 2)},\n" for c in node.header)
        body = render(node.body, level + 1)
        return f"chord(\n{inner}[\n{header}{inner}],\n{inner}{body},\n{pad})"

    return render(root, 0)


def short_name(task: str) -> str | None:
    """The function name a task is usually imported as, when it is a Python name."""
    name = task.rsplit(".", 1)[-1]
    return name if _is_name(name) else None


def short_expression(root: Node, width: int = WIDTH) -> str:
    """``chain(suma.s(2, 2), suma.s(4))``: tasks by short name, no imports (for labels)."""
    return expression(root, short_name, width=width)


def render(root: Node, *, notes: Iterable[str] = ()) -> str:
    """Code to paste into a Python shell (the imports included) that ``parse`` reads back to
    the same tree. ``notes`` become comment lines at the top (e.g. which part inlines a reused
    workflow)."""
    notes = list(notes)
    imports = _import_names(root)
    body = expression(root, lambda name: imports[name][1] if name in imports else None)
    kinds = {type(node) for _, node, _ in walk(root)}
    wanted = {
        "chain": Chain in kinds,
        "chord": Chord in kinds,
        "group": Group in kinds,
        "signature": any(
            isinstance(node, Task) and node.task not in imports for _, node, _ in walk(root)
        ),
    }
    lines = [f"# {note}" for note in notes]
    used = [name for name in CANVAS_NAMES if wanted[name]]
    if used:
        lines.append(f"from celery import {', '.join(used)}")
    by_module: dict[str, list[str]] = defaultdict(list)
    for name, (module, local) in sorted(imports.items()):
        attr = name.rpartition(".")[2]
        by_module[module].append(attr if attr == local else f"{attr} as {local}")
    lines += [
        f"from {module} import {', '.join(names)}" for module, names in sorted(by_module.items())
    ]
    if lines:
        lines.append("")
    return "\n".join([*lines, body]) + "\n"
