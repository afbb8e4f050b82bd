from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import celery
import pytest
from celery.canvas import Signature, _chain, _chord, group

from task_admin.canvas import Chain, Chord, Group, Node, Options, Task, leaves
from task_admin.canvas.build import to_python, to_signature

# In-memory broker and backend: nothing leaves the process, and the cache backend lets
# chains containing chords be prepared (Celery refuses without a chord-capable backend).
app = celery.Celery("t", set_as_current=False, broker="memory://", backend="cache+memory://")


# Not shared (``app.task`` shares by default): a shared task joins every Celery app finalized
# after this import, the project's too, where "suma" would then be ambiguous.
@app.task(name="proj.suma", shared=False)
def suma(a, b):
    return a + b


def s(*args: Any, **kwargs: Any) -> Task:
    return Task("proj.suma", args, kwargs)


GROUP = Group((s(2, 2), s(4, 4)))
CHAIN = Chain((s(2, 2), s(4)))
CHORD = Chord((s(2, 2), s(4, 4)), s(10))
NESTED = Chain(
    (
        s(1, 1),
        Chord(
            (Chain((s(1), s(2))), Group((s(3), s(4)))),
            Chain((Task("proj.suma", (5,), immutable=True), s(6))),
        ),
        Group((s(7),)),  # Celery unrolls single-task groups in chains
        Group((s(8), s(9))),  # upgraded to a chord with the next step by Celery
        s(10),
    )
)
ALL = [GROUP, CHAIN, CHORD, NESTED]


def counter() -> Callable[[], str]:
    numbers = itertools.count()
    return lambda: f"id-{next(numbers)}"


def result_ids(result: Any) -> Iterator[str]:
    """Task ids in a frozen result tree (``GroupResult.results`` and ``.parent`` links)."""
    seen: set[int] = set()
    stack = [result]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        results = getattr(node, "results", None)
        if results is not None:
            stack.extend(results)
        else:
            yield node.id
        stack.append(node.parent)


def task_signatures(sig: Signature) -> Iterator[Signature]:
    """The plain task signatures inside a canvas."""
    if isinstance(sig, _chord):
        # ``chord.tasks`` is the header's list of signatures.
        for child in sig.tasks:
            yield from task_signatures(child)
        yield from task_signatures(sig.body)
    elif isinstance(sig, group | _chain):
        for child in sig.tasks:
            yield from task_signatures(child)
    else:
        yield sig


def test_types() -> None:
    assert isinstance(to_signature(GROUP, app=app)[0], group)
    assert isinstance(to_signature(CHAIN, app=app)[0], _chain)
    chord_sig = to_signature(CHORD, app=app)[0]
    assert isinstance(chord_sig, _chord)
    assert isinstance(chord_sig, celery.chord)
    assert chord_sig.body.task == "proj.suma"
    assert [t.args for t in chord_sig.tasks] == [(2, 2), (4, 4)]
    assert isinstance(to_signature(Task("proj.suma", (1, 2)), app=app)[0], Signature)


@pytest.mark.parametrize("tree", ALL, ids=["group", "chain", "chord", "nested"])
def test_ids_map_every_leaf(tree: Node) -> None:
    sig, ids = to_signature(tree, app=app, new_id=counter())
    assert list(ids) == [path for path, _ in leaves(tree)]
    assert list(ids.values()) == [f"id-{i}" for i in range(len(ids))]
    # Same order: leaves in pre-order and signatures in canvas order.
    assert [t.id for t in task_signatures(sig)] == list(ids.values())
    assert [t.args for t in task_signatures(sig)] == [t.args for _, t in leaves(tree)]


@pytest.mark.parametrize("tree", ALL, ids=["group", "chain", "chord", "nested"])
def test_freeze_keeps_preassigned_ids(tree: Node) -> None:
    sig, ids = to_signature(tree, app=app)
    task_ids = set(result_ids(sig.freeze()))
    assert set(ids.values()) <= task_ids
    # Anything else in the result tree would be a task we do not track.
    assert task_ids == set(ids.values())


