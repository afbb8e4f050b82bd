"""The admin index dashboard: recent runs, failures of the last 24 hours, next schedules."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from task_admin.models import RunStatus, Trigger, WorkflowRun

pytestmark = pytest.mark.django_db

SPEC = {"version": 1, "root": {"type": "task", "task": "tests.testapp.tasks.suma", "args": [1, 2]}}


def make_run(name: str, status: str, finished_ago: timedelta | None = None) -> WorkflowRun:
    now = timezone.now()
    run = WorkflowRun.objects.create(
        workflow_name=name, spec=SPEC, trigger=Trigger.MANUAL, status=status, total_nodes=1,
        finished_nodes=1 if finished_ago is not None else 0,
        finished_at=now - finished_ago if finished_ago is not None else None,
    )
    return run


@pytest.fixture
def runs():
    return {
        "ok": make_run("nightly-ok", RunStatus.SUCCEEDED, timedelta(minutes=5)),
        "recent_fail": make_run("import-broken", RunStatus.FAILED, timedelta(hours=2)),
        "partial": make_run("half-done", RunStatus.PARTIALLY_FAILED, timedelta(hours=3)),
        "old_fail": make_run("ancient-failure", RunStatus.FAILED, timedelta(days=3)),
        "running": make_run("still-going", RunStatus.RUNNING),
    }


@pytest.fixture
def schedule():
    every = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(
        name="Nightly export", task="task_admin.run_workflow", interval=every,
        kwargs=json.dumps({"workflow_id": 1}),
    )
    PeriodicTask.objects.create(
        name="Disabled one", task="task_admin.run_workflow", interval=every, enabled=False
    )
    PeriodicTask.objects.create(name="Not ours", task="tests.testapp.tasks.suma", interval=every)


def dashboard_of(html: str) -> str:
    start = html.index('id="ta-dashboard"')
    return html[start:html.index('id="content-main"', start)]


def test_index_shows_recent_runs_failures_and_schedules(admin_client, runs, schedule,
                                                         django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    html = response.content.decode()
    board = dashboard_of(html)
    for run in runs.values():  # all five are among the ten most recent
        assert reverse("admin:task_admin_workflowrun_change", args=[run.pk]) in board
    assert "ta-state-failed" in board and "ta-state-succeeded" in board
    failures = board[board.index('id="ta-dashboard-failures"'):]
    failures = failures[:failures.index('id="ta-dashboard-scheduled"')]
    assert "2 failed runs in the last 24 hours" in failures
    assert "import-broken" in failures and "half-done" in failures
    assert "ancient-failure" not in failures and "nightly-ok" not in failures
    scheduled = board[board.index('id="ta-dashboard-scheduled"'):]
    assert "Nightly export" in scheduled and "every 10 minutes" in scheduled
    assert "Disabled one" not in scheduled and "Not ours" not in scheduled
    assert "Workflow console" in html  # branding from base_site.html is kept


def test_dashboard_lists_at_most_ten_recent_runs(admin_client):
    for i in range(15):
        make_run(f"run-{i:02d}", RunStatus.SUCCEEDED, timedelta(minutes=i))
    board = dashboard_of(admin_client.get(reverse("admin:index")).content.decode())
    recent = board[:board.index('id="ta-dashboard-failures"')]
    assert recent.count("/admin/task_admin/workflowrun/") == 10 + 1  # rows + the caption link
    assert "0 failed runs in the last 24 hours" in board


def test_no_dashboard_without_view_permission_on_runs(client, django_user_model, runs):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_workflow"))
    client.force_login(user)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="ta-dashboard"' not in html
    assert "import-broken" not in html

    user.user_permissions.add(Permission.objects.get(codename="view_workflowrun"))
    user = django_user_model.objects.get(pk=user.pk)  # drop the permission cache
    client.force_login(user)
    html = client.get(reverse("admin:index")).content.decode()
    assert 'id="ta-dashboard"' in html and "import-broken" in html


def test_tag_renders_nothing_for_anonymous():
    request = RequestFactory().get("/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    html = Template("{% load task_admin %}{% task_admin_dashboard %}").render(
        Context({"request": request})
    )
    assert html.strip() == ""


def test_the_apps_own_page_shows_the_dashboard(admin_client, runs):
    """A project with its own admin index still finds the dashboard on the app's page."""
    page = admin_client.get(reverse("admin:app_list", args=["task_admin"]))
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="ta-dashboard"' in text and "import-broken" in text
    assert reverse("admin:task_admin_workflow_changelist") in text  # the app's models still listed


def test_the_apps_own_page_shows_the_dashboard_once(admin_client, runs):
    """The test site's index adds the dashboard (tests/testapp/templates/admin/index.html), and
    Django's app page extends the site's index: the app's page still shows it once."""
    text = admin_client.get(reverse("admin:app_list", args=["task_admin"])).content.decode()
    assert text.count('id="ta-dashboard"') == 1
    assert text.count("import-broken") == 2  # in the recent runs and in the failures, once each
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert index.count('id="ta-dashboard"') == 1


def test_next_run_counts_from_the_schedule_s_own_last_fire(admin_client):
    """Regression: beat writes last_run_at back only every few minutes, so the dashboard said
    "due now" for a schedule that had just fired; it also said "in 0 minutes"."""
    from task_admin.presenters.dashboard import next_scheduled
    from tests.support.factories import SUMA, invocation, schedule, workflow

    wf = workflow("tick", ("chain", [invocation(SUMA, [1, 1])]))
    sched = schedule(wf, every=10, period="minutes")
    now = timezone.now()
    PeriodicTask.objects.filter(pk=sched.periodic_task_id).update(
        last_run_at=now - timedelta(minutes=30)  # beat's stale copy
    )
    type(sched).objects.filter(pk=sched.pk).update(last_fired_at=now - timedelta(minutes=1))
    [entry] = next_scheduled(admin_client.get(reverse("admin:index")).wsgi_request.user)
    assert timedelta(minutes=8) < entry["next_run"] - now < timedelta(minutes=10)
    assert now - entry["last_run_at"] < timedelta(minutes=2)
    board = dashboard_of(admin_client.get(reverse("admin:index")).content.decode())
    assert "in 8\xa0minutes" in board or "in 9\xa0minutes" in board
    assert "last 1\xa0minute ago" in board or "last 1 minute ago" in board
    assert "in 0\xa0minutes" not in board and "last 0\xa0minutes" not in board


def test_under_a_minute_is_not_zero_minutes():
    from task_admin.templatetags.task_admin import time_ago, time_until

    now = timezone.now()
    assert time_ago(now - timedelta(seconds=20)) == "just now"
    assert time_until(now + timedelta(seconds=20)) == "in less than a minute"
    assert time_ago(now - timedelta(minutes=5, seconds=3)).startswith("5")
    assert time_until(now + timedelta(minutes=5, seconds=30)).startswith("in 5")
