"""``task_admin.spec_cache``: a start does not read a tree that has not changed, and never
records or sends one that has (whatever changed it: the ORM, ``QuerySet.update``, raw SQL).

The cache works on PostgreSQL; on SQLite every start reads the tree. The tests about what a
run holds after a change pass on both: they are what a user sees either way.
"""

from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from task_admin import compile, registry, services, spec_cache
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
        assert "sha256" in statements[0]
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
    for again in range(2):  # compiled again after the change, then from the cache
        with CaptureQueriesContext(connection) as queries:
            after = start(wf, django_capture_on_commit_callbacks)
        if postgresql():
            # The kept spec was tried first (the insert refused), then the tree read; the
            # next start is the insert alone.
            inserts = [q for q in queries.captured_queries if "INSERT" in q["sql"]]
            assert len(inserts) == (2 if again == 0 else 1)
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


def test_a_budget_of_zero_turns_the_cache_off(settings, django_capture_on_commit_callbacks):
    flows = [workflow(f"w{i}", ("group", [invocation(SUMA, [i, i])])) for i in range(2)]
    for wf in flows:
        start(wf, django_capture_on_commit_callbacks)
    assert len(spec_cache._entries) == (2 if postgresql() else 0)
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


class WritesRunsElsewhere:
    """A router that writes runs to another alias than the one the workflows are read from
    (as with a read replica). Only its answers are asked here: nothing is written."""

    def db_for_read(self, model, **hints):
        return None

    def db_for_write(self, model, **hints):
        return "primary" if model._meta.model_name == "workflowrun" else None


def test_nothing_is_kept_when_the_tree_is_read_elsewhere_than_runs_are_written(
        settings, django_capture_on_commit_callbacks):
    wf = workflow("adds", ("group", [invocation(SUMA, [2, 2])]))
    settings.DATABASE_ROUTERS = [WritesRunsElsewhere()]
    with mock.patch("task_admin.spec_cache.workflow_to_spec",
                    wraps=spec_cache.workflow_to_spec) as compiles:
        for _ in range(2):
            compiled = spec_cache.compiled(wf)
            assert compiled.current_if is None
    assert compiles.call_count == 2 and not spec_cache._entries


class Rollback(Exception):
    pass


def test_a_change_after_rolled_back_edits_in_one_transaction_is_seen(
        django_capture_on_commit_callbacks):
    # Everything in one transaction (a script in atomic(), ATOMIC_REQUESTS, a test): failed
    # nested edits are rolled-back savepoints, and they renumber the row version's command.
    # With row versions (xmin, cmin) as the fingerprint, one of them made the changed row
    # look like the kept one; the fingerprint is the rows' content.
    wf = workflow("w", ("group", [invocation(SUMA, [2, 2], name="two")]))
    leaf = wf.nodes.get(kind="task")
    start(wf, django_capture_on_commit_callbacks)  # kept
    kept = spec_cache.compiled(wf).current_if
    WorkflowNode.objects.filter(pk=leaf.pk).update(label="fixed")
    for _ in range(50):
        try:
            with transaction.atomic():
                WorkflowNode.objects.filter(pk=leaf.pk).update(label="oops")
                raise Rollback
        except Rollback:
            pass
        if kept is not None:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {kept.sql}", kept.params)
                if cursor.fetchone()[0]:
                    break  # the changed tree passes for the kept one: the start must not
    run = start(wf, django_capture_on_commit_callbacks)
    assert run.spec["root"]["tasks"][0]["label"] == "fixed"


def _command_of(node) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT cmin::text FROM {WorkflowNode._meta.db_table} WHERE id = %s",
                       [node.pk])
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_after_an_aborted_edit_is_seen():
    # Another transaction's aborted update stamped the row with its own command number:
    # the row's version numbers then match the kept ones although its label changed.
    with transaction.atomic():
        wf = workflow("w", ("group", [invocation(SUMA, [2, 2], name="two")]))
        leaf = wf.nodes.get(kind="task")
        command = _command_of(leaf) if postgresql() else 0
        services.prepare_run(wf)  # kept, read inside the transaction that wrote the rows
        WorkflowNode.objects.filter(pk=leaf.pk).update(label="fixed")
    try:
        with transaction.atomic():
            for _ in range(command):  # as many writes first as the kept version's command
                WorkflowNode.objects.filter(pk=-1).update(label="x")
            WorkflowNode.objects.filter(pk=leaf.pk).update(label="oops")
            raise Rollback
    except Rollback:
        pass
    try:
        with transaction.atomic():  # recorded, then rolled back: nothing is sent
            run = services.run_workflow(wf)
            recorded = run.spec["root"]["tasks"][0]["label"]
            raise Rollback
    except Rollback:
        pass
    assert recorded == "fixed"


