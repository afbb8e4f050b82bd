"""Canvas as code in the admin: paste to create or replace a tree (preview first), copy as code."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from task_admin import canvas, canvas_code
from task_admin.compile import workflow_to_spec
from task_admin.models import TaskInvocation, Workflow, WorkflowNode, WorkflowRun
from tests.support.factories import SUMA, invocation, workflow

pytestmark = pytest.mark.django_db

FROM_CODE_URL = reverse("admin:task_admin_workflow_from_code")
CHORD = "chord([suma.s(1, 1), suma.s(2, 2)], suma.s(10))"


def paste(client, url, action="_save", **fields):
    """POST the paste form (its fields are prefixed ``paste-``) with a preview or save button."""
    return client.post(url, {**{f"paste-{k}": v for k, v in fields.items()}, action: "1"})


def counts():
    return (Workflow.objects.count(), WorkflowNode.objects.count(),
            TaskInvocation.objects.count())


def test_the_add_page_offers_a_code_box_posting_to_the_preview(admin_client):
    html = admin_client.get(reverse("admin:task_admin_workflow_add")).content.decode()
    assert f'action="{FROM_CODE_URL}"' in html
    assert 'name="paste-code"' in html and 'name="_preview"' in html
    assert html.count('id="id_name"') == 1  # the workflow form's own field stays unique


def test_preview_shows_tree_graph_and_warning_and_saves_nothing(admin_client):
    before = counts()
    response = paste(admin_client, FROM_CODE_URL, "_preview", name="c", code=CHORD)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Preview: nothing is saved yet" in html
    assert 'data-path="root.body"' in html and "<svg" in html
    assert "1 warning: it can be saved, but check it" in html
    assert "line 1, column 37: root.body: as the chord" in html
    assert 'name="_save"' in html  # warnings do not refuse
    assert counts() == before


def test_save_creates_the_workflow_in_one_go_logged_with_the_warning(admin_client):
    response = paste(admin_client, FROM_CODE_URL, name="c", code=CHORD)
    created = Workflow.objects.get(name="c")
    assert response.status_code == 302
    assert response.url == reverse("admin:task_admin_workflow_change", args=[created.pk])
    spec = workflow_to_spec(created)
    assert canvas.leaves(spec)[2][1].args == (10,)
    assert LogEntry.objects.get(object_id=str(created.pk)).action_flag == ADDITION
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(m.startswith("Warning: line 1, column 37: root.body") for m in shown), shown
    # The change page keeps showing the warning above the preview.
    page = admin_client.get(response.url).content.decode()
    assert 'id="workflow-warnings"' in page and "receives the list of header results" in page


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("chain(suma.s(1, 2), nosuch.s())", "line 1, column 21: unknown or disallowed task"),
        ("suma.s(1, 2, 3)", "line 1, column 1: root: tests.testapp.tasks.suma(a, b) cannot"),
        ("__import__('os').system('true')", "__import__() is not allowed"),
        ("suma.s(lambda: 1, 2)", "lambdas are not allowed"),
    ],
)
def test_refused_code_is_shown_where_it_was_pasted_and_nothing_is_saved(
    admin_client, code, message
):
    before = counts()
    response = paste(admin_client, FROM_CODE_URL, name="bad", code=code)
    assert response.status_code == 200
    html = response.content.decode()
    assert "this code cannot be saved" in html
    assert message.replace("'", "&#x27;") in html or message in html, html[:3000]
    assert 'name="_save"' not in html
    assert counts() == before


def test_a_taken_name_is_refused_at_the_field(admin_client):
    workflow("taken", invocation(SUMA, [1, 2]))
    response = paste(admin_client, FROM_CODE_URL, name="taken", code="suma.s(1, 2)")
    assert response.status_code == 200
    assert "A workflow named “taken” already exists." in response.content.decode()


def test_replace_from_code_is_prefilled_with_the_tree_and_replaces_it(admin_client):
    wf = workflow("w", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    url = reverse("admin:task_admin_workflow_replace_from_code", args=[wf.pk])
    change = admin_client.get(reverse("admin:task_admin_workflow_change", args=[wf.pk]))
    assert url in change.content.decode()
    page = admin_client.get(url).content.decode()
    assert "chain(suma.s(2, 2), suma.s(4))" in page
    assert paste(admin_client, url, "_preview", code="group(suma.s(9, 9))").status_code \
        == 200
    assert workflow_to_spec(wf).tasks[0].args == (2, 2)  # the preview changed nothing
    response = paste(admin_client, url, code="group(suma.s(9, 9))")
    assert response.status_code == 302
    assert isinstance(workflow_to_spec(wf), canvas.Group)
    assert LogEntry.objects.filter(object_id=str(wf.pk), action_flag=CHANGE).exists()


def test_copy_as_code_on_workflow_and_run_pages(admin_client):
    wf = workflow("w", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    code_url = reverse("admin:task_admin_workflow_as_code", args=[wf.pk])
    assert code_url in admin_client.get(
        reverse("admin:task_admin_workflow_change", args=[wf.pk])).content.decode()
    page = admin_client.get(code_url).content.decode()
    assert "from tests.testapp.tasks import suma" in page and 'data-copy-target="ta-code"' in page
    text = admin_client.get(code_url + "?format=text")
    assert text["Content-Disposition"] == 'attachment; filename="w.py"'
    assert canvas_code.read(text.content.decode()).spec == canvas.Chain(
        (canvas.Task(SUMA, (2, 2)), canvas.Task(SUMA, (4,))))

    run = WorkflowRun.objects.create(workflow=wf, workflow_name="w", trigger="manual",
                                     spec=canvas.to_dict(workflow_to_spec(wf)))
    run_code = reverse("admin:task_admin_workflowrun_as_code", args=[run.pk])
    assert run_code in admin_client.get(
        reverse("admin:task_admin_workflowrun_change", args=[run.pk])).content.decode()
    assert "chain(suma.s(2, 2), suma.s(4))" in admin_client.get(run_code).content.decode()


def test_permissions_are_checked_again(client, django_user_model):
    wf = workflow("w", invocation(SUMA, [1, 2]))
    user = django_user_model.objects.create_user("u", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_workflow"))
    client.force_login(user)
    replace = reverse("admin:task_admin_workflow_replace_from_code", args=[wf.pk])
    before = counts()
    for url in (FROM_CODE_URL, replace):
        assert client.get(url).status_code == 403
        assert paste(client, url, name="x", code="suma.s(1, 2)").status_code == 403
    assert client.get(reverse("admin:task_admin_workflow_as_code", args=[wf.pk])
                      ).status_code == 200
    assert counts() == before
    # With add permission only: create from code, but not replace.
    user.user_permissions.add(Permission.objects.get(codename="add_workflow"))
    assert paste(client, FROM_CODE_URL, name="x", code="suma.s(1, 2)").status_code == 302
    assert paste(client, replace, code="suma.s(1, 2)").status_code == 403


def test_the_preview_says_when_a_group_piped_into_a_task_becomes_a_chord(admin_client):
    html = paste(admin_client, FROM_CODE_URL, "_preview", name="p",
                 code="group(suma.s(1, 1), suma.s(2, 2)) | sum_list.s()").content.decode()
    assert "a group followed by | is read as a chord" in html
    assert 'data-path="root.body"' in html
