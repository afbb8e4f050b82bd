"""Alerts end to end: real workers (and beat) on the test database and Redis; what the workers
email is recorded by tests.support.mailbox, webhooks go to a receiver on loopback."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from task_admin import alerting, services
from task_admin.models import (
    Alert,
    AlertKind,
    AlertRule,
    AlertStatus,
    Overlap,
    RunStatus,
    WorkflowRun,
)
from tests.support.factories import SUMA, invocation, schedule, workflow
from tests.support.mailbox import clear_mail, mail_dir, read_mail
from tests.support.runs import finished
from tests.support.workers import start_celery, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
FAILS = "tests.testapp.tasks.always_fails"
SLOW = "tests.testapp.tasks.slow"


@pytest.fixture
def mailbox():
    clear_mail()
    yield read_mail
    clear_mail()


def run_url(run) -> str:
    return f"http://admin.test/admin/task_admin/workflowrun/{run.pk}/change/"


def test_a_failing_schedule_emails_once_and_the_throttle_counts(beat, mailbox):
    wf = workflow("nightly import", ("chain", [invocation(FAILS, kwargs={"reason": "disk full"})]))
    AlertRule.objects.create(workflow=wf, emails="ops@example.com")
    schedule(wf, name="import every second", every=1, overlap=Overlap.ALLOW)
    process = beat()
    # Runs keep failing every second: one email, the others suppressed.
    wait_for(lambda: Alert.objects.filter(status=AlertStatus.SUPPRESSED).count() >= 2,
             timeout=60, what="two suppressed alerts")
    [first] = wait_for(mailbox, what="the first email")
    sent = Alert.objects.get(status=AlertStatus.SENT)
    run = sent.run
    assert run.trigger == "schedule" and run.status == RunStatus.FAILED
    assert first["to"] == ["ops@example.com"]
    assert first["subject"] == f"Workflow “nightly import” failed (run #{run.pk})"
    for text in (first["body"], first["html"][0]):
        assert "import every second" in text and "root.0" in text and FAILS in text
        assert "ValueError: disk full" in text and "Traceback (most recent call last)" in text
        assert run_url(run) in text
    assert sent.recipients == ["ops@example.com"] and sent.emailed

    # The interval has passed (as far as the throttle knows): the next failure is emailed
    # and tells how many were suppressed since the first.
    Alert.objects.filter(pk=sent.pk).update(created_at=timezone.now() - timedelta(hours=1))
    second = wait_for(lambda: len(mailbox()) >= 2 and mailbox()[1], what="the second email")
    process.stop()
    latest = Alert.objects.filter(status=AlertStatus.SENT).exclude(pk=sent.pk).get()
    assert latest.suppressed_before >= 2
    assert (f"{latest.suppressed_before} alerts like this one were not sent since the last one"
            in second["body"])
    assert len(mailbox()) == 2


def test_a_recovery_sends_one_email(worker, mailbox):
    wf = workflow("flaky sum", ("chain", [invocation(SUMA, [2], {"b": 2})]))
    AlertRule.objects.create(workflow=wf, emails="ops@example.com")
    bad = finished(services.run_workflow(wf, overrides={"root.0": {"b": "not a number"}}))
    assert bad.status == RunStatus.FAILED
    good = finished(services.run_workflow(wf))
    assert good.status == RunStatus.SUCCEEDED
    mails = wait_for(lambda: len(mailbox()) >= 2 and mailbox(), what="two emails")
    subjects = sorted(m["subject"] for m in mails)
    assert subjects == [f"Workflow “flaky sum” failed (run #{bad.pk})",
                        f"Workflow “flaky sum” succeeded again (run #{good.pk})"]
    assert Alert.objects.get(run=good).kind == AlertKind.RECOVERY


def test_a_slow_run_past_its_sla_sends_one_email_from_beat(beat, mailbox, celery_app):
    # Long enough to be unfinished when beat, slow to start on a loaded machine, checks it;
    # revoked at the end.
    wf = workflow("slow report", ("chain", [invocation(SLOW, kwargs={"seconds": 300})]))
    AlertRule.objects.create(workflow=wf, emails="ops@example.com", sla_minutes=1)
    # The app's own periodic entry, ticking every second instead of every minute.
    entry = PeriodicTask.objects.get(task="task_admin.check_alert_slas")
    entry.interval, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    entry.save()
    run = services.run_workflow(wf)
    wait_for(lambda: WorkflowRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists(),
             what="the slow run to start")
    # Started two minutes ago, as far as the SLA can tell.
    WorkflowRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(minutes=2)
    )
    process = beat()
    [late] = wait_for(mailbox, timeout=90, what="the SLA email")
    # The worker marks the alert sent once the SMTP server has taken the message, which may be
    # a moment after the mailbox saw it.
    wait_for(lambda: Alert.objects.filter(run=run, status=AlertStatus.SENT).exists(),
             what="the alert marked sent")
    alert = Alert.objects.get(run=run)
    assert alert.kind == AlertKind.SLA and alert.status == AlertStatus.SENT
    assert late["subject"] == (
        f"Workflow “slow report” is late: run #{run.pk} has not finished after 1 minute"
    )
    assert "root.0" in late["body"] and SLOW in late["body"] and run_url(run) in late["body"]
    wait_for(lambda: "task_admin.check_alert_slas" in process.log()
             and process.log().count("Sending due task") >= 3, what="two more SLA checks")
    process.stop()
    services.revoke_run(run, terminate=True, app=celery_app)
    assert len(mailbox()) == 1 and Alert.objects.count() == 1


def test_a_run_whose_worker_was_killed_gets_its_sla_alert(beat, mailbox, celery_app, tmp_path):
    """No worker will ever report on this run: beat's SLA check is what tells its owners."""
    doomed = start_celery("worker", log_dir=tmp_path, app=celery_app,
                          extra=("--queues", "doomed"))
    try:
        wf = workflow("doomed", ("chain", [
            invocation(SLOW, kwargs={"seconds": 60}, queue="doomed"),
        ]))
        AlertRule.objects.create(workflow=wf, emails="ops@example.com", sla_minutes=1)
        run = services.run_workflow(wf)
        wait_for(lambda: WorkflowRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING)
                 .exists(), what="the run to start on the doomed worker")
    finally:
        os.killpg(doomed.process.pid, signal.SIGKILL)  # the whole worker, as a machine dies
        doomed.process.wait()
    WorkflowRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(minutes=2)
    )
    entry = PeriodicTask.objects.get(task="task_admin.check_alert_slas")
    entry.interval, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    entry.save()
    beat()
    [late] = wait_for(mailbox, timeout=90, what="the SLA email")
    assert f"run #{run.pk} has not finished after 1 minute" in late["subject"]
    run.refresh_from_db()
    assert not run.is_finished
    assert Alert.objects.get(run=run).kind == AlertKind.SLA


