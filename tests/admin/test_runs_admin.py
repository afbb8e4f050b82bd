"""The run pages: workflow runs and task runs in the admin, revoke and re-run, big tables."""

from __future__ import annotations

import importlib.util
import re
from unittest import mock

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from task_admin import services
from task_admin.admin.lists import BoundedCountPaginator
from task_admin.models import NodeState, RunStatus, TaskAttempt, TaskRun, Trigger, WorkflowRun
from tests.support.factories import SUMA, invocation
from tests.support.plans import assert_served, statements
from tests.support.runs import finish, start_run

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HAS_GRAPH = importlib.util.find_spec("task_admin.graph") is not None


def url(name: str, *args) -> str:
    return reverse(f"admin:task_admin_{name}", args=args)


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    return start_run(django_capture_on_commit_callbacks)


@pytest.fixture
def failed_run(django_capture_on_commit_callbacks):
    run = start_run(django_capture_on_commit_callbacks, "half")
    return finish(run, root_0=(NodeState.SUCCESS, 4), root_1=(NodeState.FAILURE, "boom"))


# -- the run page -------------------------------------------------------------------------


def test_run_page_shows_nodes_states_graph_and_canvas(admin_client, run):
    response = admin_client.get(url("workflowrun_change", run.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert run.workflow_name in html
    for node in run.nodes.all():
        assert f'data-path="{node.path}"' in html
        assert reverse("admin:task_admin_taskrun_change", args=[node.pk]) in html
    assert "ta-state-pending" in html
    assert "chain(suma.s(2, 2), suma.s(4))" in html  # the exact canvas sent
    assert 'id="ta-run-config"' in html and "run_refresh.js" in html  # auto-refresh is on
    assert url("workflowrun_status", run.pk) in html
    if HAS_GRAPH:
        assert "<svg" in html and 'class="ta-node ta-state-pending"' in html
    # Actions for a superuser on an unfinished run: revoke, not re-run.
    assert url("workflowrun_revoke", run.pk) in html
    assert url("workflowrun_rerun", run.pk) not in html


@pytest.mark.parametrize("age_seconds", [0, 3600])  # an old unfinished run is reconciled
def test_run_page_queries_do_not_grow_with_nodes(admin_client, django_capture_on_commit_callbacks,
                                                 age_seconds):
    small = start_run(django_capture_on_commit_callbacks, "small")
    big = start_run(
        django_capture_on_commit_callbacks, "big",
        ("group", [invocation(SUMA, [i, i]) for i in range(30)]),
    )
    WorkflowRun.objects.update(created_at=timezone.now() - timezone.timedelta(seconds=age_seconds))
    for node in big.nodes.all()[:10]:
        TaskAttempt.objects.create(task_run=node, number=1, state=NodeState.STARTED)
    admin_client.get(url("workflowrun_change", small.pk))  # warm caches (content types)
    counts = []
    for run in (small, big):
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url("workflowrun_change", run.pk)).status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1] and counts[1] <= 16


def test_task_runs_of_one_run(admin_client, django_capture_on_commit_callbacks, run):
    other = start_run(django_capture_on_commit_callbacks, "other")
    html = admin_client.get(url("workflowrun_change", run.pk)).content.decode()
    nodes_url = url("taskrun_changelist") + f"?run={run.pk}"
    assert nodes_url in html
    listing = admin_client.get(nodes_url).content.decode()
    assert "2 task runs" in listing
    for node in other.nodes.all():
        assert url("taskrun_change", node.pk) not in listing


def test_the_search_by_task_id_is_an_exact_match_the_unique_index_serves(admin_client, run):
    """Not Django's ``=task_id`` search: ``UPPER(task_id) = UPPER(...)`` on PostgreSQL,
    ``LIKE`` on SQLite, which no index serves (a scan of every task ever run)."""
    node = run.nodes.get(path="root.1")
    table = TaskRun._meta.db_table
    with CaptureQueriesContext(connection) as ctx:
        found = admin_client.get(url("taskrun_changelist"), {"q": f"  {node.task_id} "})
    assert list(found.context["cl"].result_list) == [node]
    searched = statements(ctx, table, node.task_id)
    assert not [sql for sql in searched if "UPPER(" in sql.upper() or " LIKE " in sql], searched
    assert_served(searched, table, ("task_id",))
    # Celery's task ids are case-sensitive: another case is another task.
    other_case = admin_client.get(url("taskrun_changelist"), {"q": node.task_id.upper()})
    assert other_case.status_code == 200 and other_case.context["cl"].result_count == 0


