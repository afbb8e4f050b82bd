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


def lock_runs_of(task_ids: Sequence[str]) -> list[int]:
    """Lock, in id order, the runs that the tasks belong to; their ids.

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
        sql = f"SELECT id FROM {runs} WHERE {chosen} ORDER BY id FOR UPDATE"
    else:
        sql = f"UPDATE {runs} SET id = id WHERE {chosen} RETURNING id"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(row[0] for row in cursor.fetchall())


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


def recount(run_ids: Sequence[int], started: Iterable[int], now: datetime) -> list[int]:
    """One statement: set each run's ``finished_nodes`` from its nodes, mark the runs that
    have just started as running, and return the runs whose every node has finished but that
    are not finished yet."""
    connection = _connection()
    runs, nodes, _quote = _names(connection)

    def marks(values) -> str:
        return ", ".join(["%s"] * len(values))

    finished_states = sorted(FINISHED_NODE)
    sets = [
        f"finished_nodes = (SELECT COUNT(*) FROM {nodes} n WHERE n.run_id = {runs}.id"
        f" AND n.state IN ({marks(finished_states)}))"
    ]
    params: list[Any] = [*finished_states]
    started = sorted(set(started) & set(run_ids))
    if started:
        just = f"{runs}.id IN ({marks(started)}) AND {runs}.status = %s"
        now_value = WorkflowRun._meta.get_field("started_at").get_db_prep_value(
            now, connection
        )
        sets += [
            f"status = CASE WHEN {just} THEN %s ELSE {runs}.status END",
            f"started_at = CASE WHEN {just} THEN COALESCE({runs}.started_at, %s)"
            f" ELSE {runs}.started_at END",
        ]
        params += [*started, RunStatus.PENDING, RunStatus.RUNNING,
                   *started, RunStatus.PENDING, now_value]
    sql = (
        f"UPDATE {runs} SET {', '.join(sets)} WHERE {runs}.id IN ({marks(run_ids)})"
        " RETURNING id, total_nodes, finished_nodes, status"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *run_ids])
        rows = cursor.fetchall()
    return sorted(
        pk for pk, total, done, status in rows if done >= total and status not in FINISHED_RUN
    )


def finish_succeeded(run_ids: Sequence[int], now: datetime) -> list[WorkflowRun]:
    """Finish, as succeeded, those of ``run_ids`` whose every node succeeded (the common end
    of a run: no canvas to read); the runs finished, as ``run_finished`` listeners get them."""
    if not run_ids:
        return []
    connection = _connection()
    runs, nodes, _quote = _names(connection)
    where, params = _in(connection, "id", run_ids)
    finished = sorted(FINISHED_RUN)
    now_value = WorkflowRun._meta.get_field("finished_at").get_db_prep_value(now, connection)
    sql = (
        f"UPDATE {runs} SET status = %s, finished_at = %s,"
        f" started_at = COALESCE(started_at, dispatched_at, %s)"
        f" WHERE {where} AND status NOT IN ({', '.join(['%s'] * len(finished))})"
        f" AND NOT EXISTS (SELECT 1 FROM {nodes} n WHERE n.run_id = {runs}.id"
        f" AND n.state <> %s)"
        f" RETURNING {', '.join(_FINISHED.columns(connection))}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [RunStatus.SUCCEEDED, now_value, now_value, *params, *finished,
                             NodeState.SUCCESS])
        rows = cursor.fetchall()
    return [_FINISHED.build(connection, row) for row in rows]