def _succeeded(workers, task_ids: list[str]) -> bool:
    logs = "".join(w.log() for w in workers)
    return all(re.search(rf"\[{tid}\] succeeded", logs) for tid in set(task_ids))


def test_two_workers_and_redelivered_messages_still_send_one(worker, celery_app, tmp_path,
                                                             mailbox):
    second = start_celery("worker", log_dir=tmp_path, app=celery_app)
    try:
        wf = workflow("twice", ("chain", [invocation(FAILS)]))
        AlertRule.objects.create(workflow=wf, emails="ops@example.com")
        run = finished(services.run_workflow(wf))
        wait_for(lambda: Alert.objects.filter(run=run, status=AlertStatus.SENT).exists(),
                 what="the alert to be sent")
        alert = Alert.objects.get(run=run)
        # Re-delivered messages: the same task ids sent again, several at once.
        ids = []
        for name, arg in [(alerting.ALERT_RUN_TASK, run.pk), (alerting.DELIVER_TASK, alert.pk)]:
            task_id = uuid.uuid4().hex
            for _ in range(3):
                celery_app.send_task(name, args=[arg], task_id=task_id)
            ids.append(task_id)

        # A pending alert that both workers (four processes) are told to send at once.
        other = finished(services.run_workflow(workflow("race", ("chain", [invocation(FAILS)]))))
        race = Alert.objects.create(run=other, workflow=other.workflow, kind=AlertKind.FAILURE,
                                    recipients=["race@example.com"])
        for _ in range(8):
            task_id = uuid.uuid4().hex
            celery_app.send_task(alerting.DELIVER_TASK, args=[race.pk], task_id=task_id)
            ids.append(task_id)
        wait_for(lambda: _succeeded([worker, second], ids), what="every message to be handled")
    finally:
        second.stop()
    assert sorted(m["to"][0] for m in mailbox()) == ["ops@example.com", "race@example.com"]
    assert Alert.objects.filter(run=run).count() == 1
    race.refresh_from_db()
    assert (race.status, race.attempts) == (AlertStatus.SENT, 1)


class _Hook(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[dict, bytes]] = []
    fail_first = True

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append((dict(self.headers), body))
        status = 500 if len(self.seen) == 1 and self.fail_first else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    _Hook.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", settings.TEST_HOOK_PORT), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _Hook
    server.shutdown()
    server.server_close()


def test_webhook_gets_signed_json_and_smtp_and_http_errors_are_retried(worker, hook, mailbox):
    secret = "a-secret-of-24-chars-xyz"
    wf = workflow("hooked", ("chain", [invocation(FAILS, kwargs={"reason": "no route"})]))
    AlertRule.objects.create(
        workflow=wf, emails="ops@example.com",
        webhook_url=f"http://127.0.0.1:{settings.TEST_HOOK_PORT}/hooks/task-admin",
        webhook_secret=secret,
    )
    (mail_dir() / "fail-next").touch()  # the SMTP server hangs up once
    run = finished(services.run_workflow(wf))
    wait_for(lambda: Alert.objects.filter(run=run, status=AlertStatus.SENT).exists(),
             what="the alert to be sent after a retry")
    alert = Alert.objects.get(run=run)
    assert alert.attempts == 2 and alert.emailed and alert.webhook_delivered
    assert len(hook.seen) == 2  # a 500, then a 200
    assert len(mailbox()) == 1  # the retry sent the email once, after the SMTP error
    for headers, body in hook.seen:
        signed = headers["X-Task-Admin-Timestamp"].encode() + b"." + body
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        assert headers["X-Task-Admin-Signature"] == f"sha256={expected}"
        assert headers["Content-Type"] == "application/json"
    payload = json.loads(hook.seen[-1][1])
    assert payload["alert"]["kind"] == "failure"
    assert payload["workflow"]["name"] == "hooked"
    assert payload["run"]["id"] == run.pk and payload["run"]["url"] == run_url(run)
    assert payload["tasks"][0]["exception"] == "ValueError: no route"
    assert payload["tasks"][0]["path"] == "root.0"
