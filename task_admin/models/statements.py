"""A cursor for a run start's ``INSERT``: prepared on PostgreSQL when the settings allow it.

A start is on the caller's path (a "Run now" click, ``services.start``, a beat firing) and its
``INSERT`` is the same SQL text every time. Sent as Django sends SQL (psycopg's client-side
binding, no prepared statements), PostgreSQL parses and plans it again on every start:
measured on the bench machine, 1.10 ms of PostgreSQL's CPU per two-task start, 0.45 ms
prepared. Prepared once per connection, each later start only binds and runs it.

Off by default (``TASK_ADMIN["PREPARED_STATEMENTS"] = False``), as Django leaves psycopg's own
preparation off: a pooler in transaction mode hands each transaction to whichever server
connection is free, where a statement prepared on another one does not exist (PgBouncer
before 1.21, and later versions without ``max_prepared_statements``, which is on by default
from 1.24; RDS Proxy pins such sessions). ``True`` is for a database reached directly or
through a pooler that keeps prepared statements; even then a database set up for a pooler
the way Django's documentation asks (``DISABLE_SERVER_SIDE_CURSORS``, or
``OPTIONS["prepare_threshold"] = None`` written out) is left alone.

Only this statement is prepared: psycopg's threshold is lifted while it runs and put back, so
the connection's other statements stay as Django sends them. Nothing is prepared while queries
are logged (``DEBUG``, the debug toolbar, a test counting them: the log then shows the values),
nor when the cursor Django made is not its own (an instrumented ``cursor_factory`` or wrapper,
which must keep seeing the statement).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from task_admin.conf import get_config


def prepares(connection) -> bool:
    """Whether ``connection``'s start statement is prepared (see the module's docstring)."""
    if connection.vendor != "postgresql" or not get_config()["PREPARED_STATEMENTS"]:
        return False
    if _cursor_class() is None:
        return False
    settings = connection.settings_dict
    options = settings.get("OPTIONS") or {}
    pooled = settings.get("DISABLE_SERVER_SIDE_CURSORS") or (
        "prepare_threshold" in options and options["prepare_threshold"] is None
    )
    return not pooled


@contextlib.contextmanager
def cursor(connection) -> Iterator:
    """``connection.cursor()``, whose ``execute`` prepares its statement when ``prepares``."""
    from django.db.backends.utils import CursorWrapper

    with connection.cursor() as wrapper:
        if (connection.queries_logged or not prepares(connection)
                or type(wrapper) is not CursorWrapper
                or type(wrapper.cursor) is not _django_cursor_class()):
            yield wrapper
            return
        # Django's wrapper (its checks done: health, thread sharing) around the preparing cursor
        # instead of its own client-binding one, which goes back in afterwards and is closed
        # with the wrapper.
        own, wrapper.cursor = wrapper.cursor, _cursor_class()(connection.connection)
        try:
            yield wrapper
        finally:
            wrapper.cursor.close()
            wrapper.cursor = own


# A threshold no statement reaches by being repeated: psycopg then prepares only the ones
# executed with prepare=True.
_ONLY_WHEN_ASKED = 2**31
_class = None


def _django_cursor_class():
    from django.db.backends.postgresql.base import Cursor

    return Cursor


def _cursor_class():
    """psycopg 3's server-binding cursor, preparing every statement it executes; None with
    psycopg2 (no such cursor: statements go as Django sends them)."""
    global _class
    if _class is None:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        _class = _preparing_cursor() if is_psycopg3 else False
    return _class or None


def _preparing_cursor():
    import psycopg
    from psycopg.adapt import Dumper

    class UntypedInt(Dumper):
        """An int as text of no declared type: psycopg keys a prepared statement by its
        parameters' types, and would type each int by its size (smallint, integer, bigint)
        and a None apart, preparing one statement per combination of ids. Every placeholder
        of the statement carries its cast."""

        oid = 0

        def dump(self, obj):
            return int.__repr__(obj).encode()

    class PreparingCursor(psycopg.Cursor):
        def __init__(self, connection, **kwargs):
            super().__init__(connection, **kwargs)
            self.adapters.register_dumper(int, UntypedInt)

        def execute(self, query, params=None, *, prepare=None, binary=None):
            # psycopg prepares nothing on a connection whose prepare_threshold is None
            # (Django's default), even when asked: lifted for this statement only.
            connection = self.connection
            threshold = connection.prepare_threshold
            if threshold is None:
                connection.prepare_threshold = _ONLY_WHEN_ASKED
            try:
                return super().execute(query, params, prepare=True, binary=binary)
            finally:
                connection.prepare_threshold = threshold

    return PreparingCursor
