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
  ``max_prepared_statements``); Django leaves psycopg's preparation off for that reason. A
  connection shows it is direct with its first start (``note_server``): the statement also
  returns the server process and socket that ran it, and they must be the process the server
  named when the connection was opened (``connection.info.backend_pid``, from the cancel key,
  which a pooler makes up for its clients) and the address and port the connection was opened
  to (a pooler's socket is another one). Every later start checks the process again. With
  Django's default ``CONN_MAX_AGE = 0`` a web request's connection seldom starts twice, so
  this pays off for persistent connections, the beat and scripts.
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
# starts showed (``note_server``); forgotten with the connection.
_direct: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _mode():
    """The setting as True, "auto" or False: any other value prepares nothing (check E006 says
    so at start-up)."""
    mode = get_config()["PREPARED_STATEMENTS"]
    return mode if mode is True or mode == "auto" else False


def prepares(connection) -> bool:
    """Whether ``connection``'s start statement is prepared now (see the module's docstring)."""
    mode = _mode()
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


# What the start's statement returns, after the run's id and alert rule, for ``note_server``.
SERVER_COLUMNS = "pg_backend_pid(), host(inet_server_addr()), inet_server_port()"


def note_server(connection, server: tuple) -> None:
    """``"auto"``: whether ``connection`` reaches PostgreSQL directly, from the server process
    and socket that ran a start (``SERVER_COLUMNS``).

    Direct when that process is the one the server named when the connection was opened (the
    pid of its cancel key, which a pooler makes up for its clients, as it routes their cancel
    requests) and the server's end of the socket is the address and port the connection was
    opened to (a pooler is another socket). Checked again at every start: one that ran
    elsewhere marks the connection as not direct for good.
    """
    if _mode() != "auto" or _cursor_class() is None:
        return
    raw = connection.connection
    if raw is None:
        return
    known = _direct.get(raw)
    if known is False:
        return
    pid, address, port = server
    info = raw.info
    if known is None:
        _direct[raw] = pid == info.backend_pid and _same_socket(info, address, port)
    elif pid != info.backend_pid:
        _direct[raw] = False


def _same_socket(info, address: str | None, port: int | None) -> bool:
    import ipaddress

    try:
        connected_to = info.hostaddr  # the address libpq connected to ("" for a Unix socket)
    except Exception:  # libpq before 12 cannot say: not proven
        return False
    if address is None:  # the server's end is a Unix socket
        return not connected_to
    try:
        return (port == info.port
                and ipaddress.ip_address(address) == ipaddress.ip_address(connected_to))
    except ValueError:
        return False


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
