"""Schedules in the admin: one form for the schedule and its beat entry, permissions, lists."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)

from task_admin.models import Overlap, Workflow, WorkflowRun, WorkflowSchedule
from tests.support.factories import SUMA, invocation, next_due, schedule, workflow

pytestmark = pytest.mark.django_db

ADD_URL = "admin:task_admin_workflowschedule_add"


@pytest.fixture
def adds():
    return workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))


@pytest.fixture
def every_minute():
    return IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)


def form_data(wf, **values):
    data = {
        "name": "adds every minute",
        "workflow": wf.pk,
        "enabled": "on",
        "overlap": Overlap.SKIP,
        "overrides": "{}",
        "start_time_0": "", "start_time_1": "", "expires_0": "", "expires_1": "",
        # The alert settings inline, left empty.
        "alert_rule-TOTAL_FORMS": "0", "alert_rule-INITIAL_FORMS": "0",
    }
    data.update(values)
    return {key: value for key, value in data.items() if value is not None}


def errors_of(response) -> dict:
    assert response.status_code == 200, "expected the form again, with errors"
    form = response.context["adminform"].form
    return {field: [str(e) for e in errs] for field, errs in form.errors.items()}


def test_add_creates_the_beat_entry_that_runs_the_schedule(admin_client, adds, every_minute):
    response = admin_client.post(reverse(ADD_URL), form_data(adds, interval=every_minute.pk))
    assert response.status_code == 302, errors_of(response)
    sched = WorkflowSchedule.objects.get()
    task = sched.periodic_task
    assert (task.name, task.task, task.enabled) == ("adds every minute", "task_admin.run_workflow",
                                                     True)
    assert json.loads(task.kwargs) == {"schedule": sched.pk}
    assert task.interval == every_minute and sched.workflow == adds


def test_timing_must_be_exactly_one_kind(admin_client, adds, every_minute):
    crontab = CrontabSchedule.objects.create(minute="0", hour="4")
    none = errors_of(admin_client.post(reverse(ADD_URL), form_data(adds)))
    assert "Pick one of interval" in " ".join(none["__all__"])
    both = errors_of(admin_client.post(
        reverse(ADD_URL), form_data(adds, interval=every_minute.pk, crontab=crontab.pk)
    ))
    assert set(both) == {"interval", "crontab"}
    assert not WorkflowSchedule.objects.exists() and not PeriodicTask.objects.filter(
        task="task_admin.run_workflow"
    ).exists()


def test_clocked_schedule_is_made_one_off(admin_client, adds):
    clocked = ClockedSchedule.objects.create(clocked_time=timezone.now() + timedelta(hours=1))
    response = admin_client.post(reverse(ADD_URL), form_data(adds, clocked=clocked.pk))
    assert response.status_code == 302, errors_of(response)
    assert WorkflowSchedule.objects.get().periodic_task.one_off is True


def test_name_is_unique_among_beat_entries(admin_client, adds, every_minute):
    PeriodicTask.objects.create(name="taken", task="tests.testapp.tasks.suma",
                                interval=every_minute)
    errors = errors_of(admin_client.post(
        reverse(ADD_URL), form_data(adds, name="taken", interval=every_minute.pk)
    ))
    assert "name" in errors
    assert not WorkflowSchedule.objects.exists()


@pytest.mark.parametrize(("overrides", "message"), [
    ('{"root.7": {"b": 1}}', "root.7"),
    ('{"root.0": {"c": 1}}', "c"),
    ("{not json", "Enter valid JSON"),
    ("[1]", "JSON object"),
])
def test_bad_overrides_are_refused_at_the_field(admin_client, adds, every_minute, overrides,
                                                message):
    errors = errors_of(admin_client.post(
        reverse(ADD_URL), form_data(adds, interval=every_minute.pk, overrides=overrides)
    ))
    assert message in " ".join(errors.get("overrides", []) + errors.get("workflow", [])), errors
    assert not WorkflowSchedule.objects.exists()


def test_an_invalid_workflow_cannot_be_scheduled(admin_client, every_minute):
    broken = workflow("broken", ("chord", [invocation(SUMA, [1, 1])]))  # no body
    errors = errors_of(admin_client.post(
        reverse(ADD_URL), form_data(broken, interval=every_minute.pk)
    ))
    assert "body" in " ".join(errors["workflow"])


def test_change_updates_the_same_beat_entry(admin_client, adds, every_minute):
    sched = schedule(adds, every=10)
    task_pk = sched.periodic_task_id
    before = PeriodicTasks.last_change()
    url = reverse("admin:task_admin_workflowschedule_change", args=[sched.pk])
    page = admin_client.get(url)
    assert page.context["adminform"].form.initial["interval"] == sched.periodic_task.interval_id
    response = admin_client.post(url, form_data(
        adds, name="renamed", interval=every_minute.pk, overlap=Overlap.ALLOW, enabled=None,
    ))
    assert response.status_code == 302, errors_of(response)
    task = PeriodicTask.objects.get(pk=task_pk)
    assert (task.name, task.interval, task.enabled) == ("renamed", every_minute, False)
    assert WorkflowSchedule.objects.get().overlap == Overlap.ALLOW
    assert PeriodicTasks.last_change() > before  # beat is told


def test_deleting_a_schedule_or_its_workflow_removes_the_beat_entry(admin_client, adds):
    first, second = schedule(adds, name="one"), schedule(adds, name="two")
    response = admin_client.post(
        reverse("admin:task_admin_workflowschedule_delete", args=[first.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not PeriodicTask.objects.filter(pk=first.periodic_task_id).exists()
    Workflow.objects.get(pk=adds.pk).delete()
    assert not PeriodicTask.objects.filter(pk=second.periodic_task_id).exists()
    assert not WorkflowSchedule.objects.exists()


def test_deleting_the_beat_entry_removes_the_schedule(adds):
    sched = schedule(adds)
    sched.periodic_task.delete()
    assert not WorkflowSchedule.objects.exists()


def test_disable_and_enable_actions(admin_client, adds):
    scheds = [schedule(adds, name=f"s{i}") for i in range(3)]
    url = reverse("admin:task_admin_workflowschedule_changelist")
    before = PeriodicTasks.last_change()
    admin_client.post(url, {"action": "disable_schedules",
                            "_selected_action": [s.pk for s in scheds[:2]]})
    assert [t.enabled for t in PeriodicTask.objects.filter(
        workflow_schedule__in=scheds).order_by("name")] == [False, False, True]
    assert PeriodicTasks.last_change() > before
    admin_client.post(url, {"action": "enable_schedules", "_selected_action": [scheds[0].pk]})
    assert PeriodicTask.objects.get(workflow_schedule=scheds[0]).enabled is True


def staff(*perms: str) -> User:
    user = User.objects.create_user("planner", password="pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def test_changing_schedules_needs_the_schedule_permission(client, adds, every_minute):
    client.force_login(staff("task_admin.add_workflowschedule",
                             "task_admin.change_workflowschedule",
                             "task_admin.view_workflow"))
    assert client.get(reverse(ADD_URL)).status_code == 403
    assert client.post(reverse(ADD_URL), form_data(adds, interval=every_minute.pk)
                       ).status_code == 403
    assert not WorkflowSchedule.objects.exists()
    sched = schedule(adds)
    page = client.get(reverse("admin:task_admin_workflowschedule_change", args=[sched.pk]))
    assert page.status_code == 200 and "Save" not in page.content.decode()
    assert client.get(reverse("admin:task_admin_workflow_change", args=[adds.pk])
                      ).context["schedule_url"] is None


def test_a_scheduler_is_offered_the_schedule_link_on_the_workflow(client, adds, every_minute):
    client.force_login(staff("task_admin.add_workflowschedule", "task_admin.schedule_workflow",
                             "task_admin.view_workflow"))
    page = client.get(reverse("admin:task_admin_workflow_change", args=[adds.pk]))
    link = page.context["schedule_url"]
    assert link.endswith(f"?workflow={adds.pk}") and link in page.content.decode()
    add_page = client.get(link)
    assert add_page.context["adminform"].form.initial["workflow"] == str(adds.pk)
    response = client.post(reverse(ADD_URL), form_data(adds, interval=every_minute.pk))
    assert response.status_code == 302


def test_schedule_list_queries_do_not_grow(admin_client, adds, django_assert_max_num_queries):
    url = reverse("admin:task_admin_workflowschedule_changelist")
    for i in range(3):
        schedule(adds, name=f"few {i}")
    with django_assert_max_num_queries(12) as few:
        assert admin_client.get(url).status_code == 200
    for i in range(40):
        schedule(adds, name=f"many {i}", every=i + 1)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = admin_client.get(url)
    assert "many 39" in page.content.decode() and "every 40 seconds" in page.content.decode()


def test_runs_of_a_schedule_are_listed_from_it(
    admin_client, adds, django_capture_on_commit_callbacks
):
    from task_admin import scheduling

    sched = schedule(adds, overlap=Overlap.ALLOW)
    with django_capture_on_commit_callbacks(execute=False):
        scheduling.fire(sched.pk)
        next_due(sched)
        scheduling.fire(sched.pk)
    WorkflowRun.objects.create(workflow=adds, workflow_name="adds", spec={}, trigger="manual")
    page = admin_client.get(reverse("admin:task_admin_workflowschedule_change", args=[sched.pk]))
    assert "2 runs" in page.content.decode()
    listed = admin_client.get(
        reverse("admin:task_admin_workflowrun_changelist"), {"schedule__id__exact": sched.pk}
    )
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 2


def test_dashboard_links_the_schedule(admin_client, adds):
    sched = schedule(adds, name="nightly adds")
    page = admin_client.get(reverse("admin:index")).content.decode()
    url = reverse("admin:task_admin_workflowschedule_change", args=[sched.pk])
    assert f'href="{url}"' in page and "nightly adds" in page


def test_override_values_that_are_not_objects_are_field_errors(admin_client, adds, every_minute):
    errors = errors_of(admin_client.post(
        reverse(ADD_URL), form_data(adds, interval=every_minute.pk, overrides='{"root.0": 5}')
    ))
    assert "must be a JSON object" in " ".join(errors["overrides"])


def test_solar_schedules_work_and_an_uncomputable_one_is_refused(admin_client, adds,
                                                                 monkeypatch):
    solar = SolarSchedule.objects.create(event="sunset", latitude=52.5, longitude=13.4)
    response = admin_client.post(reverse(ADD_URL), form_data(adds, solar=solar.pk))
    assert response.status_code == 302, errors_of(response)
    listed = admin_client.get(reverse("admin:task_admin_workflowschedule_changelist"))
    assert "sunset" in listed.content.decode().lower()

    def broken(self):
        raise ImproperlyConfigured("You need to install the ephem library")

    monkeypatch.setattr(SolarSchedule, "schedule", property(broken))
    errors = errors_of(admin_client.post(
        reverse(ADD_URL), form_data(adds, name="other", solar=solar.pk)
    ))
    assert "Beat cannot compute this schedule" in " ".join(errors["solar"])


def test_expiry_must_be_ahead_and_replaces_beats_expire_seconds(admin_client, adds,
                                                                every_minute):
    past = errors_of(admin_client.post(reverse(ADD_URL), form_data(
        adds, interval=every_minute.pk, expires_0="2020-01-01", expires_1="00:00:00",
    )))
    assert "in the past" in " ".join(past["expires"])
    sched = schedule(adds)
    PeriodicTask.objects.filter(pk=sched.periodic_task_id).update(expire_seconds=60)
    url = reverse("admin:task_admin_workflowschedule_change", args=[sched.pk])
    response = admin_client.post(url, form_data(
        adds, name=sched.periodic_task.name, interval=every_minute.pk,
        expires_0="2099-01-01", expires_1="00:00:00",
    ))
    assert response.status_code == 302, errors_of(response)
    task = PeriodicTask.objects.get(pk=sched.periodic_task_id)
    assert task.expire_seconds is None and task.expires.year == 2099


def test_a_schedule_of_a_broken_workflow_can_still_be_disabled(admin_client, adds,
                                                               every_minute):
    sched = schedule(adds)
    adds.nodes.filter(parent__isnull=False).delete()  # now an empty chain
    url = reverse("admin:task_admin_workflowschedule_change", args=[sched.pk])
    enabled = errors_of(admin_client.post(url, form_data(
        adds, name=sched.periodic_task.name, interval=every_minute.pk)))
    assert "workflow" in enabled
    response = admin_client.post(url, form_data(
        adds, name=sched.periodic_task.name, interval=every_minute.pk, enabled=None))
    assert response.status_code == 302, errors_of(response)
    assert not PeriodicTask.objects.get(pk=sched.periodic_task_id).enabled


def test_enable_and_disable_need_the_change_permission(client, adds):
    sched = schedule(adds, enabled=False)
    client.force_login(staff("task_admin.view_workflowschedule", "task_admin.schedule_workflow"))
    url = reverse("admin:task_admin_workflowschedule_changelist")
    page = client.get(url)
    assert "enable_schedules" not in page.content.decode()
    client.post(url, {"action": "enable_schedules", "_selected_action": [sched.pk]})
    assert not PeriodicTask.objects.get(pk=sched.periodic_task_id).enabled


def test_a_missing_value_is_a_long_dash_on_every_page_of_the_app(admin_client):
    """Regression: the run page said "—" where Django's other pages said "-" (never fired)."""
    from django.contrib import admin

    wf = workflow("dash", ("chain", [invocation(SUMA, [1, 1])]))
    schedule(wf)
    html = admin_client.get(reverse("admin:task_admin_workflowschedule_changelist")).content
    cell = re.search(r'<td class="field-last_fired_at[^"]*">(.*?)</td>', html.decode()).group(1)
    assert cell == "—"
    ours = [model_admin for model, model_admin in admin.site._registry.items()
            if model._meta.app_label == "task_admin"]
    assert ours and {model_admin.empty_value_display for model_admin in ours} == {"—"}