@pytest.mark.parametrize("tree", ALL, ids=["group", "chain", "chord", "nested"])
def test_published_messages_use_preassigned_ids(
    tree: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Apply without freezing first and capture (not send) the messages Celery builds."""
    seen: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            if "task" in value and "task_id" in value.get("options", {}):
                seen.append(value["options"]["task_id"])
            for item in value.values():
                collect(item)
        elif isinstance(value, list | tuple):
            for item in value:
                collect(item)

    def capture(producer: Any, name: str, message: Any, **kwargs: Any) -> None:
        seen.append(message.headers["id"])
        collect(message.body)  # later chain steps and chord bodies travel in the body

    monkeypatch.setattr(app.amqp, "send_task_message", capture)
    sig, ids = to_signature(tree, app=app)
    sig.apply_async()
    assert set(ids.values()) <= set(seen)


def test_immutable_flag() -> None:
    tree = Chain((s(1, 1), Task("proj.suma", (2, 2), immutable=True)))
    sig, _ = to_signature(tree, app=app)
    first, second = sig.tasks
    assert not first.immutable
    assert second.immutable


def test_options_land_on_signature() -> None:
    options = Options(
        countdown=3,
        queue="slow",
        priority=7,
        soft_time_limit=5,
        time_limit=10,
        eta=None,
        expires="2030-01-01T00:00:00+00:00",
        retry=True,
        retry_policy={"max_retries": 2},
    )
    sig, ids = to_signature(Group((Task("proj.suma", (1, 2), options=options),)), app=app)
    [task] = sig.tasks
    assert task.options == {
        "countdown": 3,
        "queue": "slow",
        "priority": 7,
        "soft_time_limit": 5,
        "time_limit": 10,
        "expires": datetime(2030, 1, 1, tzinfo=UTC),
        "retry": True,
        "retry_policy": {"max_retries": 2},
        "task_id": ids["root.0"],
    }
    eta_sig, _ = to_signature(
        Task("proj.suma", (1, 2), options=Options(eta="2030-01-01T10:00:00+00:00")), app=app
    )
    assert eta_sig.options["eta"] == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_overrides_merge_into_kwargs() -> None:
    tree = Chain((Task("proj.suma", (1,), {"b": 2, "c": 3}), s(4)))
    sig, _ = to_signature(tree, app=app, overrides={"root.0": {"b": 20, "d": 5}})
    assert sig.tasks[0].kwargs == {"b": 20, "c": 3, "d": 5}
    assert sig.tasks[1].kwargs == {}
    # The spec itself is left alone.
    assert tree.tasks[0].kwargs == {"b": 2, "c": 3}  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"root\.9"):
        to_signature(tree, app=app, overrides={"root.9": {}})


def test_to_python_tutorial_cases() -> None:
    assert to_python(GROUP) == "group([suma.s(2, 2), suma.s(4, 4)])"
    assert to_python(CHAIN) == "chain(suma.s(2, 2), suma.s(4))"
    assert to_python(CHORD) == "chord([suma.s(2, 2), suma.s(4, 4)], suma.s(10))"


def test_to_python_details() -> None:
    task = Task(
        "proj.tasks.mail",
        ("a@b.c",),
        {"urgent": True, "cc": None, "class": "x"},
        Options(countdown=1, queue="x"),
        immutable=True,
    )
    assert to_python(task) == (
        "mail.si('a@b.c', urgent=True, cc=None, **{'class': 'x'}).set(countdown=1, queue='x')"
    )
    assert to_python(Task("odd-name", (1,))) == "signature('odd-name', args=(1,), kwargs={})"


def test_to_python_nested_is_indented_and_deterministic() -> None:
    text = to_python(NESTED)
    assert text == to_python(NESTED)
    assert text == (
        "chain(\n"
        "    suma.s(1, 1),\n"
        "    chord(\n"
        "        [\n"
        "            chain(suma.s(1), suma.s(2)),\n"
        "            group([suma.s(3), suma.s(4)]),\n"
        "        ],\n"
        "        chain(suma.si(5), suma.s(6)),\n"
        "    ),\n"
        "    group([suma.s(7)]),\n"
        "    group([suma.s(8), suma.s(9)]),\n"
        "    suma.s(10),\n"
        ")"
    )


def test_a_signature_owns_its_arguments() -> None:
    # A spec may be kept and started again (task_admin.spec_cache): a task run in process
    # (eager mode) that changes the list or dict it was given must not change the next run.
    task = Task("proj.extend", ([1, 2], {"deep": [3]}), {"seen": {"n": [4]}})
    sig, _ = to_signature(Group((task,)), app=app)
    [leaf] = sig.tasks
    leaf.args[0].append(99)
    leaf.args[1]["deep"].append(99)
    leaf.kwargs["seen"]["n"].append(99)
    assert task.args == ([1, 2], {"deep": [3]}) and task.kwargs == {"seen": {"n": [4]}}
