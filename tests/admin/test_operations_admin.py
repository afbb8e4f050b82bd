"""The operations pages' permissions, forms and error handling (the workers are stood in for;
tests/integration/test_operations.py runs them against real workers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.urls import reverse
from kombu.exceptions import OperationalError

from task_admin import operations
from task_admin.models import NodeState
from tests.support.runs import start_run

pytestmark = pytest.mark.django_db

HOST = "w1@example"


@pytest.fixture(autouse=True)
def one_worker(monkeypatch):
    """A snapshot with one live worker, and every control recorded instead of sent."""
    sent = []
    worker = operations.WorkerInfo(hostname=HOST, pool="TaskPool", concurrency=2,
                                   queues=["celery"])
    snap = operations.Snapshot(workers=[worker], taken_at=datetime.now(UTC), timeout=0.25)
    monkeypatch.setattr(operations, "snapshot", lambda **kw: snap)
    for name in ("shutdown", "pool_grow", "pool_shrink", "add_consumer", "cancel_consumer",
                 "rate_limit", "revoke_task"):
        monkeypatch.setattr(operations, name,
                            lambda *a, _n=name, **kw: sent.append((_n, a, kw)) or "ok")
    return snap, sent


def staff(django_user_model, *codenames):
    user = django_user_model.objects.create_user("op", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="task_admin", codename__in=codenames))
    return user


def test_each_control_needs_its_own_permission(client, django_user_model, one_worker):
    _snap, sent = one_worker
    client.force_login(staff(django_user_model, "view_worker", "resize_pool"))
    page = client.get(reverse("admin:task_admin_worker_changelist")).content.decode()
    assert reverse("admin:task_admin_worker_pool", args=[quote(HOST)]) in page
    assert reverse("admin:task_admin_worker_shutdown", args=[quote(HOST)]) not in page
    for verb in ("shutdown", "consumers", "ratelimit"):
        url = reverse(f"admin:task_admin_worker_{verb}", args=[quote(HOST)])
        assert client.get(url).status_code == 403
        assert client.post(url, {"action": "add", "queue": "q", "task": "t", "rate": "1"}
                           ).status_code == 403
    response = client.post(reverse("admin:task_admin_worker_pool", args=[quote(HOST)]),
                           {"action": "shrink", "n": "2"})
    assert response.status_code == 302
    assert sent == [("pool_shrink", (HOST, 2), {})]
    entry = LogEntry.objects.get()
    assert entry.object_id == HOST and "Shrank the pool" in entry.change_message


@pytest.mark.parametrize(("verb", "data", "error"), [
    ("pool", {"action": "grow", "n": "0"}, "greater than or equal to 1"),
    ("pool", {"action": "explode", "n": "1"}, "Select a valid choice"),
    ("consumers", {"action": "add", "queue": ""}, "This field is required"),
    ("ratelimit", {"task": "tests.testapp.tasks.suma", "rate": "ten per minute"}, "no spaces"),
    ("ratelimit", {"task": "tests.testapp.tasks.suma", "rate": "10/d"}, "no spaces"),
])
def test_bad_input_is_shown_on_the_form_and_nothing_is_sent(
    admin_client, one_worker, verb, data, error
):
    _snap, sent = one_worker
    url = reverse(f"admin:task_admin_worker_{verb}", args=[quote(HOST)])
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert sent == [] and not LogEntry.objects.exists()


def test_a_worker_that_does_not_confirm_or_a_broker_down_is_an_error_message(
    admin_client, monkeypatch
):
    def no_reply(*a, **kw):
        raise operations.NoReply(HOST)

    def refused(*a, **kw):
        raise operations.Refused("unknown task")

    def down(*a, **kw):
        raise OperationalError("Error 111 connecting")

    url = reverse("admin:task_admin_worker_ratelimit", args=[quote(HOST)])
    for fake, text in ((no_reply, "did not confirm"), (refused, "refused: unknown task"),
                       (down, "broker could not be reached")):
        monkeypatch.setattr(operations, "rate_limit", fake)
        response = admin_client.post(url, {"task": "tests.testapp.tasks.suma", "rate": "5/s"},
                                     follow=True)
        assert response.status_code == 200 and text in response.content.decode()
    assert not LogEntry.objects.exists()


def test_the_rate_limit_page_offers_the_project_tasks(admin_client):
    html = admin_client.get(
        reverse("admin:task_admin_worker_ratelimit", args=[quote(HOST)])).content.decode()
    assert '<option value="tests.testapp.tasks.suma">' in html
    assert 'list="ta-task-names"' in html and "celery.backend_cleanup" not in html


def test_controls_are_post_only_with_csrf(django_user_model, client):
    from django.test import Client

    user = staff(django_user_model, "view_worker", "shutdown_worker")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    url = reverse("admin:task_admin_worker_shutdown", args=[quote(HOST)])
    assert strict.post(url).status_code == 403  # no CSRF token
    client.force_login(user)
    assert client.put(url).status_code == 405


def test_revoke_by_id_needs_the_revoke_permission(client, django_user_model, one_worker):
    _snap, sent = one_worker
    client.force_login(staff(django_user_model, "view_celerytask", "view_worker"))
    url = reverse("admin:task_admin_celerytask_revoke", args=["abc-123"])
    _snap.workers[0].active = [operations.TaskInfo(id="abc-123", name="t", kind="active",
                                                   worker=HOST)]
    workers = client.get(reverse("admin:task_admin_worker_changelist")).content.decode()
    assert 'data-task-id="abc-123"' in workers and url not in workers
    page = client.get(reverse("admin:task_admin_celerytask_change", args=["abc-123"]))
    assert page.status_code == 200 and url not in page.content.decode()
    assert client.post(url, {"terminate": "on"}).status_code == 403
    assert sent == []


def test_a_task_of_a_run_links_to_its_run_and_node(
    admin_client, django_capture_on_commit_callbacks, one_worker
):
    snap, _sent = one_worker
    run = start_run(django_capture_on_commit_callbacks, "ops-links")
    node = run.nodes.order_by("position").first()
    snap.workers[0].active = [operations.TaskInfo(id=node.task_id, name=node.task_name,
                                                  kind="active", worker=HOST)]
    html = admin_client.get(reverse("admin:task_admin_worker_changelist")).content.decode()
    assert reverse("admin:task_admin_workflowrun_change", args=[run.pk]) in html
    assert reverse("admin:task_admin_taskrun_change", args=[node.pk]) in html
    assert reverse("admin:task_admin_celerytask_revoke", args=[quote(node.task_id)]) in html
    html = admin_client.get(
        reverse("admin:task_admin_celerytask_change", args=[node.task_id])).content.decode()
    assert reverse("admin:task_admin_workflowrun_change", args=[run.pk]) in html
    assert node.state == NodeState.PENDING


def test_pages_without_a_celery_app_say_so(admin_client, monkeypatch):
    """A wrong TASK_ADMIN["CELERY_APP"] (a checks error too) is an error on each page, not a
    server error."""
    from django.test import override_settings

    monkeypatch.undo()  # the real snapshot and controls
    operations.forget_snapshot(workers=True)
    with override_settings(TASK_ADMIN={"CELERY_APP": "nowhere.celery.app"}):
        for name, args in (("worker_changelist", []), ("queue_changelist", []),
                           ("celerytask_change", ["abc"]), ("worker_ratelimit", [HOST])):
            page = admin_client.get(reverse(f"admin:task_admin_{name}", args=args))
            assert page.status_code == 200, name
            assert "nowhere.celery.app" in page.content.decode(), name
        response = admin_client.post(reverse("admin:task_admin_worker_pool", args=[HOST]),
                                     {"action": "grow", "n": "1"}, follow=True)
        assert "nowhere.celery.app" in response.content.decode()
    operations.forget_snapshot(workers=True)


def test_seconds_ago_are_seconds_not_zero_minutes(admin_client, one_worker):
    """Regression: a task started seconds ago, and a worker up for seconds, said "0 minutes"."""
    from datetime import timedelta

    snap, _sent = one_worker
    worker = snap.workers[0]
    worker.started_at = snap.taken_at - timedelta(seconds=42)
    worker.active = [operations.TaskInfo(id="t-1", name="tests.testapp.tasks.slow", kind="active",
                                         worker=HOST, started=snap.taken_at - timedelta(seconds=4))]
    html = admin_client.get(reverse("admin:task_admin_worker_changelist")).content.decode()
    assert "0 minutes" not in html and "0\xa0minutes" not in html
    assert "42.0 s" in html and "4.00 s ago" in html


def test_the_workers_list_looks_for_workers_started_since_the_last_full_round(
        admin_client, monkeypatch, one_worker):
    snap, _sent = one_worker
    asked = []
    monkeypatch.setattr(operations, "snapshot", lambda **kw: asked.append(kw) or snap)
    assert admin_client.get(reverse("admin:task_admin_worker_changelist")).status_code == 200
    assert admin_client.get(
        reverse("admin:task_admin_worker_change", args=[quote(HOST)])).status_code == 200
    assert asked == [{"discover": True}, {"discover": False}]
