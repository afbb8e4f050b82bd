from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from task_admin.canvas import (
    SPEC_VERSION,
    Chain,
    Chord,
    Group,
    Options,
    SpecError,
    Task,
    count_leaves,
    dumps,
    from_dict,
    leaves,
    loads,
    node_at,
    replace_succeeded,
    to_dict,
    walk,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def deep_tree() -> Chord:
    """A chord whose header holds a chain and a group, and whose body is a chain."""
    return Chord(
        header=(
            Chain(
                (
                    Task("proj.suma", (1, 2), ref="node:2"),
                    Task(
                        "proj.suma",
                        (3,),
                        options=Options(countdown=1.5, queue="fast", priority=3),
                        ref="node:3",
                    ),
                ),
                ref="node:1",
                label="first half",
            ),
            Group(
                (
                    Task("proj.mul", (2,), {"factor": 2.5, "tags": ["a", "b"]}),
                    Task(
                        "proj.mul",
                        kwargs={"nested": {"x": [1, None, True]}},
                        immutable=True,
                        options=Options(
                            eta="2030-01-01T10:00:00+00:00",
                            expires=3600,
                            retry=True,
                            retry_policy={"max_retries": 3, "interval_start": 0},
                            soft_time_limit=10,
                            time_limit=20.5,
                        ),
                    ),
                )
            ),
        ),
        body=Chain(
            (
                Task("proj.total", label="sum all"),
                Task("proj.notify", kwargs={"who": "ops"}, options=Options(expires="2030-02-01")),
            )
        ),
        ref="node:0",
    )


def test_round_trip_dict_and_json() -> None:
    tree = deep_tree()
    assert from_dict(to_dict(tree)) == tree
    text = dumps(tree)
    assert loads(text) == tree
    assert dumps(loads(text)) == text
    # Parsed from the JSON text (not from our own dicts) it is still byte-identical.
    assert dumps(from_dict(json.loads(text))) == text


def test_dumps_is_stable_and_sorted() -> None:
    assert dumps(deep_tree()) == dumps(deep_tree())
    data = json.loads(dumps(deep_tree()))
    assert data["version"] == SPEC_VERSION
    assert list(data) == sorted(data)


def test_task_dict_shape() -> None:
    task = Task("proj.suma", (1, 2), {"c": 3}, Options(queue="q"), ref="node:7", label="add")
    assert to_dict(task) == {
        "version": 1,
        "root": {
            "type": "task",
            "task": "proj.suma",
            "args": [1, 2],
            "kwargs": {"c": 3},
            "options": {"queue": "q"},
            "immutable": False,
            "label": "add",
            "ref": "node:7",
        },
    }
    # Empty options, label and ref are left out.
    assert to_dict(Task("x"))["root"] == {
        "type": "task",
        "task": "x",
        "args": [],
        "kwargs": {},
        "immutable": False,
    }


def test_containers_dict_shape() -> None:
    tree = Chord((Group((Task("a"),)),), Chain((Task("b"),), label="tail"))
    assert to_dict(tree)["root"] == {
        "type": "chord",
        "header": [{"type": "group", "tasks": [to_dict(Task("a"))["root"]]}],
        "body": {"type": "chain", "tasks": [to_dict(Task("b"))["root"]], "label": "tail"},
    }


def test_lists_are_normalised_to_tuples() -> None:
    assert Task("a", [1, 2]) == Task("a", (1, 2))  # type: ignore[arg-type]
    assert Group([Task("a")]) == Group((Task("a"),))  # type: ignore[arg-type]
    assert Chord([Task("a")], Task("b")).header == (Task("a"),)  # type: ignore[arg-type]


def test_options_to_apply_async() -> None:
    options = Options(
        countdown=2,
        eta="2030-01-01T10:00:00+00:00",
        expires="2030-01-02T10:00:00Z",
        queue="q",
        retry_policy={"max_retries": 1},
    )
    assert options.to_apply_async() == {
        "countdown": 2,
        "eta": datetime(2030, 1, 1, 10, tzinfo=UTC),
        "expires": datetime(2030, 1, 2, 10, tzinfo=UTC),
        "queue": "q",
        "retry_policy": {"max_retries": 1},
    }
    assert Options(expires=30).to_apply_async() == {"expires": 30}
    assert Options().to_apply_async() == {}


def _task(**extra: object) -> dict[str, object]:
    return {"type": "task", "task": "proj.suma", **extra}


def _spec(root: object) -> dict[str, object]:
    return {"version": 1, "root": root}


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ([], "root", "must be an object"),
        ({"root": _task()}, "root", "missing spec 'version'"),
        (_spec(_task()) | {"version": 2}, "root", "unsupported spec version 2"),
        (_spec(_task()) | {"version": "1"}, "root", "unsupported spec version"),
        (_spec(_task()) | {"version": True}, "root", "unsupported spec version"),
        ({"version": 1}, "root", "missing 'root'"),
        (_spec(_task()) | {"extra": 1}, "root", "unknown top-level key"),
        (_spec("task"), "root", "must be an object"),
        (_spec({"type": "map"}), "root", "unknown node type 'map'"),
        (_spec({"tasks": []}), "root", "unknown node type None"),
        (_spec({"type": "group", "tasks": [_task(), {"type": "bogus"}]}), "root.1", "unknown"),
        (_spec({"type": "chain"}), "root", "missing 'tasks'"),
        (_spec({"type": "chain", "tasks": {}}), "root", "'tasks' must be a list"),
        (_spec({"type": "chord", "header": [_task()]}), "root", "missing 'body'"),
        (_spec({"type": "chord", "body": _task()}), "root", "missing 'header'"),
        (_spec({"type": "chord", "header": [_task(), 3], "body": _task()}), "root.header.1", ""),
        (_spec({"type": "chord", "header": [], "body": {"type": "x"}}), "root.body", "unknown"),
        (_spec(_task(args="ab")), "root", "'args' must be a list"),
        (_spec(_task(args={"a": 1})), "root", "'args' must be a list"),
        (_spec(_task(kwargs=[1])), "root", "'kwargs' must be an object"),
        (_spec({"type": "task", "task": 3}), "root", "'task' must be a non-empty string"),
        (_spec({"type": "task"}), "root", "'task' must be a non-empty string"),
        (_spec(_task(task="")), "root", "'task' must be a non-empty string"),
        (_spec(_task(immutable="yes")), "root", "'immutable' must be true or false"),
        (_spec(_task(label=5)), "root", "'label' must be a string"),
        (_spec(_task(ref=5)), "root", "'ref' must be a string or null"),
        (_spec(_task(queue="q")), "root", "unknown key(s) for a task: queue"),
        (_spec(_task(options=[])), "root", "'options' must be an object"),
        (_spec(_task(options={"delay": 1})), "root", "unknown option(s): delay"),
        (_spec(_task(options={"countdown": True})), "root", "option 'countdown' must be a number"),
        (_spec(_task(options={"countdown": "5"})), "root", "option 'countdown' must be a number"),
        (_spec(_task(options={"priority": 1.5})), "root", "option 'priority' must be an integer"),
        (_spec(_task(options={"priority": False})), "root", "option 'priority'"),
        (_spec(_task(options={"eta": 5})), "root", "option 'eta' must be an ISO 8601 string"),
        (_spec(_task(options={"expires": [1]})), "root", "option 'expires'"),
        (_spec(_task(options={"queue": 1})), "root", "option 'queue' must be a string"),
        (_spec(_task(options={"retry": 1})), "root", "option 'retry' must be true or false"),
        (_spec(_task(options={"time_limit": True})), "root", "option 'time_limit'"),
        (_spec(_task(options={"retry_policy": 3})), "root", "option 'retry_policy'"),
        (_spec(_task(options={"retry_policy": {"x": 1}})), "root", "unknown retry_policy key"),
        (_spec(_task(options={"retry_policy": {"max_retries": "3"}})), "root", "retry_policy"),
        (_spec(_task(args=[{1, 2}])), "root", "args[0] is a set"),
        (_spec(_task(args=[float("nan")])), "root", "args[0] is nan"),
        (_spec(_task(kwargs={"a": {1: "x"}})), "root", "non-string key 1"),
        (
            _spec(
                {"type": "chain", "tasks": [_task(), {"type": "group", "tasks": [_task(args=1)]}]}
            ),
            "root.1.0",
            "'args' must be a list",
        ),
    ],
)
def test_malformed_specs(data: object, path: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        from_dict(data)
    assert info.value.path == path
    assert fragment in info.value.message
    assert str(info.value) == f"{path}: {info.value.message}"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text",
    ["{", '{"version": 1, "root": {"type": "task", "task": "a", "args": [NaN]}}', "[" * 100_000],
)
def test_loads_refuses_bad_json(text: str) -> None:
    with pytest.raises(SpecError) as info:
        loads(text)
    assert info.value.path == "root"