def test_run_page_of_finished_run_has_no_refresh_and_offers_rerun(admin_client, failed_run):
    html = admin_client.get(url("workflowrun_change", failed_run.pk)).content.decode()
    assert "run_refresh.js" not in html
    assert url("workflowrun_rerun", failed_run.pk) in html
    assert url("workflowrun_revoke", failed_run.pk) not in html
    assert "ta-state-partially_failed" in html and "ta-state-failure" in html
    assert "2/2" in html
    assert "ValueError: boom" in html and '<details class="ta-node-details"' in html
    assert "Traceback (most recent call last)" not in html  # loaded on demand, as JSON


def test_run_page_links_nodes_to_task_results_in_one_query(admin_client, failed_run):
    from django_celery_results.models import TaskResult

    nodes = list(failed_run.nodes.order_by("position"))
    rows = [TaskResult.objects.create(task_id=n.task_id, status=n.state) for n in nodes]
    with CaptureQueriesContext(connection) as ctx:
        html = admin_client.get(url("workflowrun_change", failed_run.pk)).content.decode()
    for row in rows:
        assert reverse("admin:django_celery_results_taskresult_change", args=[row.pk]) in html
    result_queries = [q for q in ctx.captured_queries
                      if TaskResult._meta.db_table in q["sql"]]
    assert len(result_queries) == 1


def test_results_and_tracebacks_are_escaped(admin_client, django_capture_on_commit_callbacks):
    run = start_run(django_capture_on_commit_callbacks, XSS)
    first, second = run.nodes.order_by("position")
    TaskRun.objects.filter(pk=first.pk).update(state=NodeState.SUCCESS, result={"x": XSS})
    TaskRun.objects.filter(pk=second.pk).update(
        state=NodeState.FAILURE, exception=XSS, traceback=f"Traceback\n{XSS}"
    )
    TaskAttempt.objects.create(task_run=second, number=1, state=NodeState.RETRY, reason=XSS)
    for page in (
        url("workflowrun_change", run.pk),
        url("taskrun_change", first.pk),
        url("taskrun_change", second.pk),
        url("workflowrun_changelist"),
        url("taskrun_changelist"),
    ):
        html = admin_client.get(page).content.decode()
        assert XSS not in html, page
    run_page = admin_client.get(url("workflowrun_change", run.pk)).content.decode()
    assert XSS_ESCAPED in run_page
    assert run_page.count(XSS_ESCAPED) >= 3  # result preview, exception, traceback, reason
    result_page = admin_client.get(url("taskrun_change", first.pk)).content.decode()
    assert "&quot;x&quot;: &quot;" + XSS_ESCAPED in result_page  # pretty JSON, escaped
    traceback_page = admin_client.get(url("taskrun_change", second.pk)).content.decode()
    assert XSS_ESCAPED in traceback_page


def test_result_preview_is_cut(admin_client, settings, failed_run):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "RESULT_PREVIEW_CHARS": 12}
    node = failed_run.nodes.get(path="root.0")
    node.result = {"long": "x" * 500}
    node.save()
    html = admin_client.get(url("workflowrun_change", failed_run.pk)).content.decode()
    assert "x" * 30 not in html
    assert "{&quot;long&quot;: &quot;xx…</code>" in html
    data = admin_client.get(url("workflowrun_status", failed_run.pk)).json()
    assert data["nodes"][0]["result"] == '{"long": "xx…'


