"""The composer's task nodes with their call inline: a task and its arguments typed on the
composer's page, stored as an invocation (an identical saved one reused) in the same save."""

import json

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.urls import reverse

from task_admin import composer
from task_admin.canvas.build import to_python
from task_admin.compile import workflow_to_spec
from task_admin.models import TaskInvocation, Workflow
from tests.support.factories import SUMA, invocation

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:task_admin_workflow_add")
PREVIEW_URL = reverse("admin:task_admin_workflow_preview")
REPORT = "tests.testapp.tasks.sales_report"
SUM_LIST = "tests.testapp.tasks.sum_list"


def doc(root):
    return {"version": 1, "root": root}


def call(task=SUMA, *args, **kwargs):
    return {"kind": "task", "task": task, "args": list(args), "kwargs": kwargs}


def chain(*kids):
    return {"kind": "chain", "children": list(kids)}


def group(*kids):
    return {"kind": "group", "children": list(kids)}


def chord(header, body):
    return {"kind": "chord", "header": list(header), "body": body}


def post(client, tree, name="inline"):
    data = {"name": name, "description": "", "enabled": "on", "tree": json.dumps(tree),
            "alert_rule-TOTAL_FORMS": "0", "alert_rule-INITIAL_FORMS": "0"}
    return client.post(ADD_URL, data)


def tree_errors(response):
    assert response.status_code == 200
    return [(p.path, p.message) for p in response.context["adminform"].form.tree_errors]


def test_the_tutorial_s_three_workflows_from_an_empty_database_in_one_save_each(admin_client):
    assert not TaskInvocation.objects.exists()
    for name, tree, text in [
        ("group", group(call(SUMA, 2, 2), call(SUMA, 4, 4)),
         "group([suma.s(2, 2), suma.s(4, 4)])"),
        ("chain", chain(call(SUMA, 2, 2), call(SUMA, 4)), "chain(suma.s(2, 2), suma.s(4))"),
        ("chord", chord([call(SUMA, 2, 2), call(SUMA, 4, 4)], call(SUMA, 10)), None),
    ]:
        response = post(admin_client, doc(tree), name)
        assert response.status_code == 302, response.context["adminform"].form.tree_errors
        spec = workflow_to_spec(Workflow.objects.get(name=name))
        if text:
            assert to_python(spec) == text
    # One invocation per distinct call: 2+2 is shared by the three, 4+4 by two.
    assert sorted(TaskInvocation.objects.values_list("name", flat=True)) == [
        "suma.s(10)", "suma.s(2, 2)", "suma.s(4)", "suma.s(4, 4)",
    ]
    chord_messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("receives the list of header results first" in m for m in chord_messages)


def test_an_identical_saved_invocation_is_reused_and_one_with_options_is_not(admin_client):
    plain = invocation(SUMA, [2, 2], name="two and two")
    delayed = invocation(SUMA, [4, 4], name="suma.s(4, 4)", countdown=5)
    response = post(admin_client, doc(group(call(SUMA, 2, 2), call(SUMA, 4, 4),
                                            call(SUMA, 4, 4))))
    assert response.status_code == 302
    wf = Workflow.objects.get(name="inline")
    used = list(wf.nodes.filter(kind="task").order_by("position")
                .values_list("invocation_id", flat=True))
    made = TaskInvocation.objects.get(name="suma.s(4, 4) (2)")  # the name was taken
    assert used == [plain.pk, made.pk, made.pk]
    assert made.countdown is None and delayed.countdown == 5
    assert TaskInvocation.objects.count() == 3
    entry = LogEntry.objects.get(object_id=str(made.pk))
    assert entry.action_flag == ADDITION and "inline" in entry.get_change_message()


def test_a_stored_inline_node_reads_back_as_its_invocation(admin_client):
    post(admin_client, doc(chain(call(SUMA, 2, 2), call(SUMA, 4))))
    wf = Workflow.objects.get(name="inline")
    made = TaskInvocation.objects.get(name="suma.s(4)")
    stored = composer.stored_document(wf)
    assert stored["root"]["children"][1]["invocation"] == made.pk
    # The page offers each invocation's call, so the composer can open it as fields again.
    page = admin_client.get(reverse("admin:task_admin_workflow_change", args=[wf.pk]))
    data = page.context["composer"]["data"]["invocations"][str(made.pk)]
    assert data["task"] == SUMA and data["args"] == [4] and data["kwargs"] == {}
    assert data["plain"] is True
    assert SUMA in page.context["composer"]["data"]["tasks"]


