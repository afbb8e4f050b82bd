"""Canvas as code: parse (read, never run) and render, property-tested with hypothesis."""

from __future__ import annotations

import ast
import builtins
import contextlib
import inspect
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from task_admin.canvas import Chain, Chord, Group, Node, Options, Task, validate
from task_admin.canvas.code import (
    CodeError,
    make_resolver,
    parse,
    parse_located,
    render,
)
from task_admin.canvas.validate import warnings

# Two tasks share a short name, one name is a Python keyword, two are not importable names.
NAMES = [
    "proj.tasks.suma",
    "proj.tasks.sum_list",
    "proj.tasks.add",
    "other.tasks.add",
    "proj.tasks.group",
    "proj.tasks.class",
    "weird-name",
    "bare",
]
resolve = make_resolver(NAMES)
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def suma(a, b):
    return a + b


def sum_list(numbers):
    return sum(numbers)


SIGNATURES: dict[str, inspect.Signature | None] = {
    "proj.tasks.suma": inspect.signature(suma),
    "proj.tasks.sum_list": inspect.signature(sum_list),
}


def s(*args: Any, **kwargs: Any) -> Task:
    return Task("proj.tasks.suma", args, kwargs)


# -- strategies ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6,
)
numbers = st.integers(min_value=0, max_value=10**6) | st.floats(
    min_value=0, max_value=1e9, allow_nan=False
)
options = st.builds(
    Options,
    countdown=st.none() | numbers,
    eta=st.none() | st.just("2030-01-02T03:04:05+00:00"),
    expires=st.none() | numbers | st.just("2030-01-02T03:04:05"),
    queue=st.none() | st.text(min_size=1, max_size=6),
    priority=st.none() | st.integers(min_value=0, max_value=255),
    retry=st.none() | st.booleans(),
    retry_policy=st.none()
    | st.dictionaries(st.sampled_from(["max_retries", "interval_start", "interval_max"]),
                      numbers, max_size=2),
    soft_time_limit=st.none() | numbers,
    time_limit=st.none() | numbers,
)
tasks = st.builds(
    Task,
    task=st.sampled_from(NAMES),
    args=st.lists(json_values, max_size=3).map(tuple),
    kwargs=st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    options=options,
    immutable=st.booleans(),
)
trees = st.recursive(
    tasks,
    lambda inner: st.lists(inner, max_size=3).map(lambda xs: Group(tuple(xs)))
    | st.lists(inner, max_size=3).map(lambda xs: Chain(tuple(xs)))
    | st.builds(lambda h, b: Chord(tuple(h), b), st.lists(inner, max_size=3), inner),
    max_leaves=10,
)


# -- round trip -----------------------------------------------------------------------------


@EXAMPLES
@given(trees)
def test_render_then_parse_gives_the_same_tree(tree: Node) -> None:
    code = render(tree)
    assert parse(code, resolve) == tree, code


def test_rendered_code_runs_in_a_python_shell_with_the_tasks_imported() -> None:
    # The code's own import lines, checked for what they import (nothing is run here).
    tree = Chord((Task("proj.tasks.add"), Task("other.tasks.add", (1,))), Task("weird-name"))
    code = render(tree, notes=["a note"])
    assert code.splitlines()[:4] == [
        "# a note",
        "from celery import chord, signature",
        "from other.tasks import add",
        "from proj.tasks import add as add_2",
    ]
    assert "chord([add_2.s(), add.s(1)], signature('weird-name', args=(), kwargs={}))" in code
    assert parse(code, resolve) == tree


def test_render_splits_wide_trees_over_lines_and_reads_back() -> None:
    tree = Chain(tuple(s(i, i + 1, extra="x" * 20) for i in range(4)))
    code = render(tree)
    assert max(len(line) for line in code.splitlines()) <= 79
    assert parse(code, resolve) == tree


