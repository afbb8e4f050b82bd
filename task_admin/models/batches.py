"""The statements of the worker's tracking batches (``tracking.apply``), written once.

A worker process writes its tracking events in batches from a thread that shares the CPU with
the tasks it runs, so what a batch costs in Python is taken from Celery's throughput: measured
under ``make bench``, compiling the ORM's queries and adapting parameters one by one was half
of that thread's time. Here the SQL is written once per process and database, the nodes are
read as instances through ``Rows``, and on PostgreSQL the changed nodes go as one JSON
document (``jsonb_to_recordset``) instead of one array per column.

Every function runs inside the caller's transaction; the runs are locked first, in id order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from task_admin.models.rows import Rows
from task_admin.models.runs import (
    FINISHED_NODE,
    FINISHED_RUN,
    NodeState,
    RunStatus,
    TaskRun,
    WorkflowRun,
)

# The TaskRun columns an event may change (what a batch writes back).
NODE_FIELDS = (
    "state", "attempt_count", "worker", "received_at", "started_at", "finished_at", "runtime",
    "result", "result_complete", "exception", "traceback",
)
_NODES = Rows.of(TaskRun, ["id", "run_id", "task_id", *NODE_FIELDS])
# A finished run as ``run_finished`` listeners get it: its big JSON columns left deferred.
_FINISHED = Rows(WorkflowRun, [f for f in WorkflowRun._meta.concrete_fields
                               if f.name not in ("spec", "overrides")])


def _connection():
    return connections[DEFAULT_DB_ALIAS]


def _names(connection) -> tuple[str, str, Any]:
    quote = connection.ops.quote_name
    return quote(WorkflowRun._meta.db_table), quote(TaskRun._meta.db_table), quote


def _in(connection, column: str, values: Sequence) -> tuple[str, list]:
    """``column`` among ``values``: one array parameter on PostgreSQL (one SQL text whatever
    the number), a list of placeholders elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def lock_runs_of(task_ids: Sequence[str]) -> dict[int, str]:
    """Lock, in id order, the runs that the tasks belong to; their status by id (a run that is
    no longer pending is not recounted for a node that merely started).

    SQLite has no row locks: the batch's first statement is a write instead (an UPDATE that
    changes nothing), so the transaction takes the database's write lock at once and waits
    its turn (the busy timeout) behind another writer. Reading first would take a shared lock
    that SQLite cannot turn into the write lock while another connection waits to commit: it
    then fails at once with "database is locked" rather than wait.
    """
    connection = _connection()
    runs, nodes, _quote = _names(connection)
    where, params = _in(connection, "task_id", task_ids)
    chosen = f"id IN (SELECT run_id FROM {nodes} WHERE {where})"
    if connection.features.has_select_for_update:
        sql = f"SELECT id, status FROM {runs} WHERE {chosen} ORDER BY id FOR UPDATE"
    else:
        sql = f"UPDATE {runs} SET id = id WHERE {chosen} RETURNING id, status"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


def read_nodes(task_ids: Sequence[str]) -> list[TaskRun]:
    """The nodes of these tasks (id, run, task id and ``NODE_FIELDS``), in id order."""
    connection = _connection()
    _runs, nodes, _quote = _names(connection)
    where, params = _in(connection, "task_id", task_ids)
    sql = f"SELECT {', '.join(_NODES.columns(connection))} FROM {nodes} WHERE {where} ORDER BY id"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [_NODES.build(connection, row) for row in rows]


def write_nodes(nodes: Sequence[TaskRun]) -> None:
    """Write ``NODE_FIELDS`` of the changed nodes in one round trip.

    PostgreSQL: one ``UPDATE ... FROM jsonb_to_recordset(<the batch as one JSON document>)``:
    ``json.dumps`` in C instead of psycopg adapting every value of eleven arrays. Elsewhere
    (SQLite runs in process): one UPDATE per node through ``executemany``.
    """
    if not nodes:
        return
    connection = _connection()
    _runs, table, quote = _names(connection)
    fields = [TaskRun._meta.get_field(name) for name in NODE_FIELDS]
    if connection.vendor == "postgresql":
        types = ", ".join(f"{quote(f.column)} {f.cast_db_type(connection)}" for f in fields)
        sets = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
        sql = (f"UPDATE {table} AS t SET {sets} FROM jsonb_to_recordset(%s::jsonb)"
               f" AS v(id bigint, {types}) WHERE t.id = v.id")
        document = [
            {"id": node.pk, **{f.column: _json_value(getattr(node, f.attname)) for f in fields}}
            for node in nodes
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, [json.dumps(document, allow_nan=False)])
        return
    sql = (f"UPDATE {table} SET {', '.join(f'{quote(f.column)} = %s' for f in fields)}"
           " WHERE id = %s")
    rows = [[*(f.get_db_prep_save(getattr(node, f.attname), connection) for f in fields),
             node.pk] for node in nodes]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _json_value(value: Any) -> Any:
    # Datetimes as ISO 8601 with their offset (timestamptz reads them back exactly).
    return value.isoformat() if isinstance(value, datetime) else value


