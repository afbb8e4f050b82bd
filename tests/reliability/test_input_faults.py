"""Issue 8, items 5, 7, 8 and 9: bad input is refused where staff typed it, never a 500.

5: countdown / eta / expires bounded by what Celery and the broker carry.
7: exported cells a spreadsheet would run as formulae are escaped (and imported back as they were).
8: a workflow cannot reuse itself, even through a crafted POST.
9: a file that cannot be imported as a whole gets a message that names the problem.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from task_admin import canvas, services, validation
from task_admin.compile import InvalidWorkflow
from task_admin.models import NodeKind, TaskInvocation, Workflow, WorkflowNode
from task_admin.resources import TaskInvocationResource, WorkflowResource
from tests.admin.test_invocations_admin import form_data as invocation_form
from tests.admin.test_workflows_admin import change_url, form_data, stored
from tests.support.factories import SUMA, invocation, workflow

pytestmark = pytest.mark.django_db
ADD_INVOCATION = reverse("admin:task_admin_taskinvocation_add")


# -- 5: delays ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field,value,message", [
    ("countdown", "1e20", "countdown must be at most 60 seconds"),  # the tests' visibility timeout
    ("countdown", "61", "countdown must be at most 60 seconds"),
    ("expires", "1e20", "expires must be at most 1e+09 seconds"),
])
def test_a_delay_the_broker_cannot_carry_is_a_form_error(admin_client, field, value, message):
    response = admin_client.post(ADD_INVOCATION, invocation_form(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not TaskInvocation.objects.exists()


def test_an_eta_further_than_the_broker_holds_is_a_form_error(admin_client):
    far = timezone.localtime() + timedelta(days=2)
    response = admin_client.post(ADD_INVOCATION, invocation_form(
        eta_0=far.strftime("%Y-%m-%d"), eta_1=far.strftime("%H:%M:%S")
    ))
    assert response.status_code == 200
    assert "eta must be at most 60 seconds from now" in " ".join(
        response.context["adminform"].form.errors["eta"]
    )


def test_within_the_bound_is_accepted_and_max_delay_overrides_the_broker(admin_client, settings):
    response = admin_client.post(ADD_INVOCATION, invocation_form(countdown="30", expires="3600"))
    assert response.status_code == 302
    settings.TASK_ADMIN = {**settings.TASK_ADMIN, "MAX_DELAY": 7200}
    response = admin_client.post(ADD_INVOCATION, invocation_form(name="later", countdown="7000"))
    assert response.status_code == 302


def test_the_broker_bound_follows_the_transport(settings):
    assert validation.max_delay() == 60  # the test settings' Redis visibility_timeout
    settings.TASK_ADMIN = {
        **settings.TASK_ADMIN, "CELERY_APP": "tests.support.celery_apps.amqp_app"}
    assert validation.max_delay() == validation.RABBITMQ_CONSUMER_TIMEOUT


def test_a_stored_countdown_too_long_is_refused_at_run_not_sent(django_capture_on_commit_callbacks):
    # Saved before the bound existed (or through the ORM): the run is refused, nothing is sent.
    inv = invocation(SUMA, [1, 1], clean=False, countdown=1e20)
    wf = workflow("far", ("group", [inv]))
    with pytest.raises(InvalidWorkflow, match="countdown must be at most"):
        services.run_workflow(wf)


def test_canvas_bounds_without_a_broker():
    task = canvas.Task("t", options=canvas.Options(countdown=1e20))
    problems = canvas.validate(task, tasks={"t": None})
    assert [p.message for p in problems] == [
        "countdown must be at most 1e+09 seconds, the longest Celery can schedule"
    ]


# -- 7: formulae -------------------------------------------------------------------------------


def test_export_escapes_formulae_and_import_restores_them():
    names = ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "'=already", "plain"]
    for name in names:
        invocation(SUMA, [1, 1], name=name, description=name)
    csv = TaskInvocationResource().export(TaskInvocation.objects.all()).csv
    cells = [row.split(",")[0] for row in csv.splitlines()[1:]]
    assert not [cell for cell in cells if cell.lstrip('"').startswith(("=", "+", "-", "@"))]
    assert "'=HYPERLINK" in csv and "'+1+1" in csv and "'-2" in csv and "'@SUM" in csv
    assert "''=already" in csv and "'plain" not in csv

    TaskInvocation.objects.all().delete()
    result = TaskInvocationResource().import_data(tablib.Dataset().load(csv, format="csv"))
    assert not result.has_errors() and not result.has_validation_errors()
    assert sorted(TaskInvocation.objects.values_list("name", flat=True)) == sorted(names)
    assert TaskInvocation.objects.get(name="-2").description == "-2"


def test_workflow_export_escapes_formulae():
    workflow("=cmd|' /C calc'!A0", ("group", [invocation(SUMA, [1, 1])]))
    csv = WorkflowResource().export(Workflow.objects.all()).csv
    assert "\n'=cmd" in csv.replace("\r\n", "\n")


# -- 8: self-reuse -----------------------------------------------------------------------------


def test_a_crafted_post_cannot_make_a_workflow_reuse_itself(admin_client):
    wf = workflow("loop", ("group", [invocation(SUMA, [1, 1])]))
    tree = stored(wf)
    tree["root"]["children"].append({"kind": NodeKind.WORKFLOW, "reuse": wf.pk})
    response = admin_client.post(change_url(wf), form_data(tree, name="loop"))
    assert response.status_code == 200
    assert "A workflow cannot reuse itself." in response.content.decode()
    assert not WorkflowNode.objects.filter(reuse=wf).exists()


# -- 9: files that cannot be imported ----------------------------------------------------------


def post_file(client, model: str, content: bytes, fmt: str, name: str = "file"):
    url = reverse(f"admin:task_admin_{model}_import")
    formats = client.get(url).context["form"].fields["format"].choices
    value = next(value for value, label in formats if label.lower() == fmt)
    return client.post(url, {
        "format": value, "resource": 0,
        "import_file": SimpleUploadedFile(f"{name}.{fmt}", content),
    })


@pytest.mark.parametrize("model", ["taskinvocation", "workflow"])
@pytest.mark.parametrize("content,fmt,message", [
    (b"foo,bar\n1,2\n", "csv", "The file has no “name” column, so its rows cannot be matched. "
                               "It has: foo, bar. The columns are: name"),
    ("name,task\n\xe9t\xe9,x\n".encode("latin-1"), "csv",
     "The file is not UTF-8 text (byte 10 cannot be read)."),
    (b"{not json", "json", "The file is not valid JSON: Expecting property name"),
    (b"[1, 2, 3]", "json", "The file is not a table"),
])
def test_file_level_import_errors_are_plain_messages(admin_client, model, content, fmt, message):
    response = post_file(admin_client, model, content, fmt)
    assert response.status_code == 200
    html = response.content.decode().replace("&#x27;", "'")
    assert message in html
    assert "Traceback" not in html and "site-packages" not in html