# -- the tutorial ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("chain(suma.s(1, 2), suma.s(5))", Chain((s(1, 2), s(5)))),
        ("group(suma.s(1, 3), suma.s(4, 4))", Group((s(1, 3), s(4, 4)))),
        ("group([suma.s(1, 3), suma.s(4, 4)])", Group((s(1, 3), s(4, 4)))),
        ("chord([suma.s(1, 1), suma.s(2, 2)], suma.s(10))", Chord((s(1, 1), s(2, 2)), s(10))),
        ("chord(group(suma.s(1, 1)), body=suma.s(10))", Chord((s(1, 1),), s(10))),
        ("chord(body=suma.s(10), header=[suma.s(1, 1)])", Chord((s(1, 1),), s(10))),
        ("suma.s(1, 2) | suma.s(5)", Chain((s(1, 2), s(5)))),
        ("chain(suma.s(2, 2) | suma.s(4))", Chain((s(2, 2), s(4)))),  # the demo's description
        ("suma.s(1, 2) | suma.s(5) | suma.s(6)", Chain((s(1, 2), s(5), s(6)))),
        ("proj.tasks.suma.s(1, b=2)", s(1, b=2)),
        ("signature('proj.tasks.suma', args=[1], kwargs={'b': 2})", s(1, b=2)),
        ("signature('proj.tasks.suma', (1, 2), immutable=True)",
         Task("proj.tasks.suma", (1, 2), immutable=True)),
        ("from proj.tasks import suma as plus\nplus.si(1, 2)",
         Task("proj.tasks.suma", (1, 2), immutable=True)),
        ("suma.s(1, 2).set(countdown=10, queue='math').set(priority=3)",
         Task("proj.tasks.suma", (1, 2), options=Options(countdown=10, queue="math", priority=3))),
        ("suma.s((1, (2,)), -3, +4.5)", s([1, [2]], -3, 4.5)),
    ],
)
def test_expressions_read_as_celery_means_them(text: str, tree: Node) -> None:
    assert parse(text, resolve) == tree


def test_group_piped_into_a_task_is_read_as_an_explicit_chord() -> None:
    # Celery turns ``group | task`` into a chord when it sends it: the tree says so.
    parsed = parse_located("group(suma.s(1, 1), suma.s(2, 2)) | sum_list.s()", resolve)
    assert parsed.spec == Chord((s(1, 1), s(2, 2)), Task("proj.tasks.sum_list"))
    assert parsed.notes == [
        "line 1, column 1: a group followed by | is read as a chord with the group as its "
        "header, which is what Celery sends"
    ]
    assert parse_located("suma.s(1) | suma.s(2)", resolve).notes == []
    # ... also at the end of a chain, and a task piped after a chord follows its body.
    assert parse("suma.s(1, 1) | group(suma.s(2), suma.s(3)) | sum_list.s()", resolve) == Chain(
        (s(1, 1), Chord((s(2), s(3)), Task("proj.tasks.sum_list")))
    )
    assert parse("chord([suma.s(1, 1)], sum_list.s()) | suma.s(1)", resolve) == Chord(
        (s(1, 1),), Chain((Task("proj.tasks.sum_list"), s(1)))
    )


def test_written_chains_are_read_as_written() -> None:
    # Only ``|`` flattens (as Celery's operator does): chain(...) is the tree as written.
    assert parse("chain(chain(suma.s(1, 1), suma.s(2)), suma.s(3))", resolve) == Chain(
        (Chain((s(1, 1), s(2))), s(3))
    )