def settle(
    run_ids: Sequence[int], started: Iterable[int], now: datetime
) -> tuple[list[WorkflowRun], list[int]]:
    """One statement for the runs a batch touched: set each run's ``finished_nodes`` from its
    nodes, mark the runs that have just started as running, and finish as succeeded those whose
    every node succeeded. Returns the runs just finished as succeeded (as ``run_finished``
    listeners get them) and the ids of the runs whose every node has finished without all
    succeeding (their status comes from their canvas: ``tracking._finish_done``).

    One UPDATE, not a recount followed by a second UPDATE of the runs that succeeded: a row
    updated twice in one transaction is a second row version with a second entry in every
    index of the table, and PostgreSQL re-checks its foreign keys (measured, a batch ending 40
    runs: the recount and the finish 1.5 ms, this statement 0.8 ms). The nodes are counted per
    run through the run's own index (the condition on the state is inside the sum, not in a
    WHERE the planner could answer from the ``state`` index: with stale statistics it read every
    finished node of the table for each run, 66 ms for those 40 runs on a 12,000-node table).
    A run whose count and status do not change is not written at all.
    """
    if not run_ids:
        return [], []
    connection = _connection()
    runs, nodes, _quote = _names(connection)
    finished_runs = sorted(FINISHED_RUN)
    finished_nodes = sorted(FINISHED_NODE)

    def marks(values) -> str:
        return ", ".join(["%s"] * len(values))

    now_value = WorkflowRun._meta.get_field("finished_at").get_db_prep_value(now, connection)
    started = sorted(set(started) & set(run_ids))
    unfinished = f"{runs}.status NOT IN ({marks(finished_runs)})"
    # Every node succeeded (and there are all of them): the run ends here as succeeded.
    ok = f"(c.bad = 0 AND c.done >= {runs}.total_nodes AND {unfinished})"
    ok_params = [*finished_runs]
    if started:
        # On PostgreSQL one array parameter: the same SQL text whatever the number of runs.
        among, among_params = _in(connection, f"{runs}.id", started)
        just, just_params = f"({among} AND {runs}.status = %s)", [*among_params, RunStatus.PENDING]
    else:
        just, just_params = "(1 = 0)", []
    where, in_params = _in(connection, "r.id", run_ids)
    # How many of the run's nodes have finished, and how many have not succeeded.
    sums = (f"SUM(CASE WHEN n.state IN ({marks(finished_nodes)}) THEN 1 ELSE 0 END) AS done,"
            f" SUM(CASE WHEN n.state <> %s THEN 1 ELSE 0 END) AS bad")
    if connection.vendor == "postgresql":
        # One index scan of each run's nodes, whatever the statistics say: a join could be
        # planned as a scan of the whole table when they are stale (a table that has just
        # grown), which is when a busy worker writes most.
        counts = (f"SELECT r.id AS run_id, COALESCE(a.done, 0) AS done, COALESCE(a.bad, 0) AS bad"
                  f" FROM {runs} r CROSS JOIN LATERAL (SELECT {sums} FROM {nodes} n"
                  f" WHERE n.run_id = r.id) a WHERE {where}")
    else:  # SQLite: a LEFT JOIN (its planner walks the run_id index for each run)
        counts = (f"SELECT r.id AS run_id, {sums} FROM {runs} r"
                  f" LEFT JOIN {nodes} n ON n.run_id = r.id WHERE {where} GROUP BY r.id")
    sql = (
        f"UPDATE {runs} SET finished_nodes = c.done,"
        f" status = CASE WHEN {ok} THEN %s WHEN {just} THEN %s ELSE {runs}.status END,"
        f" finished_at = CASE WHEN {ok} THEN %s ELSE {runs}.finished_at END,"
        f" started_at = CASE WHEN {just} THEN COALESCE({runs}.started_at, %s)"
        f" WHEN {ok} THEN COALESCE({runs}.started_at, {runs}.dispatched_at, %s)"
        f" ELSE {runs}.started_at END"
        f" FROM ({counts}) c"
        f" WHERE {runs}.id = c.run_id AND ({runs}.finished_nodes <> c.done OR {just}"
        f" OR (c.done >= {runs}.total_nodes AND {unfinished}))"
        f" RETURNING {', '.join(_FINISHED.columns(connection))}"
    )
    params = [
        *ok_params, RunStatus.SUCCEEDED, *just_params, RunStatus.RUNNING,
        *ok_params, now_value,
        *just_params, now_value, *ok_params, now_value,
        *finished_nodes, NodeState.SUCCESS, *in_params,
        *just_params, *finished_runs,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    succeeded, done = [], []
    for row in rows:
        run = _FINISHED.build(connection, row)
        # Only this statement sets ``finished_at`` to this batch's ``now``: a run returned as
        # succeeded with another time had succeeded before (and is not told about twice).
        if run.status == RunStatus.SUCCEEDED and run.finished_at == now:
            succeeded.append(run)
        elif run.finished_nodes >= run.total_nodes and run.status not in FINISHED_RUN:
            done.append(run.pk)
    return succeeded, sorted(done)
