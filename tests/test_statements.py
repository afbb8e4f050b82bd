"""A run start's INSERT is prepared once per PostgreSQL connection (models/statements.py), and
nothing else is: Django's own statements stay as Django sends them. ``"auto"`` (the default)
prepares only on a connection that its first start showed to reach PostgreSQL directly; a
database set up for a pooler in transaction mode gets no prepared statement at all, nor does
any with the setting off."""

from __future__ import annotations

from types import SimpleNamespace

import psycopg
import pytest
from django.db import DatabaseError, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from task_admin import services
from task_admin.models import Workflow, statements
from tests.support import factories

POSTGRES = connection.vendor == "postgresql"
needs_postgres = pytest.mark.skipif(not POSTGRES, reason="prepared statements are PostgreSQL's")
PREPARED = override_settings(TASK_ADMIN={"PREPARED_STATEMENTS": True})


def _database(vendor="postgresql", **settings):
    return SimpleNamespace(vendor=vendor, settings_dict={"OPTIONS": {}, **settings},
                           connection=None)


@pytest.mark.parametrize(
    ("configured", "database", "expected"),
    [
        (False, _database(), False),
        (True, _database(), True),
        ("auto", _database(), False),  # not shown to be direct (not even connected)
        ("on", _database(), False),  # not a value it knows (check E006): nothing prepared
        (1, _database(), False),
        (True, _database(DISABLE_SERVER_SIDE_CURSORS=True), False),
        (True, _database(OPTIONS={"prepare_threshold": None}), False),
        (True, _database(OPTIONS={"prepare_threshold": 5}), True),
        (True, _database("sqlite"), False),
    ],
)
def test_what_is_prepared_follows_the_setting_then_the_database(configured, database, expected):
    with override_settings(TASK_ADMIN={"PREPARED_STATEMENTS": configured}):
        assert statements.prepares(database) is expected


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def _fresh_connection() -> None:
    connection.close()
    connection.ensure_connection()