def test_positions_of_nodes_place_validation_problems_in_the_text() -> None:
    parsed = parse_located("chain(\n    suma.s(1, 2),\n    suma.s(1, 2, 3),\n)", resolve)
    problems = validate(parsed.spec, tasks=SIGNATURES)
    assert [parsed.locate(p) for p in problems] == [
        "line 3, column 5: root.1: proj.tasks.suma(a, b) cannot take these arguments: too many "
        "positional arguments (counting the previous result passed as the first argument)"
    ]


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("nosuch.s(1)", "unknown or disallowed task 'nosuch'", 1, 1),
        ("group(suma.s(1, 1), proj.tasks.secret.s())",
         "unknown or disallowed task 'proj.tasks.secret'", 1, 21),
        ("add.s(1)", "'add' is ambiguous: it may be other.tasks.add, proj.tasks.add", 1, 1),
        ("__import__('os').system('touch /tmp/x')", "__import__() is not allowed", 1, 1),
        ("suma.s(__import__('os'))", "__import__() is not allowed", 1, 8),
        ("suma.s(eval('1'))", "eval() is not allowed", 1, 8),
        ("suma.s(lambda: 1)", "lambdas are not allowed", 1, 8),
        ("group([suma.s(i, i) for i in range(3)])", "comprehensions are not allowed", 1, 7),
        ("suma.s({k: 1 for k in 'ab'})", "comprehensions are not allowed", 1, 8),
        ("suma.s(f'{1}')", "f-strings are not allowed", 1, 8),
        ("suma.s(os.environ)", "attribute .environ is not allowed in an argument", 1, 8),
        ("suma.s(HOME, 2)", "the name 'HOME' is not a literal", 1, 8),
        ("suma.s(1, 2).delay()", ".delay() would run the canvas", 1, 13),
        ("suma.s(1, 2).apply_async()", ".apply_async() would run the canvas", 1, 13),
        ("suma.s(1, 2).__class__.__bases__", "attribute .__bases__ is not allowed", 1, 23),
        ("suma.s(1).set(link=1)", "unknown option 'link'", 1, 15),
        ("suma.s(1).set(countdown='soon')", "option 'countdown' must be a number", 1, 1),
        ("chord([suma.s(1, 1)])", "a chord needs a header and a body", 1, 1),
        ("chord([suma.s(1, 1)])(suma.s(2))", "calling a signature would run it", 1, 1),
        ("import os\nsuma.s(1)", "plain 'import' lines are not read", 1, 1),
        ("from os import system\nsystem.s(1)", "unknown or disallowed task 'os.system'", 1, 16),
        ("x = suma.s(1)", "not an assignment", 1, 1),
        ("suma.s(1)\nsuma.s(2)", "only one canvas expression is read", 1, 1),
        ("print('hi')", "print() is not part of a canvas", 1, 1),
        ("suma.s(1, 2) + suma.s(3)", "the only operator between signatures is |", 1, 1),
        ("suma.s(1 + 2)", "arguments are literals only: nothing is called or computed", 1, 8),
        ("suma.s({1, 2})", "sets are not allowed", 1, 8),
        ("suma.s(b'x')", "a bytes literal is not a JSON value", 1, 8),
        ("suma.s(1e400)", "inf is not valid JSON", 1, 8),
        ("suma.s({1: 2})", "dict keys must be strings", 1, 9),
        ("suma", "the name 'suma' is not a signature: write suma.s(...)", 1, 1),
        ("suma.s(1,\n    é)", "the name 'é' is not a literal", 2, 5),
        ("suma.s('é', ö)", "the name 'ö' is not a literal", 1, 13),
        ("chain(suma.s(1)", "not valid Python", 1, 6),
        ("", "nothing to read", 1, 1),
    ],
)
def test_refused_with_a_clear_message_and_its_position(
    text: str, message: str, line: int, column: int
) -> None:
    with pytest.raises(CodeError) as info:
        parse(text, resolve)
    assert message in info.value.message
    assert (info.value.line, info.value.column) == (line, column), info.value


def test_deep_nesting_is_refused_not_a_crash() -> None:
    text = "chain(" * 300 + "suma.s(1)" + ")" * 300
    with pytest.raises(CodeError, match="nested"):
        parse(text, resolve)
    with pytest.raises(CodeError):
        parse("suma.s(" + "[" * 5000 + "]" * 5000 + ")", resolve)