def test_excessive_nesting_is_a_spec_error() -> None:
    node: dict[str, object] = _task()
    for _ in range(300):
        node = {"type": "chain", "tasks": [node]}
    with pytest.raises(SpecError, match="nested more than"):
        from_dict(_spec(node))


def test_walk_paths_and_depths() -> None:
    assert [(path, depth) for path, _, depth in walk(deep_tree())] == [
        ("root", 0),
        ("root.header.0", 1),
        ("root.header.0.0", 2),
        ("root.header.0.1", 2),
        ("root.header.1", 1),
        ("root.header.1.0", 2),
        ("root.header.1.1", 2),
        ("root.body", 1),
        ("root.body.0", 2),
        ("root.body.1", 2),
    ]
    assert [path for path, _, _ in walk(Task("a"))] == ["root"]


def test_leaves_and_node_at() -> None:
    tree = deep_tree()
    assert [(path, task.task) for path, task in leaves(tree)] == [
        ("root.header.0.0", "proj.suma"),
        ("root.header.0.1", "proj.suma"),
        ("root.header.1.0", "proj.mul"),
        ("root.header.1.1", "proj.mul"),
        ("root.body.0", "proj.total"),
        ("root.body.1", "proj.notify"),
    ]
    assert count_leaves(tree) == 6
    assert node_at(tree, "root.header.0").ref == "node:1"
    assert node_at(tree, "root") is tree
    with pytest.raises(KeyError):
        node_at(tree, "root.9")