def test_overrides_are_checked_against_the_tree_as_stored_now(
        admin_client, django_capture_on_commit_callbacks):
    # A process that started the workflow keeps its spec (task_admin.spec_cache); a node added
    # since (the composer, an import, another server) must be accepted, as beat will run it.
    from task_admin import services, spec_cache
    from tests.support.factories import add_node

    spec_cache.forget()
    every_minute = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
    adds = workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    with django_capture_on_commit_callbacks(execute=False):
        services.run_workflow(adds)
    add_node(adds, invocation(SUMA, [], name="one", clean=False),
             parent=adds.nodes.get(parent=None), position=2)
    response = admin_client.post(reverse(ADD_URL), form_data(
        adds, interval=every_minute.pk, overrides='{"root.2": {"b": 5}}'))
    assert response.status_code == 302, errors_of(response)
    assert WorkflowSchedule.objects.get().overrides == {"root.2": {"b": 5}}
    spec_cache.forget()


def test_overrides_for_a_node_deleted_since_the_last_start_are_refused(
        admin_client, django_capture_on_commit_callbacks):
    from task_admin import services, spec_cache

    spec_cache.forget()
    every_minute = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
    adds = workflow("adds", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    with django_capture_on_commit_callbacks(execute=False):
        services.run_workflow(adds)  # kept, with root.1
    adds.nodes.get(kind="task", position=1).delete()
    response = admin_client.post(reverse(ADD_URL), form_data(
        adds, interval=every_minute.pk, overrides='{"root.1": {"b": 5}}'))
    assert response.status_code == 200
    assert "root.1: no task at this path" in str(errors_of(response))
    assert not WorkflowSchedule.objects.exists()
    spec_cache.forget()