# -- never runs anything ----------------------------------------------------------------------


@contextlib.contextmanager
def nothing_may_run():
    """eval/exec/__import__/open fail if called; compile may only build a syntax tree, and
    getattr may only read the syntax tree's own nodes.

    Plain assignments, not monkeypatch (which itself imports while patching).
    """
    calls: list[str] = []
    real = {name: getattr(builtins, name)
            for name in ("eval", "exec", "__import__", "getattr", "open", "compile")}

    def refuse(name: str):
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was called")
        return call

    def ast_only(source: Any, filename: Any, mode: str, flags: int = 0, *args: Any, **kw: Any):
        if not flags & ast.PyCF_ONLY_AST:
            calls.append("compile")
            raise AssertionError("compile to code")
        return real["compile"](source, filename, mode, flags, *args, **kw)

    def ast_getattr(obj: Any, *args: Any) -> Any:
        # The syntax tree and the spec being built are the only objects read.
        if not isinstance(obj, ast.AST | Task | Options) and obj is not Options:
            calls.append(f"getattr({type(obj).__name__})")
            raise AssertionError("getattr on a live object")
        return real["getattr"](obj, *args)

    def parser_import(name: str, *args: Any, **kwargs: Any) -> Any:
        # Python's own tokenizer imports unicodedata to normalise non-ASCII identifiers.
        if name != "unicodedata":
            calls.append(f"__import__({name})")
            raise AssertionError(f"__import__({name!r}) was called")
        return real["__import__"](name, *args, **kwargs)

    try:
        for name in real:
            setattr(builtins, name, refuse(name))
        builtins.__import__ = parser_import
        builtins.compile = ast_only
        builtins.getattr = ast_getattr
        yield calls
    finally:
        for name, value in real.items():
            setattr(builtins, name, value)
    assert calls == []


TOKENS = [
    "suma", "sum_list", ".s", ".si", ".set", ".delay", ".__class__", ".__globals__", "(", ")",
    "[", "]", "{", "}", ",", ":", "|", "+", "*", "**", "=", "1", "'x'", "f'{x}'", "None",
    "lambda", "for", "in", "if", "x", "__import__", "eval", "open", "group", "chain", "chord",
    "signature", "countdown", "queue", "from", "import", "os", "celery", "\n", " ", "proj.tasks",
    "__builtins__", "exec", "breakpoint", "getattr",
]
texts = st.lists(st.sampled_from(TOKENS), max_size=25).map("".join) | st.text(max_size=40)