def _start(workflow: Workflow, times: int, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks():  # nothing is sent: no worker here
        for _ in range(times):
            services.run_workflow(workflow)


@needs_postgres
@PREPARED
@pytest.mark.django_db(transaction=True)
def test_the_start_insert_is_prepared_once_and_django_statements_are_not(
    django_capture_on_commit_callbacks, django_user_model,
):
    workflow = factories.workflow("prepared", ("group", [factories.invocation(args=[1, 2]),
                                                         factories.invocation(args=[1, 2])]))
    user = django_user_model.objects.create(username="starter", is_staff=True)
    _fresh_connection()
    _start(workflow, 3, django_capture_on_commit_callbacks)
    # An id where the others had None (the user who started it): the same statement.
    with django_capture_on_commit_callbacks():
        services.run_workflow(workflow, user=user)
        services.run_workflow(workflow, user=user)
    for _ in range(6):  # more than psycopg's own threshold would allow, were it set
        list(Workflow.objects.filter(name="prepared"))
    prepared = _prepared()
    assert len(prepared) == 1, prepared
    assert prepared[0].startswith("WITH new_run AS (INSERT")
    # The connection is left as Django set it up: psycopg prepares nothing by itself.
    assert connection.connection.prepare_threshold is None
    assert workflow.runs.count() == 5


@needs_postgres
@override_settings(TASK_ADMIN={"PREPARED_STATEMENTS": False})
@pytest.mark.django_db(transaction=True)
def test_nothing_is_prepared_when_off(django_capture_on_commit_callbacks):
    workflow = factories.workflow("off", ("group", [factories.invocation(args=[1, 2])]))
    _fresh_connection()
    _start(workflow, 3, django_capture_on_commit_callbacks)
    assert _prepared() == []


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_by_default_a_direct_connection_prepares_from_its_second_start(
    django_capture_on_commit_callbacks,
):
    workflow = factories.workflow("auto", ("group", [factories.invocation(args=[1, 2])]))
    _fresh_connection()
    assert not statements.prepares(connection)
    _start(workflow, 1, django_capture_on_commit_callbacks)
    assert _prepared() == []  # the first start is how the connection shows it is direct
    assert statements.prepares(connection)
    _start(workflow, 3, django_capture_on_commit_callbacks)
    prepared = _prepared()
    assert len(prepared) == 1 and prepared[0].startswith("WITH new_run AS (INSERT"), prepared
    assert workflow.runs.count() == 4
    # A new connection proves itself again.
    _fresh_connection()
    assert not statements.prepares(connection)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_by_default_a_connection_through_a_pooler_prepares_nothing(
    django_capture_on_commit_callbacks, monkeypatch,
):
    """A pooler gives its clients cancel keys of its own: the process the connection was told
    of at connect is not the server process that runs its statements."""
    workflow = factories.workflow("via-pooler", ("group", [factories.invocation(args=[1, 2])]))
    _fresh_connection()
    told = connection.connection.info.backend_pid + 1
    monkeypatch.setattr(psycopg.ConnectionInfo, "backend_pid", property(lambda info: told))
    _start(workflow, 3, django_capture_on_commit_callbacks)
    assert _prepared() == []
    assert not statements.prepares(connection)
    assert workflow.runs.count() == 3


@needs_postgres
@PREPARED
@pytest.mark.django_db(transaction=True)
def test_a_database_behind_a_transaction_pooler_gets_no_prepared_statement(
    django_capture_on_commit_callbacks, monkeypatch,
):
    workflow = factories.workflow("pooled", ("group", [factories.invocation(args=[1, 2])]))
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    _fresh_connection()
    _start(workflow, 3, django_capture_on_commit_callbacks)
    assert _prepared() == []
    assert workflow.runs.count() == 3


@needs_postgres
@PREPARED
@pytest.mark.django_db(transaction=True)
def test_a_failed_statement_leaves_the_connection_as_it_was():
    _fresh_connection()
    with pytest.raises(DatabaseError), statements.cursor(connection) as cursor:
        cursor.execute("SELECT 1 / (%s::integer - 1)", [1])
    assert connection.connection.prepare_threshold is None


@needs_postgres
@PREPARED
@pytest.mark.django_db
def test_while_queries_are_logged_the_insert_is_logged_with_its_values(
    django_capture_on_commit_callbacks,
):
    workflow = factories.workflow("logged-start", ("group", [factories.invocation(args=[1, 2])]))
    with django_capture_on_commit_callbacks(), CaptureQueriesContext(connection) as ctx:
        services.run_workflow(workflow)
    inserts = [q["sql"] for q in ctx.captured_queries if q["sql"] and "INSERT" in q["sql"]]
    assert any("logged-start" in sql for sql in inserts), ctx.captured_queries


def _info(hostaddr="127.0.0.1", port=5432, pid=100):
    return SimpleNamespace(hostaddr=hostaddr, port=port, backend_pid=pid)


@pytest.mark.parametrize(
    ("info", "address", "port", "direct"),
    [
        (_info(), "127.0.0.1", 5432, True),
        (_info(hostaddr="::1"), "0:0:0:0:0:0:0:1", 5432, True),
        (_info(hostaddr=""), None, None, True),  # a Unix socket at both ends
        (_info(port=6432), "127.0.0.1", 5432, False),  # a pooler on the same host
        (_info(hostaddr="10.0.0.5"), "10.0.0.9", 5432, False),  # a pooler on another host
        (_info(), None, None, False),  # the client used TCP, the server sees a Unix socket
    ],
)
def test_a_connection_is_direct_only_where_it_was_opened_to(info, address, port, direct):
    assert statements._same_socket(info, address, port) is direct


def test_without_libpq_12_the_socket_cannot_be_compared():
    class Old:
        port = 5432

        @property
        def hostaddr(self):
            raise psycopg.NotSupportedError("libpq too old")

    assert statements._same_socket(Old(), "127.0.0.1", 5432) is False


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_start_run_by_another_server_process_ends_the_preparing_for_good(
    django_capture_on_commit_callbacks,
):
    workflow = factories.workflow("moved", ("group", [factories.invocation(args=[1, 2])]))
    _fresh_connection()
    _start(workflow, 1, django_capture_on_commit_callbacks)
    assert statements.prepares(connection)
    pid = connection.connection.info.backend_pid
    statements.note_server(connection, (pid + 1, "127.0.0.1", 5432))
    assert not statements.prepares(connection)
    statements.note_server(connection, (pid, "127.0.0.1", 5432))
    assert not statements.prepares(connection)
