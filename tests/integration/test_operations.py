"""The operations pages against two real workers on two queues (issue: operations in the admin).

Two workers serve every test here: "alpha" is the session's worker (the default queue), "beta"
is started for this module on a queue of its own. Each test leaves them as it found them.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.test import override_settings
from django.urls import reverse

from task_admin import operations
from task_admin.models import TaskInvocation
from tests.support.workers import start_celery, wait_for
from tests.testapp.tasks import slow, suma

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Generous on a loaded CI machine; the page-speed test below proves the short default.
OPS = {"CELERY_APP": "tests.testapp.celery.app", "INSPECT_TIMEOUT": 1.0, "INSPECT_CACHE": 5}


@pytest.fixture(scope="module")
def two_workers(celery_worker, celery_app, tmp_path_factory):
    beta_queue = f"ops-beta-{uuid.uuid4().hex[:6]}"
    beta = start_celery("worker", log_dir=tmp_path_factory.mktemp("ops-workers"), app=celery_app,
                        extra=("-Q", beta_queue))
    yield celery_worker, beta, beta_queue
    beta.stop()
    celery_app.control.purge()


@pytest.fixture
def fresh():
    operations.forget_snapshot(workers=True)
    with override_settings(TASK_ADMIN=OPS):
        yield
    operations.forget_snapshot(workers=True)


def live(hostname):
    """A fresh snapshot's view of one worker (a full round: tests start workers)."""
    operations.forget_snapshot(workers=True)
    return operations.snapshot().worker(hostname)


def test_both_workers_listed_with_their_queues_and_tasks(admin_client, two_workers, fresh):
    alpha, beta, beta_queue = two_workers
    running = slow.apply_async(kwargs={"seconds": 30}, queue=beta_queue)
    waiting = suma.apply_async(args=[1, 2], countdown=60)
    try:
        # The slow task runs on beta (its queue), the countdown task waits on alpha.
        wait_for(lambda: any(t.id == running.id for t in live(beta.nodename).active),
                 what="the slow task to be active on beta")
        wait_for(lambda: any(t.id == waiting.id for t in live(alpha.nodename).scheduled),
                 what="the countdown task to be scheduled on alpha")
        operations.forget_snapshot()
        page = admin_client.get(reverse("admin:task_admin_worker_changelist"))
        html = page.content.decode()
        assert page.status_code == 200
        for w in (alpha, beta):
            assert f'data-hostname="{w.nodename}"' in html
        snap = operations.snapshot()
        a, b = snap.worker(alpha.nodename), snap.worker(beta.nodename)
        assert a.queues == ["celery"] and b.queues == [beta_queue]
        assert a.pool == "TaskPool" and a.concurrency == 2 and len(a.processes) == 2
        assert a.uptime is not None and a.uptime > 0
        assert [t.id for t in b.active] == [running.id]
        assert running.id not in {t.id for t in a.active}
        assert {t.id: t.eta for t in a.scheduled}[waiting.id] is not None
        # The task's row says where it is and links to the lookup page.
        assert f'class="ta-task-active" data-task-id="{running.id}"' in html
        assert f'class="ta-task-scheduled" data-task-id="{waiting.id}"' in html
        assert reverse("admin:task_admin_celerytask_change", args=[running.id]) in html
    finally:
        for r in (running, waiting):
            r.revoke(terminate=True)


def test_processed_count_and_queue_flagged_when_nothing_consumes_it(
    admin_client, two_workers, fresh, celery_app
):
    alpha, beta, beta_queue = two_workers
    assert suma.apply_async(args=[2, 2]).get(timeout=30) == 4
    assert live(alpha.nodename).processed >= 1

    orphan = f"ops-orphan-{uuid.uuid4().hex[:6]}"
    TaskInvocation.objects.create(name="to an orphan queue", task=suma.name, args=[1, 1],
                                  queue=orphan)
    for _ in range(3):
        suma.apply_async(args=[1, 1], queue=orphan)
    try:
        operations.forget_snapshot()
        page = admin_client.get(reverse("admin:task_admin_queue_changelist"))
        html = page.content.decode()
        rows = {r.name: r for r in operations.queues()[0]}
        assert rows[orphan].depth == 3 and rows[orphan].needs_attention
        assert rows[beta_queue].consumers == [beta.nodename]
        assert not rows["celery"].needs_attention
        assert f'data-queue="{orphan}" class="ta-queue-flagged' in html
        assert "1 queue holds messages that no worker consumes" in html
    finally:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(orphan)


