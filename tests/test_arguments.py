"""Parameters as typed fields: types from annotations and defaults, docs, server-side checks."""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import typing
from typing import Literal, Optional

from task_admin.arguments import describe, value_problems


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def typed(count: int, ratio: float, flag: bool, name: str, day: dt.date, at: dt.datetime,
          items: list[int], extra: dict[str, int], maybe: Optional[int],  # noqa: UP045
          pick: Literal["a", "b"],
          colour: Colour, either: int | None = None, *rest, untyped=3, **more):
    """Everything a form may need.

    :param count: how many.
    :param name: who.
    """


def google(a, b="x"):
    """Google style.

    Args:
        a (int): the first.
        b: the second.
    """


def by_name(params):
    return {p["name"]: p for p in params}


def test_types_choices_and_docs_from_annotations():
    found = describe(inspect.signature(typed), typed.__doc__, typing.get_type_hints(typed))
    params = by_name(found["params"])
    assert {n: p["type"] for n, p in params.items()} == {
        "count": "int", "ratio": "float", "flag": "bool", "name": "str", "day": "date",
        "at": "datetime", "items": "list", "extra": "dict", "maybe": "int", "pick": "choice",
        "colour": "choice", "either": "int", "untyped": "int",
    }
    assert params["maybe"]["nullable"] and params["either"]["nullable"]
    assert not params["count"]["nullable"]
    assert params["pick"]["choices"] == ["a", "b"]
    assert params["colour"]["choices"] == ["red", "blue"]
    assert params["count"]["doc"] == "how many." and params["name"]["doc"] == "who."
    assert params["untyped"] == {**params["untyped"], "required": False, "default": 3,
                                 "positional": False, "keyword": True}
    assert found["extra_args"] and found["extra_kwargs"]


def test_text_annotations_are_read_not_evaluated():
    def task(a: "int", b: "Optional[str]" = None,  # noqa: UP037, UP045
             c: "Literal['x', 'y']" = "x",  # noqa: UP037
             d: "list[int] | None" = None, e: "SomethingUnknown" = None):  # noqa: UP037, F821
        pass

    params = by_name(describe(inspect.signature(task))["params"])
    assert [params[n]["type"] for n in "abcde"] == ["int", "str", "choice", "list", "json"]
    assert params["c"]["choices"] == ["x", "y"] and params["d"]["nullable"]


def test_google_docstrings_and_defaults_type_untyped_parameters():
    params = by_name(describe(inspect.signature(google), google.__doc__)["params"])
    assert params["a"] == {**params["a"], "type": "json", "doc": "the first.", "required": True}
    assert params["b"] == {**params["b"], "type": "str", "doc": "the second.", "default": "x"}


def test_unknown_signature():
    assert describe(None) == {"known": False, "extra_args": True, "extra_kwargs": True,
                              "params": []}


def test_values_that_do_not_fit_their_type_are_named():
    found = describe(inspect.signature(typed), "", typing.get_type_hints(typed))
    problems = value_problems(found, [1, "x"], {"day": "2026-13-01", "pick": "c", "maybe": None,
                                                "flag": True, "colour": "red"})
    assert [(name, kind) for name, kind, _value, _choices in problems] == [
        ("ratio", "float"), ("day", "date"), ("pick", "choice"),
    ]
    # A chain step: the first parameter receives the previous result.
    assert value_problems(found, [2.5], {}, receives_parent=True) == []
    assert value_problems(found, [2.5], {}) == [("count", "int", 2.5, None)]
