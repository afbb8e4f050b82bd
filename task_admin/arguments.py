"""A task's parameters as form fields: types from annotations and defaults, docs from docstrings.

``describe`` turns a signature into plain dicts the argument forms' script renders as one field
per parameter (``static/task_admin/arguments.js``); ``value_problems`` checks on the server that
the values posted fit those types, naming the parameter. Pure: no Django, no Celery.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

SIMPLE = {
    int: "int", float: "float", bool: "bool", str: "str",
    dt.date: "date", dt.datetime: "datetime",
    list: "list", tuple: "list", dict: "dict",
}
TEXT_NAMES = {
    "int": "int", "float": "float", "bool": "bool", "str": "str", "date": "date",
    "datetime": "datetime", "list": "list", "tuple": "list", "dict": "dict",
    "List": "list", "Sequence": "list", "Tuple": "list", "Dict": "dict", "Mapping": "dict",
}
POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _docs(doc: str | None) -> dict[str, str]:
    """Parameter docs from a docstring: Sphinx (``:param a: ...``) or Google (``Args:``)."""
    if not doc:
        return {}
    text = inspect.cleandoc(doc)
    out = {name: " ".join(desc.split()) for name, desc in re.findall(
        r":param\s+(?:[^:\s]+\s+)?(\w+):\s*(.+?)(?=\n\s*:|\Z)", text, re.S
    )}
    block = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.+\n?)+)", text, re.M)
    if block:
        for match in re.finditer(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", block.group(1), re.M):
            out.setdefault(match.group(1), match.group(2).strip())
    return out


def _type_of(annotation: Any) -> tuple[str, bool, list | None]:
    """``(type, nullable, choices)`` for an annotation; ``"json"`` when it cannot be told."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "json", False, None
    if isinstance(annotation, str):
        return _type_of_text(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        rest = [arg for arg in args if arg is not type(None)]
        kind, _nullable, choices = _type_of(rest[0]) if len(rest) == 1 else ("json", False, None)
        return kind, type(None) in args, choices
    if origin is typing.Literal:
        return "choice", False, list(args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "choice", False, [member.value for member in annotation]
    if origin is not None:
        annotation = origin
    for cls, kind in SIMPLE.items():
        if annotation is cls:
            return kind, False, None
    if isinstance(annotation, type):
        if issubclass(annotation, Mapping):
            return "dict", False, None
        if issubclass(annotation, list | tuple):
            return "list", False, None
    return "json", False, None


def _type_of_text(text: str) -> tuple[str, bool, list | None]:
    # ``from __future__ import annotations`` leaves text: read it, never evaluate it.
    text = text.strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]  # a quoted annotation under postponed evaluation
    parts = [part.strip() for part in text.split("|")]
    nullable = "None" in parts
    parts = [part for part in parts if part != "None"]
    if len(parts) == 1 and parts[0].startswith("Optional[") and parts[0].endswith("]"):
        parts, nullable = [parts[0][len("Optional["):-1]], True
    if len(parts) != 1:
        return "json", nullable, None
    head = parts[0].split("[", 1)[0].rsplit(".", 1)[-1]
    if head == "Literal":
        inner = parts[0][parts[0].index("[") + 1:-1]
        try:
            import ast

            values = ast.literal_eval(f"[{inner}]")
        except (ValueError, SyntaxError):
            return "json", nullable, None
        return "choice", nullable, values
    return TEXT_NAMES.get(head, "json"), nullable, None


def _default_kind(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    for cls in (int, float, str, list, dict):
        if isinstance(default, cls):
            return SIMPLE[cls]
    return "json"


def _json_ready(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    return repr(value)


def describe(signature: inspect.Signature | None, doc: str | None = "",
             hints: Mapping[str, Any] | None = None) -> dict:
    """The parameters as the argument forms show them.

    ``{"known": bool, "extra_args": bool, "extra_kwargs": bool, "params": [{name, kind, type,
    nullable, choices, required, default, doc, positional, keyword}]}``. ``hints`` are resolved
    annotations (``typing.get_type_hints``) when the caller could get them.
    """
    if signature is None:
        return {"known": False, "extra_args": True, "extra_kwargs": True, "params": []}
    docs = _docs(doc)
    params = []
    extra_args = extra_kwargs = False
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            extra_args = True
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra_kwargs = True
            continue
        annotation = (hints or {}).get(param.name, param.annotation)
        kind, nullable, choices = _type_of(annotation)
        has_default = param.default is not inspect.Parameter.empty
        if kind == "json" and has_default and param.default is not None:
            kind = _default_kind(param.default)
        if has_default and param.default is None:
            nullable = True
        params.append({
            "name": param.name,
            "type": kind,
            "nullable": nullable,
            "choices": [_json_ready(c) for c in choices] if choices is not None else None,
            "required": not has_default,
            "default": _json_ready(param.default) if has_default else None,
            "has_default": has_default,
            "doc": docs.get(param.name, ""),
            "positional": param.kind in POSITIONAL,
            "keyword": param.kind is not inspect.Parameter.POSITIONAL_ONLY,
        })
    return {"known": True, "extra_args": extra_args, "extra_kwargs": extra_kwargs,
            "params": params}


# -- server-side checks of posted values ----------------------------------------------------------


def _fits(kind: str, value: Any, choices: list | None) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind in ("date", "datetime"):
        if not isinstance(value, str):
            return False
        try:
            (dt.date if kind == "date" else dt.datetime).fromisoformat(value)
        except ValueError:
            return False
        return True
    if kind == "list":
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "choice":
        return value in (choices or [])
    return True


def value_problems(description: dict, args: list, kwargs: dict,
                   receives_parent: bool = False) -> list[tuple[str, str, Any, list | None]]:
    """``[(parameter, expected type, value, choices)]`` for values that do not fit their type.

    Positional values are matched to parameters in order (after the previous result when
    ``receives_parent``); only parameters with a known type are checked.
    """
    params = description.get("params", [])
    by_name = {p["name"]: p for p in params}
    positional = [p for p in params if p["positional"]][1 if receives_parent else 0:]
    given = list(zip(positional, args, strict=False))
    given += [(by_name[name], value) for name, value in kwargs.items() if name in by_name]
    out = []
    for param, value in given:
        if param["type"] == "json" or (value is None and param["nullable"]):
            continue
        if not _fits(param["type"], value, param["choices"]):
            out.append((param["name"], param["type"], value, param["choices"]))
    return out
