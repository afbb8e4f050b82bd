"""Alert settings in the admin: inline on the workflow (and a schedule), the change permission
on the workflow to edit them, a write-only secret, refused webhook destinations; the run page
lists the run's alerts."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from task_admin.models import Alert, AlertKind, AlertRule, AlertStatus, WorkflowRun
from tests.support.factories import SUMA, invocation, schedule, workflow

pytestmark = pytest.mark.django_db
SECRET = "correct-horse-battery-staple-9f3k"
HOOK = "http://127.0.0.1:{port}/hooks/ops"


class _Fields(HTMLParser):
    """The values a browser would post from the page's main form."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.setdefault(name, []).append(a.get("value") or "")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value") or "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][0] += data.lstrip("\n") if not self.data[
                self._textarea][0] else data


def page_data(response) -> dict:
    parser = _Fields()
    parser.feed(response.content.decode())
    data = {k: v if len(v) > 1 else v[0] for k, v in parser.data.items() if v}
    data.pop("csrfmiddlewaretoken", None)
    return data


def with_alerts(data: dict, **fields) -> dict:
    data = dict(data)
    data["alert_rule-TOTAL_FORMS"] = "1"
    for key in ("on_failure", "on_partial_failure", "on_recovery"):
        data.pop(f"alert_rule-0-{key}", None)
    for key, value in fields.items():
        if value is True:
            data[f"alert_rule-0-{key}"] = "on"
        elif value is not False:
            data[f"alert_rule-0-{key}"] = value
    return data


@pytest.fixture
def wf():
    return workflow("nightly", ("chain", [invocation(SUMA, [1, 2])]))


def change_url(obj) -> str:
    return reverse(f"admin:task_admin_{obj._meta.model_name}_change", args=[obj.pk])


def hook_url(settings) -> str:
    return HOOK.format(port=settings.TEST_HOOK_PORT)


def test_staff_with_change_permission_set_alerts_and_the_secret_never_comes_back(
    admin_client, wf, admin_user, settings
):
    page = admin_client.get(change_url(wf))
    assert page.status_code == 200 and b"alert_rule-TOTAL_FORMS" in page.content
    data = with_alerts(page_data(page), on_failure=True, on_recovery=True, sla_minutes="30",
                       emails="ops@example.com\noncall@example.com", users=str(admin_user.pk),
                       webhook_url=hook_url(settings), new_secret=SECRET)
    response = admin_client.post(change_url(wf), data)
    assert response.status_code == 302, response.context and [
        f.errors for fs in response.context["inline_admin_formsets"] for f in fs.formset.forms]
    rule = AlertRule.objects.get(workflow=wf)
    assert (rule.on_failure, rule.on_partial_failure, rule.on_recovery, rule.sla_minutes) == (
        True, False, True, 30)
    assert rule.webhook_secret == SECRET and list(rule.users.all()) == [admin_user]

    page = admin_client.get(change_url(wf))
    html = page.content.decode()
    assert SECRET not in html and SECRET[-4:] in html  # only its end, as a hint
    # Saving again without typing the secret keeps it.
    response = admin_client.post(change_url(wf), page_data(page))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.webhook_secret == SECRET


@pytest.mark.parametrize("url, message", [
    ("https://example.com/hook", "are not allowed here"),
    ("http://127.0.0.1:1/hooks/ops", "are not allowed here"),
    ("https://user:pw@example.com/hook", "user name or password"),
])
def test_a_webhook_destination_outside_the_setting_is_refused_where_typed(
    admin_client, wf, url, message
):
    data = with_alerts(page_data(admin_client.get(change_url(wf))), on_failure=True,
                       webhook_url=url, new_secret=SECRET)
    response = admin_client.post(change_url(wf), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AlertRule.objects.exists()


def test_alerts_need_someone_to_tell(admin_client, wf):
    data = with_alerts(page_data(admin_client.get(change_url(wf))), on_failure=True)
    response = admin_client.post(change_url(wf), data)
    assert response.status_code == 200
    assert "Choose who is told" in response.content.decode()
    assert not AlertRule.objects.exists()


def test_a_webhook_needs_a_secret(admin_client, wf, settings):
    data = with_alerts(page_data(admin_client.get(change_url(wf))), on_failure=True,
                       webhook_url=hook_url(settings))
    response = admin_client.post(change_url(wf), data)
    assert response.status_code == 200
    assert "Enter a secret" in response.content.decode()


@pytest.fixture
def staff(django_user_model, client):
    user = django_user_model.objects.create_user("staff", "staff@example.com", "pw",
                                                 is_staff=True)
    client.force_login(user)

    def grant(*codenames):
        user.user_permissions.add(*Permission.objects.filter(
            content_type__app_label="task_admin", codename__in=codenames))
        return user

    return grant


def test_view_only_staff_see_alert_settings_without_the_secret(client, staff, wf):
    AlertRule.objects.create(workflow=wf, emails="ops@example.com",
                             webhook_url="https://hooks.example.com/x", webhook_secret=SECRET)
    staff("view_workflow")
    html = client.get(change_url(wf)).content.decode()
    assert "ops@example.com" in html and "hooks.example.com" in html
    assert SECRET not in html and "new_secret" not in html
    assert 'name="alert_rule-0-emails"' not in html  # read-only


def test_schedule_override_needs_the_change_permission_on_the_workflow(client, staff, wf):
    sched = schedule(wf)
    staff("view_workflow", "view_workflowschedule", "change_workflowschedule",
          "schedule_workflow")
    page = client.get(change_url(sched))
    assert page.status_code == 200
    data = with_alerts(page_data(page), on_failure=True, emails="evil@example.com")
    client.post(change_url(sched), data)
    assert not AlertRule.objects.exists()

    staff("change_workflow")
    page = client.get(change_url(sched))
    data = with_alerts(page_data(page), on_failure=True, emails="team@example.com")
    response = client.post(change_url(sched), data)
    assert response.status_code == 302
    rule = AlertRule.objects.get()
    assert rule.schedule == sched and rule.workflow is None and rule.emails == "team@example.com"


def test_the_run_page_lists_the_run_s_alerts(admin_client, wf):
    run = WorkflowRun.objects.create(workflow=wf, workflow_name=wf.name, spec={},
                                     trigger="manual", status="failed")
    Alert.objects.create(run=run, workflow=wf, kind=AlertKind.FAILURE, status=AlertStatus.SENT,
                         recipients=["ops@example.com"], attempts=1)
    Alert.objects.create(run=run, workflow=wf, kind=AlertKind.SLA, status=AlertStatus.FAILED,
                         error="email: connection refused")
    html = admin_client.get(change_url(run)).content.decode()
    assert 'id="ta-run-alerts"' in html
    assert "ops@example.com" in html and "connection refused" in html
    assert "late (SLA missed)" in html
