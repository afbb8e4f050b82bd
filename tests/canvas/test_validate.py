from __future__ import annotations

import inspect
from typing import Any

import pytest

from task_admin.canvas import Chain, Chord, Group, Node, Options, Problem, Task, validate
from task_admin.canvas.validate import signature_text


def suma(a, b):
    return a + b


def total(numbers, *, scale: int = 1) -> int:
    return sum(numbers) * scale


def noargs():
    return 1


TASKS: dict[str, inspect.Signature | None] = {
    "proj.suma": inspect.signature(suma),
    "proj.total": inspect.signature(total),
    "proj.noargs": inspect.signature(noargs),
    "proj.opaque": None,
}


def s(*args: object, **kwargs: object) -> Task:
    return Task("proj.suma", args, kwargs)


def si(*args: object) -> Task:
    return Task("proj.suma", args, immutable=True)


def check(root: Node, **kwargs: Any) -> list[str]:
    return [str(p) for p in validate(root, tasks=TASKS, **kwargs)]


def test_problem_str_and_ref() -> None:
    problem = Problem("root.1", "boom", "node:3")
    assert str(problem) == "root.1: boom"
    [found] = validate(Task("nope", ref="node:9"), tasks=TASKS)
    assert found.ref == "node:9"


def test_signature_text() -> None:
    assert signature_text("suma", inspect.signature(suma)) == "suma(a, b)"
    assert signature_text("total", inspect.signature(total)) == "total(numbers, *, scale=1)"
    assert signature_text("x", None) == "x(...)"


# -- the tutorial cases ------------------------------------------------------------------


def test_group_ok() -> None:
    assert check(Group((s(2, 2), s(4, 4)))) == []


def test_chain_second_step_counts_parent() -> None:
    assert check(Chain((s(2, 2), s(4)))) == []


def test_chain_too_many_args_because_of_parent() -> None:
    assert check(Chain((s(2, 2), s(4, 4)))) == [
        "root.1: proj.suma(a, b) cannot take these arguments: too many positional arguments"
        " (counting the previous result passed as the first argument)"
    ]


def test_chain_immutable_step_ignores_parent() -> None:
    assert check(Chain((s(2, 2), si(4, 4)))) == []


def test_chord_body_gets_header_results() -> None:
    assert check(Chord((s(2, 2), s(4, 4)), s(10))) == []


def test_chord_body_missing_argument() -> None:
    assert check(Chord((s(2, 2), s(4, 4)), s())) == [
        "root.body: proj.suma(a, b) cannot take these arguments: missing a required argument:"
        " 'b' (counting the list of header results passed as the first argument)"
    ]


def test_missing_argument_without_parent_has_no_note() -> None:
    assert check(s(1)) == [
        "root: proj.suma(a, b) cannot take these arguments: missing a required argument: 'b'"
    ]


def test_kwargs_are_bound() -> None:
    assert check(Chord((s(1, 1),), Task("proj.total", kwargs={"scale": 2}))) == []
    assert check(Task("proj.total", ([1],), {"factor": 2})) == [
        "root: proj.total(numbers, *, scale=1) has no parameter 'factor'"
        " (its keyword parameters: numbers, scale)"
    ]
    assert check(s(1, b=2)) == []


def test_a_misspelt_keyword_is_named_not_the_parameter_it_was_meant_for() -> None:
    """Python's bind() would say "missing a required argument: 'b'" first."""
    assert check(s(1, bb=2, c=3)) == [
        "root: proj.suma(a, b) has no parameter 'bb', 'c' (its keyword parameters: a, b)"
    ]


def test_unknown_task_skips_arity() -> None:
    assert check(Chain((s(1, 1), Task("proj.evil", (1, 2, 3))))) == [
        "root.1: unknown or disallowed task 'proj.evil'"
    ]


def test_opaque_signature_skips_arity() -> None:
    assert check(Chain((s(1, 1), Task("proj.opaque", (1, 2, 3))))) == []


# -- parent result propagation -----------------------------------------------------------


def test_group_inside_chain_passes_parent_to_each_member() -> None:
    tree = Chain((s(1, 1), Group((s(2), s(3, 3), si(4, 4)))))
    assert check(tree) == [
        "root.1.1: proj.suma(a, b) cannot take these arguments: too many positional arguments"
        " (counting the previous result passed as the first argument)"
    ]


def test_first_step_of_nested_chain_inherits_parent() -> None:
    # Only the nested chain's first step gets the outer previous result.
    assert check(Chain((s(1, 1), Chain((s(2), s(3)))))) == []
    assert check(Chain((s(1, 1), Chain((s(2, 2), s(3)))))) != []


def test_chord_in_chain_header_gets_parent() -> None:
    assert check(Chain((s(1, 1), Chord((s(2), s(3)), s(4))))) == []
    problems = check(Chain((s(1, 1), Chord((s(2, 2),), s(4)))))
    assert [p.split(":")[0] for p in problems] == ["root.1.header.0"]