def test_a_workflow_refused_once_starts_once_fixed(django_capture_on_commit_callbacks):
    wf = workflow("w", ("group", [invocation(SUMA, [2, 2], name="two")]))
    start(wf, django_capture_on_commit_callbacks)  # kept
    pk = wf.nodes.get(kind="task").invocation_id
    TaskInvocation.objects.filter(pk=pk).update(args=[1, 2, 3])  # a mistake
    with pytest.raises(services.WorkflowProblems, match=r"root\.0"):
        start(wf, django_capture_on_commit_callbacks)
    TaskInvocation.objects.filter(pk=pk).update(args=[1, 2])  # fixed
    run = start(wf, django_capture_on_commit_callbacks)
    assert run.spec["root"]["tasks"][0]["args"] == [1, 2]


def test_overrides_for_a_leaf_added_since_the_last_start_are_accepted(
        django_capture_on_commit_callbacks):
    wf = workflow("w", ("group", [invocation(SUMA, [2, 2], name="two")]))
    start(wf, django_capture_on_commit_callbacks)  # kept, with one leaf
    add_node(wf, invocation(SUMA, [1], name="one"), parent=wf.nodes.get(parent=None), position=1)
    run = start(wf, django_capture_on_commit_callbacks, overrides={"root.1": {"b": 5}})
    assert run.total_nodes == 2 and run.spec["root"]["tasks"][1]["kwargs"] == {"b": 5}


def test_the_cache_keeps_at_most_its_budget_of_nodes(settings, django_capture_on_commit_callbacks):
    small = [workflow(f"s{i}", ("group", [invocation(SUMA, [i, i])])) for i in range(3)]
    big = workflow("big", ("group", [invocation(SUMA, [i, i]) for i in range(4)]))
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "SPEC_CACHE_SIZE": 4}  # nodes: root + leaves
    for wf in small:
        start(wf, django_capture_on_commit_callbacks)
    kept = [key[1] for key in spec_cache._entries]
    assert kept == ([small[1].pk, small[2].pk] if postgresql() else [])
    start(big, django_capture_on_commit_callbacks)  # 5 nodes: more than the whole budget
    assert [key[1] for key in spec_cache._entries] == kept


def _checks(wf, capture, starts: int) -> int:
    """How many times ``starts`` starts of ``wf`` checked its spec."""
    with mock.patch("task_admin.services.check_spec", wraps=services.check_spec) as check:
        for _ in range(starts):
            start(wf, capture)
    return check.call_count


def test_a_kept_workflow_that_passed_is_not_checked_again(django_capture_on_commit_callbacks):
    wf = workflow("w", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])]))
    start(wf, django_capture_on_commit_callbacks)  # compiled, checked, kept
    # On SQLite nothing is kept: every start reads and checks the tree.
    assert _checks(wf, django_capture_on_commit_callbacks, 3) == (0 if postgresql() else 3)
    # Overrides are this run's own: checked.
    with (mock.patch("task_admin.services.check_spec", wraps=services.check_spec) as check,
          django_capture_on_commit_callbacks(execute=False)):
        services.run_workflow(wf, overrides={"root.0": {}})
    assert check.call_count == 1


def test_after_the_allowed_tasks_change_a_kept_workflow_is_checked_again(
        django_capture_on_commit_callbacks):
    wf = workflow("w", ("group", [invocation(SUMA, [2, 2])]))
    start(wf, django_capture_on_commit_callbacks)
    registry.clear_cache()  # INSTALLED_APPS changed, say: the cache of specs stays
    assert _checks(wf, django_capture_on_commit_callbacks, 2) == (1 if postgresql() else 2)


def test_a_kept_workflow_whose_task_is_gone_is_refused(django_capture_on_commit_callbacks):
    """No setting changed, the app no longer has the task (unregistered): refused, as the
    first time, however often it passed before."""
    wf = workflow("w", ("group", [invocation(SUMA, [2, 2])]))
    start(wf, django_capture_on_commit_callbacks)
    start(wf, django_capture_on_commit_callbacks)
    app = registry.get_app()
    task = app.tasks[SUMA]
    app.tasks.unregister(SUMA)
    try:
        with pytest.raises(services.WorkflowProblems, match="not registered"):
            start(wf, django_capture_on_commit_callbacks)
    finally:
        app.tasks.register(task)
    assert wf.runs.count() == 2


def test_a_workflow_that_waits_is_checked_at_every_start(django_capture_on_commit_callbacks):
    """A countdown or an eta is checked against the broker's bound and the time."""
    wf = workflow("w", ("group", [invocation(SUMA, [2, 2], countdown=5)]))
    start(wf, django_capture_on_commit_callbacks)
    assert _checks(wf, django_capture_on_commit_callbacks, 2) == 2