def test_pool_grow_shrink_and_consumers_take_effect(admin_client, two_workers, fresh):
    _alpha, beta, _beta_queue = two_workers
    url = reverse("admin:task_admin_worker_pool", args=[quote(beta.nodename)])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"action": "grow", "n": 1})
    assert response.status_code == 302, response.content.decode()[:2000]
    wait_for(lambda: live(beta.nodename).concurrency == 3, what="the pool to grow")
    admin_client.post(url, {"action": "shrink", "n": 1})
    wait_for(lambda: live(beta.nodename).concurrency == 2, what="the pool to shrink")

    extra = f"ops-extra-{uuid.uuid4().hex[:6]}"
    url = reverse("admin:task_admin_worker_consumers", args=[quote(beta.nodename)])
    assert admin_client.post(url, {"action": "add", "queue": extra}).status_code == 302
    assert extra in live(beta.nodename).queues
    assert admin_client.post(url, {"action": "cancel", "queue": extra}).status_code == 302
    assert extra not in live(beta.nodename).queues
    # Bad input is shown on the form, not sent.
    bad = admin_client.post(url, {"action": "add", "queue": "two words"})
    assert bad.status_code == 200 and "no spaces" in bad.content.decode()

    rate = admin_client.post(
        reverse("admin:task_admin_worker_ratelimit", args=[quote(beta.nodename)]),
        {"task": suma.name, "rate": "10/m"},
    )
    assert rate.status_code == 302
    logged = list(LogEntry.objects.filter(object_id=beta.nodename).values_list(
        "change_message", flat=True))
    assert len(logged) == 5
    assert any("10/m" in m for m in logged)
    celery_app = operations.get_app()
    celery_app.control.rate_limit(suma.name, "0", destination=[beta.nodename], reply=True)


def test_revoke_by_id_a_task_not_started_from_a_workflow(admin_client, two_workers, fresh):
    alpha, _beta, _beta_queue = two_workers
    task = suma.apply_async(args=[5, 5], countdown=60)
    wait_for(lambda: any(t.id == task.id for t in live(alpha.nodename).scheduled),
             what="the countdown task to reach alpha")
    page = admin_client.get(reverse("admin:task_admin_celerytask_change", args=[task.id]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "held there until" in html and alpha.nodename in html
    assert "none: sent from code" in html

    url = reverse("admin:task_admin_celerytask_revoke", args=[task.id])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"terminate": "on"}).status_code == 302
    assert wait_for(lambda: task.state == "REVOKED", what="the task to be revoked")
    page = admin_client.get(reverse("admin:task_admin_celerytask_change", args=[task.id]))
    assert "ta-state-revoked" in page.content.decode()
    assert LogEntry.objects.filter(object_id=task.id).exists()


def test_lookup_shows_result_and_traceback(admin_client, two_workers, fresh):
    from tests.testapp.tasks import always_fails

    ok = suma.apply_async(args=[20, 22])
    assert ok.get(timeout=30) == 42
    bad = always_fails.apply_async(kwargs={"reason": "kaboom <b>"})
    wait_for(lambda: bad.state == "FAILURE", what="the failing task to fail")
    lookup = reverse("admin:task_admin_celerytask_changelist")
    redirect = admin_client.get(lookup, {"task_id": f"  {ok.id} "})
    assert redirect.status_code == 302 and redirect["Location"].endswith(f"{ok.id}/change/")
    html = admin_client.get(redirect["Location"]).content.decode()
    assert "ta-state-success" in html and ">42</pre>" in html
    html = admin_client.get(
        reverse("admin:task_admin_celerytask_change", args=[bad.id])).content.decode()
    assert "ta-state-failure" in html and "Traceback" in html
    assert "kaboom &lt;b&gt;" in html and "kaboom <b>" not in html
    # A malformed id is an error on the form, not a 500.
    page = admin_client.get(lookup, {"task_id": "has spaces in it"})
    assert page.status_code == 200 and "no spaces" in page.content.decode()


@pytest.fixture
def spy_inspect(monkeypatch):
    """Record every inspect broadcast (command, timeout) and still send it."""
    calls = []
    real = operations._inspect

    def recording(app, command, timeout, limit=None):
        calls.append((command, timeout))
        return real(app, command, timeout, limit)

    monkeypatch.setattr(operations, "_inspect", recording)
    return calls