def attributes_are_canvas_only(text: str) -> bool:
    """Every attribute access in accepted text is .s/.si/.set or part of an allowed task's
    dotted name."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr not in ("s", "si", "set"):
            parts, current = [node.attr], node.value
            while isinstance(current, ast.Attribute):
                parts.append(current.attr)
                current = current.value
            if not isinstance(current, ast.Name):
                return False
            dotted = ".".join([current.id, *reversed(parts)])
            if not any(name == dotted or name.startswith(dotted + ".") for name in NAMES):
                return False
    return True


@EXAMPLES
@given(texts)
def test_random_text_is_refused_with_a_position_and_never_run(text: str) -> None:
    with nothing_may_run():
        try:
            tree = parse(text, resolve)
        except CodeError as exc:
            refused = exc
        else:
            refused = None
    if refused is not None:
        assert refused.line >= 1 and refused.column >= 1
        assert str(refused).startswith(f"line {refused.line}, column {refused.column}: ")
        return
    # Accepted: only canvas vocabulary, and it reads as a tree of allowed tasks.
    assert attributes_are_canvas_only(text)
    assert all(t.task in NAMES for t in _leaves(tree))


@EXAMPLES
@given(trees, st.sampled_from(["__import__('os')", "eval('1')", "x", "lambda: 0",
                               "[i for i in ()]", "f'{1}'", "os.environ"]))
def test_a_valid_canvas_with_anything_else_inside_is_refused(tree: Node, bad: str) -> None:
    code = render(tree).rstrip("\n")
    # Put the bad piece where an argument goes: as the first argument of the last task call.
    marker = code.rfind(".s(") if ".s(" in code else code.rfind(".si(")
    if marker < 0:
        return
    opening = code.index("(", marker)
    poisoned = code[: opening + 1] + bad + ", " + code[opening + 1:]
    with nothing_may_run(), pytest.raises(CodeError):
            parse(poisoned, resolve)


def test_nothing_runs_even_for_an_attack(tmp_path) -> None:
    target = tmp_path / "pwned"
    text = f"suma.s(__import__('os').system('touch {target}'))"
    with nothing_may_run(), pytest.raises(CodeError):
        parse(text, resolve)
    assert not target.exists()


def _leaves(tree: Node) -> list[Task]:
    from task_admin.canvas import leaves

    return [task for _, task in leaves(tree)]


# -- the chord body warning -----------------------------------------------------------------


def annotated(a: int, b: int = 0) -> int:
    return a + b


def takes_list(results: list[int], factor=2) -> int:
    return sum(results) * factor


def waits(seconds=5):
    return seconds


def report(results, to):
    return to


SIGS = {
    **SIGNATURES,
    "t.annotated": inspect.signature(annotated),
    "t.takes_list": inspect.signature(takes_list),
    "t.waits": inspect.signature(waits),
    "t.report": inspect.signature(report),
}
HEADER = (s(1, 1), s(2, 2))


def test_the_tutorial_chord_warns_and_still_validates() -> None:
    tree = parse("chord([suma.s(1, 1), suma.s(2, 2)], suma.s(10))", resolve)
    assert validate(tree, tasks=SIGS) == []  # not an error: it may be saved and run
    [warning] = warnings(tree, tasks=SIGS)
    assert warning.level == "warning"
    assert warning.path == "root.body"
    assert "receives the list of header results first" in warning.message
    assert "'a'" in warning.message and "(10)" in warning.message


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (Task("t.annotated"), "root.body"),  # a: int
        (Task("t.waits"), "root.body"),  # seconds=5: a scalar default
        (Chain((Task("t.annotated"), s(1))), "root.body.0"),  # the chain's first step
        (Group((s(3), Task("proj.tasks.sum_list"))), "root.body.0"),  # each group member
    ],
)
def test_chord_bodies_that_cannot_take_a_list_warn(body: Node, path: str) -> None:
    assert [w.path for w in warnings(Chord(HEADER, body), tasks=SIGS)] == [path]


@pytest.mark.parametrize(
    "body",
    [
        Task("proj.tasks.sum_list"),  # takes the list
        Task("t.takes_list", (3,)),  # annotated list, even beside a number
        Task("t.report", kwargs={"to": "ops@example.com"}),  # unannotated, no numbers
        Task("proj.tasks.suma", (1, 2), immutable=True),  # .si(): receives nothing
        Task("unknown.task", (10,)),  # no signature: nothing to judge
        Task("proj.tasks.suma", (1, 2, 3)),  # an arity error, which validate() reports
    ],
)
def test_chord_bodies_that_take_a_list_do_not_warn(body: Node) -> None:
    assert warnings(Chord(HEADER, body), tasks=SIGS) == []


def test_refusals_are_marked_for_translation() -> None:
    # canvas.text: English text that keeps its template, translated at the Django boundary.
    with pytest.raises(CodeError) as info:
        parse("suma.s(HOME, 2)", resolve)
    assert info.value.text.template == "line %(line)d, column %(column)d: %(message)s"
    assert info.value.message.template.startswith("the name %(name)s is not a literal")
    assert info.value.message.params == {"name": "'HOME'"}
