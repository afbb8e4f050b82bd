"""Insert a new run and its nodes: on PostgreSQL one statement, one round trip.

A start is on the caller's path (a "Run now" click, ``services.start`` in a request, a beat
firing), so its cost is measured against Celery's own ``apply_async`` of the same canvas
(``make bench``). With the ORM it took a transaction of five round trips (begin, look up the
alert settings, insert the run, insert the nodes, commit) and a model instance per node. Here
the run and its nodes go as one ``INSERT``, the nodes as one JSON document
(``json_to_recordset``) and the alert settings as a sub-query: one statement is atomic by
itself, so no transaction has to be opened and committed around it. Other databases (SQLite,
in process) save the run with the ORM and the nodes with one ``executemany``.

Columns are read from the models, so a field added later is written with its default.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connections, router, transaction

from task_admin.models import statements
from task_admin.models.alerts import AlertRule
from task_admin.models.runs import TaskRun, WorkflowRun

# What each node row gives, in this order; every other TaskRun column takes its default.
NODE_COLUMNS = ("task_id", "path", "position", "task_name", "label", "node_id", "reused_from_id")


class ConditionFailed(Exception):
    """``insert_run``'s ``only_if`` was false: nothing was written."""


def insert_run(
    run: WorkflowRun,
    nodes: Sequence[tuple],
    *,
    alert_for: tuple[int | None, int | None] = (None, None),
    async_commit: bool = False,
    only_if: tuple[str, Sequence] | None = None,
) -> WorkflowRun:
    """Save ``run`` (unsaved) and one ``TaskRun`` per row of ``nodes`` (``NODE_COLUMNS``).

    ``alert_for``: (workflow id, schedule id) whose alert settings the run follows (the
    schedule's own first, ``AlertRule.objects.id_for``). ``async_commit`` (PostgreSQL, and
    only when this insert is its own transaction): the commit does not wait for the disk
    (``synchronous_commit`` off for this transaction; see docs/tracking.md). ``only_if``
    (PostgreSQL): an SQL condition and its parameters, checked in the insert's own snapshot;
    when it is false nothing is written and ``ConditionFailed`` is raised (a start from a
    cached spec: ``spec_cache``).
    Returns ``run`` with its ``pk`` and ``alert_rule_id`` set.
    """
    using = router.db_for_write(WorkflowRun)
    connection = connections[using]
    if connection.vendor != "postgresql":
        if only_if is not None:
            raise ValueError("only_if needs PostgreSQL")
        # Read before the transaction: on SQLite a transaction that reads first cannot always
        # take the write lock later, and fails at once where it could have waited.
        run.alert_rule_id = AlertRule.objects.using(using).id_for(*alert_for)
        with transaction.atomic(using=using):
            run.save(force_insert=True, using=using)
            if nodes:
                # One executemany, not bulk_create: no model instance per node, and one
                # statement whatever the number of nodes (bulk_create splits into batches).
                sql, defaults = _nodes_sql(connection)
                with connection.cursor() as cursor:
                    cursor.executemany(sql, [(run.pk, *row, *defaults) for row in nodes])
        return run
    own_transaction = connection.get_autocommit() and not connection.in_atomic_block
    workflow_id, schedule_id = alert_for
    with_alerts = workflow_id is not None or schedule_id is not None
    statement = _statement(connection, async_commit and own_transaction, bool(nodes), with_alerts,
                           only_if[0] if only_if else None)
    params = [field.get_db_prep_save(field.pre_save(run, True), connection)
              for field in statement.run_fields]
    if with_alerts:
        params += [workflow_id, schedule_id]
    if only_if:
        params += only_if[1]
    if nodes:
        # The nodes as one JSON document: json.dumps in C, where psycopg would adapt each value
        # of seven arrays in Python (7 ms of a 1,000-leaf start).
        params.append(json.dumps([dict(zip(_KEYS, row, strict=True)) for row in nodes]))
    with statements.cursor(connection) as cursor:
        cursor.execute(statement.sql, params)
        inserted = cursor.fetchone()
    if inserted is None:
        raise ConditionFailed(only_if)
    run.pk, run.alert_rule_id = inserted[:2]
    statements.note_server(connection, inserted[2:])
    run._state.adding, run._state.db = False, using
    return run


# The keys of a node's JSON object, in NODE_COLUMNS order.
_KEYS = [f"c{i}" for i in range(len(NODE_COLUMNS))]


@dataclass(frozen=True)
class _Statement:
    sql: str
    run_fields: list  # the run's columns given per call, in order (then the alert ids)


# Built once per process for each shape (the statement depends only on the models): a small
# start must not pay for writing it.
_statements: dict[tuple, _Statement] = {}


