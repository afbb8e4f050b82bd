"""A cursor for a run start's ``INSERT``: prepared on PostgreSQL when the settings allow it.

A start is on the caller's path (a "Run now" click, ``services.start``, a beat firing) and its
``INSERT`` is the same SQL text every time. Sent as Django sends SQL (psycopg's client-side
binding, no prepared statements), PostgreSQL parses and plans it again on every start:
measured on the bench machine, 1.10 ms of PostgreSQL's CPU per two-task start, 0.45 ms
prepared. Prepared once per connection, each later start only binds and runs it.

``TASK_ADMIN["PREPARED_STATEMENTS"]``:

- ``"auto"`` (the default): prepared only on a connection that reaches PostgreSQL itself. A
  pooler in transaction mode hands each transaction to whichever server connection is free,
  where a statement prepared on another one does not exist, or is another client's statement
  under the same name (PgBouncer before 1.21, later versions without
  ``max_prepared_statements``, RDS Proxy). Django leaves psycopg's preparation off for that
  reason. A connection proves it is direct with its first start: the statement also returns
  the server process that ran it (``pg_backend_pid()``), which is the process named when the
  connection was opened (``connection.info.backend_pid``, from the server's cancel key) only
  when nothing stands between the two: a pooler gives its clients cancel keys of its own, as it
  has to route their cancel requests. Proven, the later starts on that connection are prepared.
- ``True``: prepared on every connection, for a pooler that keeps prepared statements
  (PgBouncer 1.24 and later by default) or in session mode.
- ``False``: never.

Whatever the setting, a database set up for a pooler the way Django's documentation asks
(``DISABLE_SERVER_SIDE_CURSORS``, or ``OPTIONS["prepare_threshold"] = None`` written out) is
left alone.

Only this statement is prepared: psycopg's threshold is lifted while it runs and put back, so
the connection's other statements stay as Django sends them. Nothing is prepared while queries
are logged (``DEBUG``, the debug toolbar, a test counting them: the log then shows the values),
nor when the cursor Django made is not its own (an instrumented ``cursor_factory`` or wrapper,
which must keep seeing the statement).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator

from task_admin.conf import get_config

# The psycopg connections known to reach PostgreSQL directly (True) or not (False), as their
# first start showed (``note_server``); forgotten with the connection.
_direct: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepares(connection) -> bool:
    """Whether ``connection``'s start statement is prepared now (see the module's docstring)."""
    mode = get_config()["PREPARED_STATEMENTS"]
    if connection.vendor != "postgresql" or not mode:
        return False
    if _cursor_class() is None:
        return False
    settings = connection.settings_dict
    options = settings.get("OPTIONS") or {}
    if settings.get("DISABLE_SERVER_SIDE_CURSORS") or (
        "prepare_threshold" in options and options["prepare_threshold"] is None
    ):
        return False
    if mode is True:
        return True
    raw = connection.connection
    return raw is not None and _direct.get(raw, False)


def note_server(connection, backend_pid: int) -> None:
    """Remember whether the server process that ran a start on ``connection`` is the one it
    connected to (``"auto"``: proof that no pooler stands between them)."""
    raw = connection.connection
    if raw is not None and raw not in _direct:
        _direct[raw] = backend_pid == raw.info.backend_pid


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
        # with the wrapper. The preparing cursor is made once per connection: making one (and
        # its adapters) was a tenth of a start's time in Python.
        own, wrapper.cursor = wrapper.cursor, _preparing_cursor_of(connection)
        try:
            yield wrapper
        finally:
            wrapper.cursor = own


# Per thread and database alias (a Django connection): its psycopg connection and the
# preparing cursor made on it, made again when Django has connected anew.
_made = threading.local()


def _preparing_cursor_of(connection):
    raw = connection.connection
    cursors = _made.__dict__.setdefault("cursors", {})
    made = cursors.get(connection.alias)
    if made is None or made[0] is not raw or made[1].closed:
        made = cursors[connection.alias] = (raw, _cursor_class()(raw))
    return made[1]


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
