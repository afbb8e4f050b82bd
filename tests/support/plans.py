"""Whether an index serves a statement, from the statement's plan: a search of the index on a
condition (PostgreSQL's ``Index Cond``, SQLite's ``SEARCH ... USING INDEX``), not a walk of
the whole index. Sequential scans are disabled on PostgreSQL while planning: on a test's tiny
table a scan is cheapest, and the question is whether an index *can* serve the statement (a
partial one only if its condition is implied)."""

from __future__ import annotations

import json

from django.db import connection


def searches(sql: str) -> set[str]:
    """The names of the indexes the plan of ``sql`` searches on a condition."""
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            details = [row[-1] for row in cursor.fetchall()]
            return {detail.split(" INDEX ", 1)[1].split(" ")[0] for detail in details
                    if detail.startswith("SEARCH") and " INDEX " in detail}
        cursor.execute("SET LOCAL enable_seqscan = off")
        try:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            (document,) = cursor.fetchone()
        finally:
            cursor.execute("RESET enable_seqscan")
    if isinstance(document, str):
        document = json.loads(document)
    found, nodes = set(), [document[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if "Index Name" in node and "Index Cond" in node:
            found.add(node["Index Name"])
        nodes.extend(node.get("Plans", []))
    return found


def index_name(table: str, columns: tuple[str, ...]) -> str:
    """The name of the index on exactly ``columns``: SQLite names those of unique constraints
    itself (``sqlite_autoindex_<table>_<n>``)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            found = connection.introspection.get_constraints(cursor, table)
            (name,) = [name for name, info in found.items() if tuple(info["columns"]) == columns
                       and (info["index"] or info["unique"])]
            return name
        cursor.execute(f"PRAGMA index_list({quote(table)})")
        for index in [row[1] for row in cursor.fetchall()]:
            cursor.execute(f"PRAGMA index_info({quote(index)})")
            if tuple(row[2] for row in cursor.fetchall()) == columns:
                return index
    raise AssertionError(f"no index on {table} {columns}")


def index_definitions(table: str) -> dict[str, str]:
    """``{index name: its CREATE INDEX statement}`` of ``table``, as the database keeps it
    (SQLite keeps none for the indexes of unique constraints: "")."""
    if connection.vendor == "postgresql":
        sql = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s"
    else:
        sql = ("SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'index'"
               " AND tbl_name = %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [table])
        return dict(cursor.fetchall())


def statements(ctx, table: str, *needles: str) -> list[str]:
    """The statements captured by ``ctx`` (a CaptureQueriesContext) on ``table`` that contain
    every needle."""
    return [q["sql"] for q in ctx.captured_queries
            if table in q["sql"] and all(n in q["sql"] for n in needles)]


def assert_served(sqls: list[str], table: str, columns: tuple[str, ...]) -> None:
    """Each statement (there is at least one) searches the index on ``columns``."""
    assert sqls
    index = index_name(table, columns)
    for sql in sqls:
        assert index in searches(sql), (index, sql, searches(sql))