def _statement(connection, async_commit: bool, with_nodes: bool, with_alerts: bool,
               condition: str | None):
    key = (connection.alias, async_commit, with_nodes, with_alerts, condition)
    statement = _statements.get(key)
    if statement is None:
        statement = _statements[key] = _build(
            connection, async_commit, with_nodes, with_alerts, condition
        )
    return statement


def _build(connection, async_commit, with_nodes, with_alerts, condition) -> _Statement:
    quote = connection.ops.quote_name
    runs_meta, nodes_meta = WorkflowRun._meta, TaskRun._meta

    def cast(field, array: str = "") -> str:
        return f"%s::{field.cast_db_type(connection)}{array}"

    # The run: every column but its id and its alert settings, from the instance (``pre_save``
    # fills ``created_at``), then the alert settings as a sub-query.
    run_fields = [f for f in runs_meta.local_concrete_fields
                  if not f.primary_key and f.attname != "alert_rule_id"]
    run_values = [cast(field) for field in run_fields]
    run_values.append(_alert_rule_sql(connection) if with_alerts else "NULL::bigint")
    run_columns = [quote(f.column) for f in run_fields] + [
        quote(runs_meta.get_field("alert_rule").column)
    ]
    sync = ""
    if async_commit:
        # set_config(..., true) is SET LOCAL: this transaction only, which is this statement.
        sync = " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS sync"
    # No run row when the condition is false, so no node rows either (they select from it).
    where = f" WHERE {condition}" if condition else ""
    sql = (
        f"WITH new_run AS (INSERT INTO {quote(runs_meta.db_table)} ({', '.join(run_columns)})"
        f" SELECT {', '.join(run_values)}{sync}{where}"
        f" RETURNING {quote(runs_meta.pk.column)}, {run_columns[-1]})"
    )
    if with_nodes:
        given = [nodes_meta.get_field(name) for name in NODE_COLUMNS]
        rest = _other_node_fields()
        columns = [quote(nodes_meta.get_field("run").column), *(quote(f.column) for f in given),
                   *(quote(f.column) for f in rest)]
        # The columns every node takes by default, written into the statement once (quoted
        # by the driver) instead of sent with every start.
        defaults = connection.ops.compose_sql(
            ", ".join(cast(field) for field in rest),
            [field.get_db_prep_save(field.get_default(), connection) for field in rest],
        )
        record = ", ".join(f"{key} {f.cast_db_type(connection)}" for key, f in zip(
            _KEYS, given, strict=True))
        sql += (
            f", new_nodes AS (INSERT INTO {quote(nodes_meta.db_table)} ({', '.join(columns)})"
            f" SELECT new_run.{quote(runs_meta.pk.column)},"
            f" {', '.join(f'v.{key}' for key in _KEYS)}, {defaults} FROM new_run,"
            f" json_to_recordset(%s::json) AS v({record}))"
        )
    # Data-modifying WITH clauses run whether or not the final SELECT reads them. The server
    # process and socket that ran it tell whether a pooler stands between
    # (``statements.note_server``).
    sql += f" SELECT *, {statements.SERVER_COLUMNS} FROM new_run"
    return _Statement(sql, run_fields)


def _other_node_fields() -> list:
    """The TaskRun columns a start does not give: each takes its default."""
    return [f for f in TaskRun._meta.local_concrete_fields
            if not f.primary_key and f.attname not in NODE_COLUMNS and f.attname != "run_id"]


def _nodes_sql(connection) -> tuple[str, list]:
    """The plain insert of one node (run id, ``NODE_COLUMNS``, then the defaults given)."""
    quote, meta = connection.ops.quote_name, TaskRun._meta
    rest = _other_node_fields()
    fields = [meta.get_field("run"), *(meta.get_field(name) for name in NODE_COLUMNS), *rest]
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)})"
           f" VALUES ({', '.join(['%s'] * len(fields))})")
    return sql, [field.get_db_prep_save(field.get_default(), connection) for field in rest]


def _alert_rule_sql(connection) -> str:
    """``AlertRule.objects.id_for`` as a sub-query of (workflow id, schedule id): the
    schedule's own rule, else the workflow's."""
    quote = connection.ops.quote_name
    meta = AlertRule._meta
    schedule = quote(meta.get_field("schedule").column)
    workflow = quote(meta.get_field("workflow").column)
    return (
        f"(SELECT {quote(meta.pk.column)} FROM {quote(meta.db_table)}"
        f" WHERE {workflow} = %s::bigint OR {schedule} = %s::bigint"
        f" ORDER BY {schedule} IS NULL LIMIT 1)"
    )