def test_arguments_are_checked_against_the_signature_next_to_the_node(admin_client):
    tree = doc(chain(
        call(SUMA, 1, 2, 3),                                   # too many
        call(SUMA, 4, c=5),                                    # unknown keyword, named
        call(REPORT, "2026-11-02", top="ten"),                 # wrong type
        call(REPORT, "2026-11-02", region="MOON"),             # not a choice
        call("os.system", "ls"),                               # not an allowed task
    ))
    errors = tree_errors(post(admin_client, tree))
    by_path = {}
    for path, message in errors:
        by_path.setdefault(path, []).append(message)
    assert "too many positional arguments" in by_path["root.0"][0]
    assert "has no parameter 'c'" in by_path["root.1"][0]
    assert by_path["root.2"] == ["“top” takes an integer, not \"ten\""]
    assert by_path["root.3"] == ["“region” takes one of \"EU\", \"US\", \"APAC\", not \"MOON\""]
    assert "os.system" in by_path["root.4"][0]
    assert not Workflow.objects.exists() and not TaskInvocation.objects.exists()


def test_a_malformed_inline_call_is_refused(admin_client):
    saved = invocation(SUMA, [1, 1], name="1+1")
    for item, message in [
        ({"kind": "task", "task": "", "args": []}, "Choose the task this node runs."),
        ({"kind": "task", "task": SUMA, "args": {"a": 1}}, "Enter a JSON list"),
        ({"kind": "task", "task": SUMA, "kwargs": [1]}, "Enter a JSON object"),
        ({"kind": "task", "task": SUMA, "args": [1, 1], "immutable": "yes"}, "“immutable”"),
        ({"kind": "task", "task": SUMA, "args": [1, 1], "invocation": saved.pk}, "not both"),
    ]:
        errors = tree_errors(post(admin_client, doc(group(item))))
        assert errors[0][0] == "root.0" and message in errors[0][1], errors
    assert TaskInvocation.objects.count() == 1


def test_the_preview_names_the_call_and_its_problems_live(admin_client):
    data = admin_client.post(PREVIEW_URL, {"tree": json.dumps(doc(
        chord([call(SUMA, 2, 2), call(SUMA, 4, 4)], call(SUMA, 10))))}).json()
    assert [(p["path"], p["level"]) for p in data["problems"]] == [("root.body", "warning")]
    assert "suma.s(10)" in data["python"]
    # Cannot be an invocation at all: nothing can be stored, said at the node.
    data = admin_client.post(PREVIEW_URL, {"tree": json.dumps(doc(
        group(call(SUMA, 1, 2, 3))))}).json()
    assert data["blocking"] and data["problems"][0]["path"] == "root.0"
    # Fits a chain step but not this place: a draft problem, as with a saved invocation.
    data = admin_client.post(PREVIEW_URL, {"tree": json.dumps(doc(
        group(call(SUMA, 2))))}).json()
    assert not data["blocking"]
    assert [(p["path"], p["level"]) for p in data["problems"]] == [("root.0", "error")]
    assert not TaskInvocation.objects.exists()  # a preview creates nothing


def test_creating_an_invocation_needs_the_add_permission(client):
    user = User.objects.create_user("editor", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        codename__in=["add_workflow", "change_workflow", "view_workflow",
                      "view_taskinvocation"]))
    client.force_login(user)
    invocation(SUMA, [2, 2], name="2+2")
    errors = tree_errors(post(client, doc(group(call(SUMA, 2, 2), call(SUMA, 3, 3)))))
    assert errors == [("root.1", "You may not add task invocations: choose a saved "
                                 "invocation for this node.")]
    assert post(client, doc(group(call(SUMA, 2, 2)))).status_code == 302  # reuse is fine
    assert TaskInvocation.objects.count() == 1


def test_a_thousand_inline_nodes_save_in_bounded_queries(admin_client,
                                                         django_assert_max_num_queries):
    tree = doc(group(*[call(SUMA, i, i) for i in range(999)]))
    # No query per node: SQLite's inserts go in batches of ~45 rows (its variable limit), the
    # admin log too; a query per node would be over 1000.
    with django_assert_max_num_queries(60):
        response = post(admin_client, tree)
    assert response.status_code == 302
    assert TaskInvocation.objects.count() == 999