def test_status_endpoint(admin_client, failed_run):
    response = admin_client.get(url("workflowrun_status", failed_run.pk))
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == RunStatus.PARTIALLY_FAILED and data["finished"] is True
    assert (data["finished_nodes"], data["total_nodes"]) == (2, 2)
    assert data["counts"] == {"SUCCESS": 1, "FAILURE": 1}
    assert [(n["path"], n["state"], n["attempts"], n["result"]) for n in data["nodes"]] == [
        ("root.0", "SUCCESS", 1, "4"),
        ("root.1", "FAILURE", 1, ""),
    ]
    assert admin_client.post(url("workflowrun_status", failed_run.pk)).status_code == 405
    assert admin_client.get(url("workflowrun_status", 999999)).status_code == 404
    assert admin_client.get(url("workflowrun_status", "nope")).status_code == 404


def test_run_page_reconciles_and_survives_reconcile_errors(admin_client, run):
    with mock.patch.object(services, "reconcile_run", side_effect=RuntimeError("down")) as rec:
        response = admin_client.get(url("workflowrun_change", run.pk))
    assert response.status_code == 200
    rec.assert_called_once()


def test_get_never_mutates(admin_client, run, failed_run):
    def state():
        return (
            list(WorkflowRun.objects.order_by("pk").values_list("pk", "status", "finished_nodes")),
            list(TaskRun.objects.order_by("pk").values_list("pk", "state")),
            LogEntry.objects.count(),
        )

    before = state()
    for target in (run, failed_run):
        for name in ("change", "status", "revoke", "rerun", "history", "delete"):
            response = admin_client.get(url(f"workflowrun_{name}", target.pk))
            assert response.status_code == 200, name
    assert state() == before


def test_nobody_adds_or_changes_runs(admin_client, run):
    assert admin_client.get(url("workflowrun_add")).status_code == 403
    assert admin_client.post(url("workflowrun_change", run.pk), {"note": "x"}).status_code == 403
    node = run.nodes.first()
    assert admin_client.get(url("taskrun_add")).status_code == 403
    assert admin_client.post(url("taskrun_change", node.pk), {}).status_code == 403
    assert admin_client.get(url("taskrun_delete", node.pk)).status_code == 403
    run.refresh_from_db()
    assert run.note == ""


