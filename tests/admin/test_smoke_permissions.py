"""Every admin URL of the task_admin app answers, and a view-only user can change nothing.

The URLs are not listed here: they are read from each registered ModelAdmin's ``get_urls()``,
so a view added later is covered (and must fit one of the rules below) without editing this
file.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, reverse

from task_admin.models import NodeState, TaskInvocation, TaskRun, Workflow, WorkflowRun
from tests.support.factories import SUMA, invocation, schedule, workflow
from tests.support.runs import finish, start_run

pytestmark = pytest.mark.django_db

# Views that only read. Everything else an admin serves must refuse a view-only user.
READ_ONLY_SUFFIXES = (
    "_changelist", "_change", "_history", "_status", "_export", "_as_code", "_node", "_graph",
    "_jsi18n",  # the app's JavaScript catalogue
    "_invocations",  # the composer's list of invocations to pick from (JSON)
)
# Actions that only read (django-import-export's "Export selected").
READ_ONLY_ACTIONS = {"export_admin_action"}


def _patterns(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield pattern


def task_admin_urls():
    """``(model, model_admin, url name, converter names)`` for every named task_admin URL."""
    out = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "task_admin":
            continue
        for pattern in _patterns(model_admin.get_urls()):
            out.append((model, model_admin, pattern.name, sorted(pattern.pattern.converters)))
    return out


@pytest.fixture
def objects(django_capture_on_commit_callbacks):
    """One real object of every registered task_admin model, for URLs that need a pk."""
    inv = invocation(SUMA, [1, 2], name="smoke-invocation")
    schedule(workflow("smoke", ("chain", [inv, invocation(SUMA, [3])])))
    run = start_run(django_capture_on_commit_callbacks, "smoke-run")
    finish(run, root_0=(NodeState.SUCCESS, 3), root_1=(NodeState.FAILURE, "boom"))
    found = {}
    for model in {m for m, *_ in task_admin_urls()}:
        if not model._meta.managed:
            # The operations pages (workers, queues, tasks by id) have no table: a name that
            # no worker, queue or task has stands in.
            found[model] = model(pk="smoke-nobody@nowhere")
            continue
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"the smoke test needs a {model.__name__}: create one above"
        found[model] = obj
    assert {Workflow, WorkflowRun, TaskRun, TaskInvocation} <= set(found)
    return found


def url_for(name: str, converters: list[str], obj) -> str:
    unknown = set(converters) - {"object_id", "pk", "node_id"}
    assert not unknown, f"{name}: the smoke test does not know how to fill {unknown}"
    kwargs = {key: obj.pk for key in converters}
    if "node_id" in kwargs:  # a run's node (the run page's details)
        kwargs["node_id"] = obj.nodes.order_by("pk").first().pk
    return reverse(f"admin:{name}", kwargs=kwargs)


def is_post_only(response) -> bool:
    return response.status_code == 405 and "GET" not in response.get("Allow", "")


def request_as(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def test_every_admin_url_answers_a_superuser(admin_client, admin_user, objects):
    request = request_as(admin_user)
    urls = task_admin_urls()
    names = {name for _m, _a, name, _c in urls}
    assert {
        "task_admin_workflowrun_changelist", "task_admin_workflowrun_change",
        "task_admin_workflowrun_status", "task_admin_workflowrun_revoke",
        "task_admin_workflowrun_rerun", "task_admin_taskrun_changelist",
        "task_admin_taskrun_change",
    } <= names
    checked = 0
    for model, model_admin, name, converters in urls:
        obj = objects[model]
        response = admin_client.get(url_for(name, converters, obj))
        if name.endswith("_add") and not model_admin.has_add_permission(request):
            expected = 403  # nobody adds this (runs, task runs)
        elif name.endswith("_delete") and not model_admin.has_delete_permission(request, obj):
            expected = 403  # task runs go with their run
        elif is_post_only(response):
            continue
        else:
            expected = 200
        assert response.status_code == expected, (name, response.status_code)
        checked += 1
    assert checked >= len(names) - 3


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="task_admin", codename__startswith="view_"
        )
    )
    return user


def snapshot():
    return (
        list(WorkflowRun.objects.order_by("pk").values_list("pk", "status", "note")),
        list(TaskRun.objects.order_by("pk").values_list("pk", "state")),
        list(Workflow.objects.order_by("pk").values_list("pk", "name", "enabled")),
        list(TaskInvocation.objects.order_by("pk").values_list("pk", "name", "args")),
        LogEntry.objects.count(),
    )


def test_view_only_user_sees_everything_and_changes_nothing(
    client, viewer, objects, django_capture_on_commit_callbacks
):
    client.force_login(viewer)
    before = snapshot()
    refused = 0
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for model, _model_admin, name, converters in task_admin_urls():
            target = url_for(name, converters, objects[model])
            get = client.get(target)
            if name.endswith(READ_ONLY_SUFFIXES):
                assert get.status_code == 200, (name, get.status_code)
                if name.endswith("_change"):  # shown read-only; saving is refused
                    # (the operations pages, which have no table, do not take a POST at all)
                    refusal = 403 if model._meta.managed else 405
                    assert client.post(target, {"name": "x"}).status_code == refusal, name
                    refused += 1
                continue
            # Everything else mutates: refused on GET (confirmation pages too) and on POST.
            assert get.status_code == 403 or is_post_only(get), (name, get.status_code)
            post = client.post(target, {"post": "yes", "confirm": "yes"})
            assert post.status_code == 403, (name, post.status_code)
            refused += 1
    assert refused >= 8  # add, delete and change of each model, revoke, rerun, run...
    assert {
        "task_admin_worker_shutdown", "task_admin_worker_pool", "task_admin_worker_consumers",
        "task_admin_worker_ratelimit", "task_admin_celerytask_revoke",
    } <= {name for *_x, name, _c in task_admin_urls()}
    assert not callbacks  # nothing was sent to the broker
    assert snapshot() == before


def test_staff_without_permissions_gets_nothing(client, django_user_model, objects):
    """Every task_admin URL, the operations pages included, refuses staff with no permission."""
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    before = snapshot()
    for model, _model_admin, name, converters in task_admin_urls():
        target = url_for(name, converters, objects[model])
        get = client.get(target)
        assert get.status_code == 403 or is_post_only(get), (name, get.status_code)
        post = client.post(target, {"post": "yes", "confirm": "yes"})
        assert post.status_code in (403, 405), (name, post.status_code)
    assert snapshot() == before


def _action_choices(html: str) -> set[str]:
    select = re.search(r'<select name="action".*?</select>', html, re.S)
    if not select:
        return set()
    return set(re.findall(r'<option value="([^"]+)"', select.group(0)))


def test_view_only_user_gets_no_actions_or_buttons(client, viewer, objects, admin_client):
    client.force_login(viewer)
    run = objects[WorkflowRun]
    for _model, _a, name, _c in task_admin_urls():
        if name.endswith("_changelist"):
            html = client.get(reverse(f"admin:{name}")).content.decode()
            assert _action_choices(html) <= READ_ONLY_ACTIONS, (name, _action_choices(html))
    # A superuser does see the run actions, so the check above means something.
    su_html = admin_client.get(reverse("admin:task_admin_workflowrun_changelist")).content
    assert {"revoke_runs", "rerun_runs"} <= _action_choices(su_html.decode())

    page = client.get(reverse("admin:task_admin_workflowrun_change", args=[run.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and run.workflow_name in html
    for verb in ("revoke", "rerun"):
        assert reverse(f"admin:task_admin_workflowrun_{verb}", args=[run.pk]) not in html
    assert 'name="_save"' not in html

    # Posting an action by name anyway does nothing.
    before = snapshot()
    for action in ("revoke_runs", "rerun_runs", "delete_selected"):
        client.post(
            reverse("admin:task_admin_workflowrun_changelist"),
            {"action": action, "_selected_action": [run.pk], "post": "yes"},
        )
    assert snapshot() == before