def test_replace_succeeded() -> None:
    tree = deep_tree()
    replayed = replace_succeeded(tree, {"root.header.0.0": 3, "root.header.1.1": [1, 2]})
    assert node_at(replayed, "root.header.0.0") == Task(
        "task_admin.replay",
        (3,),
        immutable=True,
        label="kept result of root.header.0.0",
        ref="node:2",
    )
    kept = node_at(replayed, "root.header.1.1")
    assert isinstance(kept, Task)
    assert kept.args == ([1, 2],)
    assert kept.immutable
    assert kept.ref is None
    # Everything else, including containers and their refs, is unchanged.
    assert [path for path, _, _ in walk(replayed)] == [path for path, _, _ in walk(tree)]
    for path, node, _ in walk(tree):
        if path not in {"root.header.0.0", "root.header.1.1"} and isinstance(node, Task):
            assert node_at(replayed, path) == node
    assert node_at(replayed, "root.header.0").ref == "node:1"
    assert replace_succeeded(tree, {}) == tree
    # The replayed spec is still a valid, serialisable spec.
    assert loads(dumps(replayed)) == replayed


def test_replace_succeeded_custom_task_and_unknown_path() -> None:
    replayed = replace_succeeded(Task("a", ref="r"), {"root": None}, replay_task="x.keep")
    assert replayed == Task("x.keep", (None,), immutable=True, label="kept result of root", ref="r")
    with pytest.raises(SpecError) as info:
        replace_succeeded(deep_tree(), {"root.header.0": 1})
    assert info.value.path == "root.header.0"


def test_importing_spec_and_validate_does_not_import_django_or_celery() -> None:
    code = (
        "import sys, task_admin.canvas, task_admin.canvas.spec, task_admin.canvas.validate\n"
        "import task_admin.canvas.code\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'celery'))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
