"""``task_admin.spec_cache``: a start does not read a tree that has not changed, and never
records or sends one that has (whatever changed it: the ORM, ``QuerySet.update``, raw SQL).

The cache works on PostgreSQL; on SQLite every start reads the tree. The tests about what a
run holds after a change pass on both: they are what a user sees either way.
"""

from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from task_admin import compile, services, spec_cache
from task_admin.models import NodeKind, TaskInvocation, WorkflowNode, WorkflowRun
from task_admin.models.new_runs import ConditionFailed, insert_run
from tests.support.factories import SUMA, add_node, invocation, workflow

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    spec_cache.forget()
    yield
    spec_cache.forget()


def postgresql() -> bool:
    return connection.vendor == "postgresql"


def start(wf, capture, **kwargs) -> WorkflowRun:
    with capture(execute=False):
        return services.run_workflow(wf, **kwargs)


def leaves(run: WorkflowRun) -> tuple[list, list]:
    """(args, label) of each leaf in the run's snapshot; (path, node id) of its node rows."""
    tasks = run.spec["root"]["tasks"]
    rows = list(run.nodes.order_by("position").values_list("path", "node_id"))
    return [(t["args"], t.get("label", "")) for t in tasks], rows


def test_a_second_start_of_an_unchanged_workflow_reads_no_tree(
        django_capture_on_commit_callbacks):
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])]))
    start(wf, django_capture_on_commit_callbacks)
    with (
        mock.patch("task_admin.compile._Builder", wraps=compile._Builder) as compiles,
        CaptureQueriesContext(connection) as queries,
    ):
        run = start(wf, django_capture_on_commit_callbacks)
    statements = [q["sql"] for q in queries.captured_queries]
    if postgresql():
        # The run and its nodes in one INSERT, conditional on the tree being unchanged.
        assert len(statements) == 1 and statements[0].startswith("WITH new_run AS (INSERT")
        assert "xmin" in statements[0]
        assert compiles.call_count == 0
    else:
        assert any("task_admin_workflownode" in sql for sql in statements if
                   sql.startswith("SELECT"))
        assert compiles.call_count == 1
    assert run.nodes.count() == 2


def change_args(wf):
    TaskInvocation.objects.filter(pk=wf.nodes.get(position=0, kind="task").invocation_id
                                  ).update(args=[5, 5])


def change_label(wf):
    WorkflowNode.objects.filter(workflow=wf, kind="task", position=1).update(label="renamed")


def delete_a_leaf(wf):
    WorkflowNode.objects.filter(workflow=wf, kind="task", position=1).delete()


def add_a_leaf(wf):
    add_node(wf, invocation(SUMA, [7, 7], name="seven"), parent=wf.nodes.get(parent=None),
             position=2)


def switch_invocation(wf):
    other = invocation(SUMA, [9, 9], name="nine")
    WorkflowNode.objects.filter(workflow=wf, kind="task", position=0).update(invocation=other)


def raw_sql_args(wf):
    table = TaskInvocation._meta.db_table
    pk = wf.nodes.get(position=0, kind="task").invocation_id
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET args = %s WHERE id = %s", ['[6, 6]', pk])


@pytest.mark.parametrize("change, expected", [
    (change_args, [([5, 5], "two"), ([4, 4], "four")]),
    (change_label, [([2, 2], "two"), ([4, 4], "renamed")]),
    (delete_a_leaf, [([2, 2], "two")]),
    (add_a_leaf, [([2, 2], "two"), ([4, 4], "four"), ([7, 7], "seven")]),
    (switch_invocation, [([9, 9], "nine"), ([4, 4], "four")]),
    (raw_sql_args, [([6, 6], "two"), ([4, 4], "four")]),
])
def test_a_tree_changed_behind_the_orms_back_is_what_the_next_run_holds(
        change, expected, django_capture_on_commit_callbacks):
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2], name="two"),
                                     invocation(SUMA, [4, 4], name="four")]))
    before = start(wf, django_capture_on_commit_callbacks)
    assert leaves(before)[0] == [([2, 2], "two"), ([4, 4], "four")]
    change(wf)
    for _ in range(2):  # compiled again after the change, then from the cache
        after = start(wf, django_capture_on_commit_callbacks)
        snapshot, rows = leaves(after)
        assert snapshot == expected
        tasks = list(wf.nodes.filter(kind=NodeKind.TASK).order_by("position"))
        assert rows == [(f"root.{i}", node.pk) for i, node in enumerate(tasks)]


def test_a_tree_changed_between_prepare_and_start_is_checked_again(
        django_capture_on_commit_callbacks):
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])]))
    start(wf, django_capture_on_commit_callbacks)  # cached
    prepared = services.prepare_run(wf)
    change_args(wf)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        run = services.run_prepared(prepared)
    assert len(sent) == 1
    if not postgresql():
        # No cache: prepare_run read the tree just now, and that is what is recorded.
        assert leaves(run)[0][0][0] == [2, 2]
        return
    assert leaves(run)[0][0][0] == [5, 5]
    # A change that no longer runs: refused with the problem, and nothing is written.
    prepared = services.prepare_run(wf)
    TaskInvocation.objects.filter(pk=wf.nodes.get(position=0, kind="task").invocation_id
                                  ).update(args=[1, 2, 3])
    with (
        pytest.raises(services.WorkflowProblems, match=r"root\.0"),
        django_capture_on_commit_callbacks(execute=False) as sent,
    ):
        services.run_prepared(prepared)
    assert not sent
    assert WorkflowRun.objects.count() == 2


def test_a_workflow_that_reuses_another_follows_changes_to_it(
        django_capture_on_commit_callbacks):
    inner = workflow("inner", ("chain", [invocation(SUMA, [1, 1])]))
    outer = workflow("outer", ("group", [("workflow", inner), invocation(SUMA, [3, 3])]))
    start(outer, django_capture_on_commit_callbacks)
    change_args(inner)
    run = start(outer, django_capture_on_commit_callbacks)
    assert run.spec["root"]["tasks"][0]["tasks"][0]["args"] == [5, 5]
    assert not spec_cache._entries  # a reusing tree is read every time


def test_the_cache_keeps_at_most_its_size_and_zero_turns_it_off(
        settings, django_capture_on_commit_callbacks):
    flows = [workflow(f"w{i}", ("group", [invocation(SUMA, [i, i])])) for i in range(3)]
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "SPEC_CACHE_SIZE": 2}
    for wf in flows:
        start(wf, django_capture_on_commit_callbacks)
    kept = [key[1] for key in spec_cache._entries]
    assert kept == ([flows[1].pk, flows[2].pk] if postgresql() else [])
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "SPEC_CACHE_SIZE": 0}  # empties it too
    for wf in flows:
        start(wf, django_capture_on_commit_callbacks)
    assert not spec_cache._entries


def test_a_false_condition_writes_nothing():
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2])]))
    run = WorkflowRun(workflow=wf, workflow_name=wf.name, spec={}, total_nodes=1)
    if not postgresql():
        with pytest.raises(ValueError, match="only_if needs PostgreSQL"):
            insert_run(run, [], only_if=("1 = %s", [1]))
        return
    with pytest.raises(ConditionFailed):
        insert_run(run, [("ta-x", "root.0", 0, SUMA, "", None, None)], only_if=("1 = %s", [2]))
    assert not WorkflowRun.objects.exists()
    insert_run(run, [("ta-x", "root.0", 0, SUMA, "", None, None)], only_if=("1 = %s", [1]))
    assert run.pk and run.nodes.get().task_id == "ta-x"