def test_a_hanging_worker_costs_one_short_timeout_then_the_cache(
    admin_client, two_workers, spy_inspect
):
    """Beta is frozen (SIGSTOP): pages still answer, having waited once, for the configured
    timeout; the pages that follow within INSPECT_CACHE ask nobody."""
    import os
    import signal

    alpha, beta, _queue = two_workers
    operations.forget_snapshot(workers=True)
    assert operations.snapshot().worker(beta.nodename).answered  # seen alive first
    spy_inspect.clear()
    operations.forget_snapshot()
    os.killpg(beta.process.pid, signal.SIGSTOP)
    try:
        with override_settings(TASK_ADMIN={"CELERY_APP": "tests.testapp.celery.app",
                                           "INSPECT_TIMEOUT": 0.2, "INSPECT_CACHE": 60}):
            page = admin_client.get(reverse("admin:task_admin_worker_changelist"))
            assert page.status_code == 200
            assert sorted(spy_inspect) == sorted((c, 0.2) for c in operations.COMMANDS)
            snap = operations.snapshot()
            assert snap.worker(alpha.nodename).answered
            assert not snap.worker(beta.nodename).answered
            assert "not answering" in page.content.decode()
            for name in ("worker_changelist", "queue_changelist", "celerytask_changelist"):
                assert admin_client.get(reverse(f"admin:task_admin_{name}")).status_code == 200
            assert admin_client.get(
                reverse("admin:task_admin_worker_change", args=[quote(beta.nodename)])
            ).status_code == 200
            assert len(spy_inspect) == len(operations.COMMANDS)  # all from the cache
    finally:
        os.killpg(beta.process.pid, signal.SIGCONT)
        operations.forget_snapshot()


def test_shutdown_stops_a_worker_which_then_shows_as_not_answering(
    admin_client, celery_app, tmp_path, spy_inspect, fresh
):
    gamma = start_celery("worker", log_dir=tmp_path, app=celery_app,
                         extra=("-Q", f"ops-gamma-{uuid.uuid4().hex[:6]}"))
    try:
        assert live(gamma.nodename).answered
        url = reverse("admin:task_admin_worker_shutdown", args=[quote(gamma.nodename)])
        page = admin_client.get(url)
        assert page.status_code == 200 and "warm shutdown" in page.content.decode()
        assert admin_client.post(url).status_code == 302
        wait_for(lambda: gamma.process.poll() is not None, what="the worker to exit")
        assert LogEntry.objects.filter(object_id=gamma.nodename).count() == 1
        spy_inspect.clear()
        page = admin_client.get(reverse("admin:task_admin_worker_changelist"))
        html = page.content.decode()
        assert page.status_code == 200
        assert 'ta-worker-gone" id="worker-' in html and gamma.nodename in html
        assert {t for _c, t in spy_inspect} == {OPS["INSPECT_TIMEOUT"]}
    finally:
        gamma.stop()


def test_a_queue_nobody_consumes_is_warned_at_save_and_on_the_run_page(
    admin_client, two_workers, fresh, celery_app
):
    """Issue #8, item 6: warned (not refused) at save; the run page says why a node waits."""
    from task_admin import services
    from tests.admin.test_invocations_admin import form_data as invocation_form
    from tests.admin.test_workflows_admin import form_data as workflow_form
    from tests.admin.test_workflows_admin import stored
    from tests.support.factories import workflow

    _alpha, _beta, beta_queue = two_workers
    orphan = f"ops-orphan-{uuid.uuid4().hex[:6]}"
    add = reverse("admin:task_admin_taskinvocation_add")
    warning = "No live worker consumes the queue “{}”"

    saved = admin_client.post(add, invocation_form(name="consumed", queue=beta_queue),
                              follow=True)
    assert saved.status_code == 200 and warning.format(beta_queue) not in saved.content.decode()
    saved = admin_client.post(add, invocation_form(name="orphaned", queue=orphan), follow=True)
    html = saved.content.decode()
    assert warning.format(orphan) in html and f"?queue={orphan}" in html
    inv = TaskInvocation.objects.get(name="orphaned")  # saved all the same

    wf = workflow("waits for a worker", inv)
    saved = admin_client.post(
        reverse("admin:task_admin_workflow_change", args=[wf.pk]),
        workflow_form(stored(wf), name=wf.name), follow=True,
    )
    assert warning.format(orphan) in saved.content.decode()

    run = services.run_workflow(wf)
    try:
        assert run.nodes.get().state == "PENDING"
        page = admin_client.get(reverse("admin:task_admin_workflowrun_change", args=[run.pk]))
        html = page.content.decode()
        assert f'class="errornote ta-queue-hint" data-queue="{orphan}"' in html
        assert f"{reverse('admin:task_admin_queue_changelist')}?queue={orphan}" in html
        queues = admin_client.get(reverse("admin:task_admin_queue_changelist"),
                                  {"queue": orphan}).content.decode()
        assert f'data-queue="{orphan}" class="ta-queue-flagged selected"' in queues
    finally:
        with celery_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(orphan)