def test_chord_body_chain_and_group() -> None:
    body_chain = Chord((s(1, 1),), Chain((Task("proj.total"), s(5))))
    assert check(body_chain) == []
    body_group = Chord((s(1, 1),), Group((Task("proj.total"), Task("proj.noargs"))))
    assert check(body_group) == [
        "root.body.1: proj.noargs() cannot take these arguments: too many positional arguments"
        " (counting the list of header results passed as the first argument)"
    ]


def test_root_receives_parent() -> None:
    assert check(s(4), root_receives_parent=True) == []
    assert check(s(4)) != []


# -- structure ---------------------------------------------------------------------------


def test_empty_containers() -> None:
    assert check(Group(())) == ["root: empty group"]
    assert check(Chain((s(1, 1), Chain(())))) == ["root.1: empty chain"]
    assert check(Chord((), s(1))) == ["root: chord without header tasks"]


def test_depth_limit() -> None:
    node: Task | Chain = s(1, 1)
    for _ in range(5):
        node = Chain((node,))
    assert check(node, max_depth=5) == []
    assert check(node, max_depth=4) == ["root.0.0.0.0.0: nested deeper than the limit of 4 levels"]


def test_very_deep_tree_does_not_recurse() -> None:
    node: Task | Chain = s(1, 1)
    for _ in range(5000):
        node = Chain((node,))
    problems = check(node, max_nodes=10_000)
    assert len(problems) == 1
    assert "nested deeper than the limit of 20 levels" in problems[0]


def test_node_limit() -> None:
    tree = Group(tuple(s(i, i) for i in range(10)))
    assert check(tree, max_nodes=11) == []
    assert check(tree, max_nodes=10) == ["root: 11 nodes, more than the limit of 10"]


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (s({1, 2}, 3), "args[0] is a set, which is not JSON-serialisable"),
        (s(float("nan"), 3), "args[0] is nan, which is not valid JSON"),
        (s(1, b=float("inf")), "kwargs['b'] is inf, which is not valid JSON"),
        (s(1, b={2: "x"}), "kwargs['b'] has a non-string key 2"),
        (s(1, b=[object()]), "kwargs['b'][0] is a object, which is not JSON-serialisable"),
    ],
)
def test_non_json_values(task: Task, message: str) -> None:
    assert check(task) == [f"root: {message}"]


def test_value_size_limit() -> None:
    assert check(s("x" * 100, 1), max_value_bytes=200) == []
    [problem] = check(s("x" * 300, 1), max_value_bytes=200)
    assert problem.endswith("bytes as JSON, more than the limit of 200")


# -- options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (Options(countdown=-1), "countdown must be a number of seconds >= 0"),
        (Options(countdown=True), "countdown must be"),
        (Options(eta="tomorrow"), "eta must be an ISO 8601"),
        (Options(eta="2030-01-01T00:00:00", countdown=5), "set either countdown or eta"),
        (Options(expires="soon"), "expires must be an ISO 8601"),
        (Options(expires=-5), "expires must be seconds >= 0"),
        (Options(queue=""), "queue must be a non-empty string"),
        (Options(priority=256), "priority must be an integer from 0 to 255"),
        (Options(priority=-1), "priority must be an integer from 0 to 255"),
        (Options(priority=True), "priority must be"),
        (Options(retry="yes"), "retry must be true or false"),  # type: ignore[arg-type]
        (Options(retry_policy={"max_retries": -1}), "retry_policy max_retries must be"),
        (Options(retry_policy={"backoff": 1}), "unknown retry_policy key 'backoff'"),
        (Options(time_limit=0), "time_limit must be a number of seconds > 0"),
        (Options(soft_time_limit=-1), "soft_time_limit must be a number of seconds > 0"),
        (Options(soft_time_limit=10, time_limit=10), "soft_time_limit must be lower"),
    ],
)
def test_option_problems(options: Options, fragment: str) -> None:
    problems = check(Task("proj.suma", (1, 2), options=options))
    assert len(problems) == 1
    assert fragment in problems[0]
    assert problems[0].startswith("root: ")


def test_good_options() -> None:
    options = Options(
        countdown=0,
        expires="2030-01-01T00:00:00+02:00",
        queue="q",
        priority=255,
        retry=False,
        retry_policy={"max_retries": 3, "interval_start": 0, "interval_step": 0.2},
        soft_time_limit=5,
        time_limit=10,
    )
    assert check(Task("proj.suma", (1, 2), options=options)) == []
    assert check(Task("proj.suma", (1, 2), options=Options(eta="2030-01-01", expires=60))) == []


def test_all_problems_are_reported_at_once() -> None:
    tree = Chain(
        (
            Task("nope"),
            Group(()),
            Task("proj.suma", (1, 2), options=Options(priority=900)),
        )
    )
    assert [p.split(":")[0] for p in check(tree)] == ["root.0", "root.1", "root.2", "root.2"]