def test_deleting_a_run_takes_its_task_runs(admin_client, failed_run):
    response = admin_client.get(url("workflowrun_delete", failed_run.pk))
    assert response.status_code == 200
    assert "permission to delete" not in response.content.decode()
    response = admin_client.post(url("workflowrun_delete", failed_run.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not TaskRun.objects.filter(run_id=failed_run.pk).exists()


# -- revoke -------------------------------------------------------------------------------


def test_revoke_confirmation_then_post(admin_client, admin_user, run):
    page = url("workflowrun_revoke", run.pk)
    response = admin_client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "root.0" in html and "root.1" in html and 'name="terminate"' in html
    assert set(run.nodes.values_list("state", flat=True)) == {NodeState.PENDING}  # GET: nothing

    response = admin_client.post(page)
    assert response.status_code == 302 and response.url == url("workflowrun_change", run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.REVOKED
    assert set(run.nodes.values_list("state", flat=True)) == {NodeState.REVOKED}
    entry = LogEntry.objects.get(object_id=str(run.pk), action_flag=CHANGE)
    assert entry.user == admin_user and "Revoked 2 unfinished tasks" in entry.change_message


def test_revoke_without_terminate_says_started_tasks_go_on(admin_client, run):
    run.nodes.filter(path="root.0").update(state=NodeState.STARTED)
    response = admin_client.post(url("workflowrun_revoke", run.pk), follow=True)
    [message] = list(response.context["messages"])
    assert message.level_tag == "warning"
    assert "Revoked 1 unfinished task." in message.message
    assert "1 task had started and runs to its end" in message.message
    assert run.nodes.get(path="root.0").state == NodeState.STARTED


def test_revoke_of_finished_run_is_refused_without_500(admin_client, failed_run):
    page = url("workflowrun_revoke", failed_run.pk)
    html = admin_client.get(page).content.decode()
    assert "already finished" in html and "Yes, revoke" not in html
    response = admin_client.post(page, follow=True)
    assert response.status_code == 200
    assert "already finished" in response.content.decode()
    assert not LogEntry.objects.exists()


def test_revoke_broker_error_is_a_message(admin_client, run):
    # The broker fails under services.revoke_run, which wraps it once (BrokerUnavailable).
    from task_admin import registry

    with mock.patch.object(
        registry.get_app().control, "revoke", side_effect=OperationalError("Connection refused")
    ):
        response = admin_client.post(url("workflowrun_revoke", run.pk), follow=True)
    assert response.status_code == 200
    assert "broker could not be reached" in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING
    assert not LogEntry.objects.exists()


def test_revoke_action_in_changelist(admin_client, django_capture_on_commit_callbacks,
                                     failed_run):
    first = start_run(django_capture_on_commit_callbacks, "one")
    second = start_run(django_capture_on_commit_callbacks, "two")
    response = admin_client.post(
        url("workflowrun_changelist"),
        {"action": "revoke_runs", "_selected_action": [first.pk, second.pk, failed_run.pk]},
        follow=True,
    )
    html = response.content.decode()
    assert "Revoked 2 runs (4 unfinished tasks)." in html
    assert "1 run had already finished and was left alone." in html
    assert set(WorkflowRun.objects.filter(pk__in=[first.pk, second.pk])
               .values_list("status", flat=True)) == {RunStatus.REVOKED}
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 2


# -- re-run -------------------------------------------------------------------------------


def test_rerun_confirmation_lists_kept_and_rerun_nodes(admin_client, failed_run):
    before = WorkflowRun.objects.count()
    response = admin_client.get(url("workflowrun_rerun", failed_run.pk))
    assert response.status_code == 200
    html = response.content.decode()
    again = html[html.index('id="ta-rerun-again"'):html.index('id="ta-rerun-kept"')]
    kept = html[html.index('id="ta-rerun-kept"'):]
    assert "1 task will run again" in again and 'data-path="root.1"' in again
    assert "1 result is kept" in kept and 'data-path="root.0"' in kept
    assert 'data-path="root.0"' not in again and 'data-path="root.1"' not in kept
    assert WorkflowRun.objects.count() == before  # GET never mutates
    assert not LogEntry.objects.exists()


def test_rerun_post_creates_a_new_run_and_redirects(
    admin_client, admin_user, failed_run, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(url("workflowrun_rerun", failed_run.pk))
    assert len(callbacks) == 1  # the dispatch, not executed here
    new = WorkflowRun.objects.get(rerun_of=failed_run)
    assert response.status_code == 302 and response.url == url("workflowrun_change", new.pk)
    assert new.trigger == Trigger.RERUN and new.triggered_by == admin_user
    kept = new.nodes.get(path="root.0")
    assert kept.task_name == services.REPLAY_TASK
    assert kept.reused_from == failed_run.nodes.get(path="root.0")
    assert new.nodes.get(path="root.1").task_name == SUMA
    assert LogEntry.objects.filter(object_id=str(new.pk), action_flag=ADDITION).exists()
    assert LogEntry.objects.filter(object_id=str(failed_run.pk), action_flag=CHANGE).exists()
    page = admin_client.get(response.url).content.decode()
    assert f"Re-run of #{failed_run.pk}" in page


def test_rerun_refusals_are_messages(admin_client, run, failed_run):
    # Unfinished: the confirmation says why and offers no button; a POST is refused politely.
    html = admin_client.get(url("workflowrun_rerun", run.pk)).content.decode()
    assert "has not finished yet" in html and "Yes, re-run" not in html
    response = admin_client.post(url("workflowrun_rerun", run.pk), follow=True)
    assert response.status_code == 200 and "has not finished yet" in response.content.decode()
    problem = services.canvas.Problem("root.1", "task is not registered")
    with mock.patch.object(services, "rerun_from_failure",
                           side_effect=services.WorkflowProblems([problem])):
        response = admin_client.post(url("workflowrun_rerun", failed_run.pk), follow=True)
    assert response.status_code == 200
    assert "task is not registered" in response.content.decode()
    assert WorkflowRun.objects.filter(rerun_of__isnull=False).count() == 0


def test_rerun_action_in_changelist(admin_client, failed_run, run,
                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            url("workflowrun_changelist"),
            {"action": "rerun_runs", "_selected_action": [failed_run.pk, run.pk]},
            follow=True,
        )
    html = response.content.decode()
    new = WorkflowRun.objects.get(rerun_of=failed_run)
    assert f"Started 1 re-run: #{new.pk}." in html
    assert "1 run was skipped" in html


def test_user_with_view_and_revoke_permission(client, django_user_model, run, failed_run):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="task_admin",
        codename__in=["view_workflowrun", "view_taskrun", "revoke_workflowrun"],
    ))
    client.force_login(user)
    html = client.get(url("workflowrun_change", run.pk)).content.decode()
    assert url("workflowrun_revoke", run.pk) in html
    changelist = client.get(url("workflowrun_changelist")).content.decode()
    assert 'value="revoke_runs"' in changelist and 'value="rerun_runs"' not in changelist
    assert client.get(url("workflowrun_rerun", failed_run.pk)).status_code == 403
    assert client.post(url("workflowrun_rerun", failed_run.pk)).status_code == 403
    assert client.post(url("workflowrun_revoke", run.pk)).status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.REVOKED


# -- lists over big tables ----------------------------------------------------------------


def _unbounded_counts(queries, table: str) -> list[str]:
    """COUNT queries over ``table`` that are not capped by a LIMIT."""
    out = []
    for query in queries:
        sql = query["sql"]
        if re.search(r"\bCOUNT\(", sql, re.I) and table in sql and "LIMIT" not in sql.upper():
            out.append(sql)
    return out


@pytest.fixture
def many_runs(db):
    spec = {"version": 1, "root": {"type": "task", "task": SUMA, "args": [1, 2]}}
    now = timezone.now()
    WorkflowRun.objects.bulk_create(
        [
            WorkflowRun(
                workflow_name=f"bulk {i % 7}", spec=spec, trigger=Trigger.SCHEDULE,
                trigger_detail="beat", status=RunStatus.SUCCEEDED, total_nodes=1,
                finished_nodes=1, started_at=now, finished_at=now,
            )
            for i in range(10_000)
        ],
        batch_size=2000,
    )
    run_ids = list(WorkflowRun.objects.values_list("pk", flat=True)[:100])
    TaskRun.objects.bulk_create(
        [
            TaskRun(
                run_id=run_ids[i // 100], task_id=f"bulk-{i}", path=f"root.{i % 100}",
                position=i % 100, task_name=SUMA, state=NodeState.SUCCESS, result=i,
                attempt_count=1, worker="celery@bulk", runtime=0.01,
            )
            for i in range(10_000)
        ],
        batch_size=2000,
    )


LISTS = [
    ("workflowrun", ""),
    ("workflowrun", "?status__exact=succeeded"),
    ("workflowrun", "?trigger__exact=schedule&created_at__year=2020"),
    ("workflowrun", "?q=bulk"),
    ("workflowrun", "?q=%2342"),
    ("workflowrun", "?p=3"),
    ("taskrun", ""),
    ("taskrun", "?state__exact=SUCCESS"),
    ("taskrun", f"?task_name={SUMA}"),
    ("taskrun", "?run=1"),
    ("taskrun", "?q=bulk-5"),
]


def test_changelists_over_10000_rows(admin_client, many_runs, django_assert_max_num_queries):
    for model, params in LISTS:
        table = {"workflowrun": WorkflowRun, "taskrun": TaskRun}[model]._meta.db_table
        with CaptureQueriesContext(connection) as ctx, django_assert_max_num_queries(12):
            response = admin_client.get(url(f"{model}_changelist") + params)
        assert response.status_code == 200, (model, params)
        assert not _unbounded_counts(ctx.captured_queries, table), (model, params)
        if not params:
            html = response.content.decode()
            limit = BoundedCountPaginator.count_limit
            assert f"more than {limit}" in html or re.search(r"about \d+ ", html)


def test_bounded_paginator_counts_exactly_below_the_limit(many_runs):
    paginator = BoundedCountPaginator(WorkflowRun.objects.filter(workflow_name="bulk 3"), 100)
    assert paginator.count == WorkflowRun.objects.filter(workflow_name="bulk 3").count()
    assert paginator.count_is_exact
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {WorkflowRun._meta.db_table}")
        estimated = BoundedCountPaginator(WorkflowRun.objects.all(), 100)
        assert 9000 <= estimated.count <= 11000  # the planner's estimate, not a count
        assert estimated.count_is_estimate and not estimated.count_is_exact
    else:
        capped = BoundedCountPaginator(WorkflowRun.objects.all(), 100)
        assert capped.count == BoundedCountPaginator.count_limit and not capped.count_is_exact


def test_a_second_rerun_waits_for_the_first(admin_client, failed_run,
                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        first = services.rerun_from_failure(failed_run)
        with pytest.raises(services.CannotRun, match=f"Run #{first.pk}, a re-run"):
            services.rerun_from_failure(failed_run)
        response = admin_client.post(url("workflowrun_rerun", failed_run.pk), follow=True)
    assert f"Run #{first.pk}, a re-run of this run" in response.content.decode()
    assert WorkflowRun.objects.filter(rerun_of=failed_run).count() == 1
    WorkflowRun.objects.filter(pk=first.pk).update(status=RunStatus.FAILED)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.rerun_from_failure(failed_run).pk != first.pk


def test_a_disabled_workflow_is_not_rerun(admin_client, failed_run):
    failed_run.workflow.enabled = False
    failed_run.workflow.save()
    response = admin_client.post(url("workflowrun_rerun", failed_run.pk), follow=True)
    assert "is disabled" in response.content.decode()
    assert not WorkflowRun.objects.filter(rerun_of=failed_run).exists()


def test_a_result_stored_as_a_stand_in_is_computed_again(failed_run,
                                                          django_capture_on_commit_callbacks):
    from task_admin import tracking

    assert tracking.json_result(float("nan")) == ({"repr": "nan"}, False)
    assert tracking.json_result([1, 2]) == ([1, 2], True)
    TaskRun.objects.filter(run=failed_run, path="root.0").update(
        result={"repr": "nan"}, result_complete=False
    )
    with django_capture_on_commit_callbacks(execute=False):
        new = services.rerun_from_failure(failed_run)
    again = new.nodes.get(path="root.0")
    assert again.task_name == SUMA and again.reused_from is None
    assert "2 of 2 tasks run again; results kept: 0" in new.note


@pytest.mark.parametrize("typed", ["²", "#²", "9" * 40])
def test_odd_numbers_typed_in_search_and_filters_are_no_server_error(admin_client, run, typed):
    runs = admin_client.get(url("workflowrun_changelist"), {"q": typed})
    assert runs.status_code == 200 and runs.context["cl"].result_count == 0
    nodes = admin_client.get(url("taskrun_changelist"), {"run": typed})
    assert nodes.status_code == 200
    by_number = admin_client.get(url("workflowrun_changelist"), {"q": f"#{run.pk}"})
    assert list(by_number.context["cl"].result_list) == [run]


# -- the run page at scale, live and on demand ---------------------------------------------


@pytest.fixture
def big_run(django_capture_on_commit_callbacks, settings):
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "MAX_NODES": 2000}
    tree = ("group", [invocation(SUMA, [1, 1])] * 1000)
    run = start_run(django_capture_on_commit_callbacks, "thousand", tree)
    now = timezone.now()
    nodes = list(run.nodes.all())
    for i, node in enumerate(nodes):
        node.state = NodeState.SUCCESS if i % 10 else NodeState.FAILURE
        node.result = {"value": i, "text": "x" * 40} if i % 10 else None
        node.exception = "" if i % 10 else "ValueError: boom"
        node.traceback = "" if i % 10 else "Traceback (most recent call last):\n" + "  ...\n" * 30
        node.attempt_count, node.worker, node.runtime, node.started_at = 1, "celery@w", 0.01, now
    TaskRun.objects.bulk_update(nodes, ["state", "result", "exception", "traceback",
                                        "attempt_count", "worker", "runtime", "started_at"])
    WorkflowRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    run.refresh_from_db()
    return run


def test_the_page_of_a_1000_task_run_is_small_and_its_queries_bounded(admin_client, big_run,
                                                                      run):
    admin_client.get(url("workflowrun_change", run.pk))  # warm caches
    counts = []
    for target in (run, big_run):
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(url("workflowrun_change", target.pk))
        assert response.status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[1] <= counts[0] + 1  # the inline graph's query is replaced by a button
    html = response.content.decode()
    assert len(response.content) < 300 * 1024, len(response.content)
    assert html.count('class="ta-node-row"') == 100  # one page of the node table
    assert "Tasks 1\u2013100 of 1000" in html and "?nodes=2" in html
    assert "<svg" not in html.split('id="ta-run-graph"')[1].split("</fieldset>")[0]
    assert url("workflowrun_graph", big_run.pk) in html
    second = admin_client.get(url("workflowrun_change", big_run.pk) + "?nodes=2").content.decode()
    assert 'data-path="root.100"' in second and 'data-path="root.99"' not in second
    graph = admin_client.get(url("workflowrun_graph", big_run.pk))
    assert graph.status_code == 200 and graph.content.decode().count("ta-node ") == 1000


def test_node_details_load_on_demand_as_json(admin_client, big_run, run):
    failed = big_run.nodes.get(path="root.0")
    TaskAttempt.objects.create(task_run=failed, number=1, state=NodeState.RETRY, reason=XSS,
                               traceback="Traceback: first")
    html = admin_client.get(url("workflowrun_change", big_run.pk)).content.decode()
    details = url("workflowrun_node", big_run.pk, failed.pk)
    assert f'data-url="{details}"' in html and "run_details.js" in html
    data = admin_client.get(details).json()
    assert data["exception"] == "ValueError: boom"
    assert data["traceback"].startswith("Traceback (most recent call last):")
    assert [(a["number"], a["state"], a["reason"]) for a in data["attempts"]] == [
        (1, "RETRY", XSS)  # JSON, inserted as text by run_details.js
    ]
    other = run.nodes.first()
    assert admin_client.get(url("workflowrun_node", big_run.pk, other.pk)).status_code == 404
    assert admin_client.post(details).status_code == 405


def test_status_carries_started_runtime_and_attempts_of_the_shown_page(admin_client, big_run):
    data = admin_client.get(url("workflowrun_status", big_run.pk) + "?nodes=3").json()
    assert [n["path"] for n in data["nodes"]][:2] == ["root.200", "root.201"]
    assert len(data["nodes"]) == 100 and "states" not in data
    node = data["nodes"][1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", node["started"])  # seconds shown
    assert node["runtime"] == "0.01 s" and node["attempts"] == 1
    assert data["counts"] == {"SUCCESS": 900, "FAILURE": 100}
    states = admin_client.get(url("workflowrun_status", big_run.pk) + "?states=1").json()
    assert len(states["states"]) == 1000


def test_times_show_seconds_and_missing_ones_a_dash(admin_client, run):
    html = admin_client.get(url("workflowrun_change", run.pk)).content.decode()
    local = timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert local in html
    started = html.split("Started", 1)[1][:400]  # the run's "started" (not yet): a dash
    assert "—" in started and ">-<" not in html


def test_status_carries_the_run_s_own_times_for_the_live_page(admin_client, run):
    """Regression: a running run's page said "Started —" and "Duration —" until reloaded."""
    data = admin_client.get(url("workflowrun_status", run.pk)).json()
    assert data["times"]["started_display"] == "—"
    WorkflowRun.objects.filter(pk=run.pk).update(
        status="running", started_at=timezone.now() - timezone.timedelta(seconds=3))
    times = admin_client.get(url("workflowrun_status", run.pk)).json()["times"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", times["started_display"])
    assert times["duration_display"].endswith(" s so far") and times["finished_display"] == "—"
    html = admin_client.get(url("workflowrun_change", run.pk)).content.decode()
    # The names are the page's fields that run_refresh.js fills in.
    assert all(f"field-{name}" in html for name in times)
