"""Alerts without a worker: which alert a run deserves, claimed once, throttled, composed and
sent; the receiver's cost; late runs; the periodic entry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from task_admin import alerting, periodic, tracking
from task_admin.models import (
    Alert,
    AlertKind,
    AlertRule,
    AlertStatus,
    NodeState,
    RunStatus,
    TaskRun,
    WorkflowRun,
)
from task_admin.signals import run_finished
from tests.support.factories import SUMA, invocation, workflow

pytestmark = pytest.mark.django_db

TRACEBACK = "\n".join(["Traceback (most recent call last):"]
                      + [f'  File "x.py", line {i}, in f' for i in range(40)]
                      + ["ValueError: boom"])


@pytest.fixture
def wf():
    return workflow("nightly", ("chain", [invocation(SUMA, [1, 2]), invocation(SUMA, [3])]))


@pytest.fixture
def rule(wf, django_user_model):
    rule = AlertRule.objects.create(workflow=wf, emails="ops@example.com, oncall@example.com",
                                    sla_minutes=30)
    staff = django_user_model.objects.create_user("ana", "ana@example.com", is_staff=True)
    django_user_model.objects.create_user("bob", "bob@example.com")  # not staff: not told
    rule.users.add(staff)
    return rule


@pytest.fixture
def queued(monkeypatch):
    """Messages the alerting would send to the broker, instead of sending them."""
    sent = []
    monkeypatch.setattr(alerting, "_enqueue", lambda name, *args: sent.append((name, *args)))
    return sent


def make_run(wf, status=RunStatus.FAILED, *, finished_ago=0, rule_id=..., failed_node=True):
    now = timezone.now()
    run = WorkflowRun.objects.create(
        workflow=wf, workflow_name=wf.name, spec={}, trigger="schedule",
        trigger_detail="nightly at 2", status=status, total_nodes=2,
        alert_rule_id=rule_id if rule_id is not ... else AlertRule.objects.id_for(wf.pk, None),
        finished_at=None if status in (RunStatus.RUNNING, RunStatus.PENDING)
        else now - timedelta(seconds=finished_ago),
    )
    TaskRun.objects.create(run=run, task_id=f"{run.pk}-a", path="root.0", position=0,
                           task_name=SUMA, state=NodeState.SUCCESS)
    TaskRun.objects.create(
        run=run, task_id=f"{run.pk}-b", path="root.1", position=1, task_name=SUMA,
        state=NodeState.FAILURE if failed_node else NodeState.SUCCESS,
        exception="ValueError: boom" if failed_node else "",
        traceback=TRACEBACK if failed_node else "",
    )
    return run


def test_a_run_records_the_rule_in_force_the_schedule_s_first(wf, rule):
    from tests.support.factories import schedule

    sched = schedule(wf)
    assert AlertRule.objects.id_for(wf.pk, sched.pk) == rule.pk
    own = AlertRule.objects.create(schedule=sched, on_failure=False)
    assert AlertRule.objects.id_for(wf.pk, sched.pk) == own.pk
    assert AlertRule.objects.id_for(wf.pk, None) == rule.pk
    other = workflow("other", ("chain", [invocation(SUMA, [1, 2])]))
    assert AlertRule.objects.id_for(other.pk, None) is None


def test_the_receiver_costs_nothing_without_alert_settings(wf, queued):
    run = make_run(wf, rule_id=None)
    with CaptureQueriesContext(connection) as queries:
        run_finished.send(sender=WorkflowRun, run=run)
    assert len(queries) == 0 and queued == []


def test_the_receiver_only_queues_the_alert_task_on_commit(wf, rule, queued,
                                                           django_capture_on_commit_callbacks):
    run = make_run(wf)
    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(
        connection
    ) as queries:
        run_finished.send(sender=WorkflowRun, run=run)
    assert queued == [(alerting.ALERT_RUN_TASK, run.pk)]
    assert len(queries) == 0
    run.status = RunStatus.REVOKED  # stopped on purpose: nobody is told
    run_finished.send(sender=WorkflowRun, run=run)
    assert len(queued) == 1


def test_a_run_is_announced_once_when_it_finishes(wf, django_capture_on_commit_callbacks):
    run = make_run(wf, status=RunStatus.RUNNING)
    run.finished_nodes = 2
    run.save()
    heard = []

    def listener(sender, run, **kwargs):
        heard.append((run.pk, run.status))

    run_finished.connect(listener, sender=WorkflowRun)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tracking.finish_if_done(run.pk)
            tracking.finish_if_done(run.pk)  # a late duplicate event
    finally:
        run_finished.disconnect(listener, sender=WorkflowRun)
    assert heard == [(run.pk, RunStatus.PARTIALLY_FAILED)]


def test_which_alert_a_run_deserves(wf, rule):
    failed = make_run(wf, RunStatus.FAILED, finished_ago=30)
    assert alerting.kind_for(failed) == AlertKind.FAILURE
    partial = make_run(wf, RunStatus.PARTIALLY_FAILED, finished_ago=20)
    assert alerting.kind_for(partial) == AlertKind.PARTIAL_FAILURE
    recovered = make_run(wf, RunStatus.SUCCEEDED, finished_ago=10, failed_node=False)
    assert alerting.kind_for(recovered) == AlertKind.RECOVERY
    again = make_run(wf, RunStatus.SUCCEEDED, finished_ago=0, failed_node=False)
    assert alerting.kind_for(again) is None  # the previous one succeeded


def test_an_alert_is_claimed_once_per_run_and_kind(wf, rule, queued,
                                                  django_capture_on_commit_callbacks):
    run = make_run(wf)
    with django_capture_on_commit_callbacks(execute=True):
        assert alerting.alert_run(run.pk) != []
    assert alerting.alert_run(run.pk) == []  # a re-delivered message
    alert = Alert.objects.get()
    assert (alert.kind, alert.status) == (AlertKind.FAILURE, AlertStatus.PENDING)
    assert alert.recipients == ["ana@example.com", "oncall@example.com", "ops@example.com"]
    assert queued == [(alerting.DELIVER_TASK, alert.pk)]


def test_rule_choices_are_followed(wf, rule, queued):
    rule.on_failure = False
    rule.save()
    assert alerting.alert_run(make_run(wf).pk) == []
    assert not Alert.objects.exists()


def test_the_throttle_suppresses_then_counts(wf, rule, queued):
    first = make_run(wf)
    alerting.alert_run(first.pk)
    for _ in range(3):
        alerting.alert_run(make_run(wf).pk)
    statuses = list(Alert.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [AlertStatus.PENDING] + [AlertStatus.SUPPRESSED] * 3
    # Other kinds and other workflows have their own clocks.
    alerting.alert_run(make_run(wf, RunStatus.PARTIALLY_FAILED).pk)
    assert Alert.objects.latest("pk").status == AlertStatus.PENDING
    # Once the interval has passed, the next one is sent and tells of the three.
    Alert.objects.filter(run=first).update(created_at=timezone.now() - timedelta(hours=1))
    alerting.alert_run(make_run(wf).pk)
    latest = Alert.objects.latest("pk")
    assert (latest.status, latest.suppressed_before) == (AlertStatus.PENDING, 3)


def test_delivery_sends_one_email_with_what_failed_and_the_link(wf, rule, queued):
    run = make_run(wf)
    [alert_id] = alerting.alert_run(run.pk)
    assert alerting.deliver(alert_id) == AlertStatus.SENT
    assert alerting.deliver(alert_id) == AlertStatus.SENT  # twice: still one email
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == f"Workflow “nightly” failed (run #{run.pk})"
    assert message.to == ["ana@example.com", "oncall@example.com", "ops@example.com"]
    link = f"http://admin.test/admin/task_admin/workflowrun/{run.pk}/change/"
    for text in (message.body, message.alternatives[0][0]):
        assert "nightly" in text and f"#{run.pk}" in text
        assert "root.1" in text and SUMA in text and "ValueError: boom" in text
        assert link in text
        assert 'line 18, in f' in text and 'line 30, in f' not in text  # the first 20 lines
    assert message.alternatives[0][1] == "text/html"
    alert = Alert.objects.get()
    assert (alert.status, alert.attempts, alert.emailed) == (AlertStatus.SENT, 1, True)
    assert alert.sent_at is not None and alert.subject == message.subject


def test_alerts_speak_the_site_s_language(wf, rule, queued, settings):
    settings.LANGUAGE_CODE = "es"
    run = make_run(wf)
    [alert_id] = alerting.alert_run(run.pk)
    alerting.deliver(alert_id)
    message = mail.outbox[0]
    assert message.subject == f"El flujo de trabajo «nightly» falló (ejecución #{run.pk})"
    assert "Tareas fallidas:" in message.body and "Página de la ejecución:" in message.body
    assert "Tareas fallidas" in message.alternatives[0][0]


def test_an_alert_with_nobody_to_tell_is_recorded_as_failed(wf, queued):
    rule = AlertRule.objects.create(workflow=wf)  # its only user left the staff, say
    [alert_id] = alerting.alert_run(make_run(wf, rule_id=rule.pk).pk)
    assert alerting.deliver(alert_id) == AlertStatus.FAILED
    assert "Nobody to tell" in Alert.objects.get().error and not mail.outbox


def test_a_run_that_could_not_be_sent_is_a_failure_with_the_reason(wf, rule, queued):
    run = make_run(wf, RunStatus.DISPATCH_FAILED, failed_node=False)
    WorkflowRun.objects.filter(pk=run.pk).update(
        error="OperationalError: Error 111 connecting to localhost:6379."
    )
    [alert_id] = alerting.alert_run(run.pk)
    assert alerting.deliver(alert_id) == AlertStatus.SENT
    body = mail.outbox[0].body
    assert "Dispatch error: OperationalError: Error 111 connecting to localhost:6379." in body


def test_an_smtp_error_is_retried_without_sending_twice(wf, rule, queued, monkeypatch):
    import smtplib

    from django.core.mail.backends.locmem import EmailBackend

    run = make_run(wf)
    [alert_id] = alerting.alert_run(run.pk)
    real = EmailBackend.send_messages

    def down(self, messages):
        raise smtplib.SMTPServerDisconnected("gone")

    monkeypatch.setattr(EmailBackend, "send_messages", down)
    with pytest.raises(alerting.RetryLater):
        alerting.deliver(alert_id)
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.PENDING and "gone" in alert.error
    monkeypatch.setattr(EmailBackend, "send_messages", real)
    assert alerting.deliver(alert_id) == AlertStatus.SENT
    assert len(mail.outbox) == 1
    monkeypatch.setattr(EmailBackend, "send_messages", down)
    [second] = alerting.alert_run(make_run(wf, RunStatus.PARTIALLY_FAILED).pk)
    assert alerting.deliver(second, last_try=True) == AlertStatus.FAILED


def test_a_refused_webhook_fails_the_alert_for_good(wf, rule, queued):
    AlertRule.objects.filter(pk=rule.pk).update(
        webhook_url="https://not-allowed.example.com/x", webhook_secret="s" * 20
    )
    [alert_id] = alerting.alert_run(make_run(wf).pk)
    assert alerting.deliver(alert_id) == AlertStatus.FAILED
    alert = Alert.objects.get()
    assert alert.emailed and "not allowed" in alert.error


def test_late_runs_get_one_sla_alert(wf, rule, queued, monkeypatch):
    from task_admin import services

    monkeypatch.setattr(services, "reconcile_run", lambda run, **kw: 0)
    late = make_run(wf, RunStatus.RUNNING)
    on_time = make_run(wf, RunStatus.RUNNING)
    WorkflowRun.objects.filter(pk=late.pk).update(
        created_at=timezone.now() - timedelta(minutes=31)
    )
    queued_ids = alerting.check_slas()
    assert alerting.check_slas() == []  # the next tick
    alert = Alert.objects.get()
    assert queued_ids == [alert.pk] and (alert.run_id, alert.kind) == (late.pk, AlertKind.SLA)
    assert not on_time.alerts.exists()
    assert alerting.deliver(alert.pk) == AlertStatus.SENT
    assert "has not finished after 30 minutes" in mail.outbox[0].subject
    assert "should have finished within 30 minutes. It started 31 minutes ago" in (
        mail.outbox[0].body
    )


def test_an_sla_of_one_minute_says_minute_not_minutes(wf):
    """Regression: the subject said "after 1 minutes"."""
    from django.utils import translation

    from task_admin import alert_messages

    run = make_run(wf, RunStatus.RUNNING)
    assert alert_messages.subject(AlertKind.SLA, run, 1).endswith("has not finished after 1 minute")
    assert alert_messages.subject(AlertKind.SLA, run, 2).endswith("after 2 minutes")
    with translation.override("es"):
        assert alert_messages.subject(AlertKind.SLA, run, 1).endswith("tras 1 minuto")
        assert alert_messages.subject(AlertKind.SLA, run, 5).endswith("tras 5 minutos")


def test_an_alert_whose_sender_died_is_marked_failed(wf, rule, queued, monkeypatch):
    [alert_id] = alerting.alert_run(make_run(wf).pk)
    Alert.objects.filter(pk=alert_id).update(
        status=AlertStatus.SENDING, claimed_at=timezone.now() - timedelta(hours=1)
    )
    alerting.check_slas()
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.FAILED and "stopped" in alert.error


def test_the_periodic_entry_is_installed_once_and_kept_in_step():
    entry = next(e for e in periodic.ENTRIES if e.task == "task_admin.check_alert_slas")
    task = PeriodicTask.objects.get(name=entry.name)  # installed by migrate
    assert (task.task, task.interval.every) == ("task_admin.check_alert_slas", 60)
    task.interval = None
    from django_celery_beat.models import IntervalSchedule

    task.interval = IntervalSchedule.objects.create(every=5, period="seconds")
    task.save()
    periodic.install()
    periodic.install()
    task = PeriodicTask.objects.get(name=entry.name)
    assert task.interval.every == 60
    assert PeriodicTask.objects.filter(task="task_admin.check_alert_slas").count() == 1
