"""The workflow admin: the node editor, the preview with its problems, actions and run now."""

import importlib.util
import json

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from task_admin import canvas
from task_admin.canvas.build import to_python
from task_admin.compile import workflow_to_spec
from task_admin.models import NodeKind, NodeRole, RunStatus, Workflow, WorkflowNode, WorkflowRun
from tests.factories import SUMA, add_node, invocation, workflow

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:task_admin_workflow_add")
CHANGELIST_URL = reverse("admin:task_admin_workflow_changelist")
NODE_FIELDS = ("kind", "parent", "role", "position", "label", "invocation", "reuse")


def change_url(wf):
    return reverse("admin:task_admin_workflow_change", args=[wf.pk])


def run_url(wf):
    return reverse("admin:task_admin_workflow_run", args=[wf.pk])


def stored_rows(wf):
    """The inline's rows for the stored nodes, as the change form would post them back."""
    return [
        {
            "id": node.pk,
            "workflow": wf.pk,
            "kind": node.kind,
            "parent": node.parent_id or "",
            "role": node.role,
            "position": node.position,
            "label": node.label,
            "invocation": node.invocation_id or "",
            "reuse": node.reuse_id or "",
        }
        for node in WorkflowNode.objects.filter(workflow=wf).order_by("pk")
    ]


def form_data(rows, *, name="tutorial", enabled=True, initial=None, **extra):
    """The change form's POST: the workflow's fields and the node inline's management form."""
    data = {
        "name": name,
        "description": "",
        "nodes-TOTAL_FORMS": str(len(rows)),
        "nodes-INITIAL_FORMS": str(sum(1 for r in rows if r.get("id")) if initial is None
                                   else initial),
        "nodes-MIN_NUM_FORMS": "0",
        "nodes-MAX_NUM_FORMS": "1000",
        # The alert settings inline, left empty.
        "alert_rule-TOTAL_FORMS": "0",
        "alert_rule-INITIAL_FORMS": "0",
        **extra,
    }
    if enabled:
        data["enabled"] = "on"
    for i, row in enumerate(rows):
        for key, value in row.items():
            if key == "DELETE":
                if value:
                    data[f"nodes-{i}-DELETE"] = "on"
                continue
            data[f"nodes-{i}-{key}"] = "" if value is None else str(value)
        for key in NODE_FIELDS:
            data.setdefault(f"nodes-{i}-{key}", "")
    return data


def new_row(kind, parent=None, **values):
    return {"kind": kind, "parent": parent.pk if parent else "", **values}


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def saved(client, response):
    """Assert the form was saved; show its messages (so the next request starts afresh)."""
    assert response.status_code == 302, response.context and response.context["errors"]
    client.get(response.url)


def build_tutorial_chain(client):
    """``suma(2, 2) | suma(4)`` composed through the add and change forms, as staff would."""
    first, second = invocation(SUMA, [2, 2], name="2+2"), invocation(SUMA, [4], name="+4")
    saved(client, client.post(ADD_URL, form_data([new_row(NodeKind.CHAIN)], initial=0)))
    wf = Workflow.objects.get(name="tutorial")
    root = wf.nodes.get()
    rows = [
        *stored_rows(wf),
        new_row(NodeKind.TASK, root, invocation=first.pk),
        new_row(NodeKind.TASK, root, invocation=second.pk),
    ]
    saved(client, client.post(change_url(wf), form_data(rows, _continue="1")))
    return wf, first, second


# -- the editor ---------------------------------------------------------------------------------


def test_tutorial_chain_is_built_through_the_forms(admin_client):
    wf, first, second = build_tutorial_chain(admin_client)
    root = wf.nodes.get(parent=None)
    assert root.kind == NodeKind.CHAIN
    steps = list(root.children.order_by("position"))
    assert [(s.kind, s.invocation_id, s.position, s.role) for s in steps] == [
        (NodeKind.TASK, first.pk, 0, ""),
        (NodeKind.TASK, second.pk, 1, ""),
    ]
    assert len({node.key for node in wf.nodes.all()}) == 3
    spec = workflow_to_spec(wf)
    assert to_python(spec) == "chain(suma.s(2, 2), suma.s(4))"
    page = admin_client.get(change_url(wf)).content.decode()
    assert "chain(suma.s(2, 2), suma.s(4))" in page
    assert "draft" not in page


def test_saving_an_incomplete_tree_keeps_it_as_a_draft(admin_client):
    response = admin_client.post(ADD_URL, form_data([new_row(NodeKind.CHAIN)], initial=0))
    assert response.status_code == 302
    assert Workflow.objects.get(name="tutorial").nodes.count() == 1
    messages = texts(response)
    assert any("saved as a draft with 1 problem" in m for m in messages)
    assert "root “chain”: empty chain" in messages


def test_chord_without_body_shows_the_problem_with_its_node_path(admin_client):
    header = invocation(SUMA, [1, 1], name="one plus one")
    wf = workflow("chord", ("group", [("chord", [header])]))
    chord = wf.nodes.get(kind=NodeKind.CHORD)
    chord.label = "adds"
    chord.save()
    response = admin_client.post(change_url(wf), form_data(stored_rows(wf), name="chord",
                                                            _continue="1"))
    assert response.status_code == 302
    assert "root.0 “adds”: chord without a body" in texts(response)
    page = admin_client.get(change_url(wf)).content.decode()
    assert "chord without a body" in page
    assert "<code>root.0</code> “adds”: chord without a body" in page
    assert f'id="ta-node-{chord.pk}"' in page


def test_two_top_level_nodes_are_refused_at_the_row(admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2])]))
    rows = [*stored_rows(wf), new_row(NodeKind.GROUP)]
    response = admin_client.post(change_url(wf), form_data(rows))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert "A workflow has one top-level node" in formset.forms[2].errors["parent"][0]
    assert wf.nodes.count() == 2


def test_task_node_needs_its_invocation(admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2])]))
    root = wf.nodes.get(parent=None)
    rows = [*stored_rows(wf), new_row(NodeKind.TASK, root)]
    response = admin_client.post(change_url(wf), form_data(rows))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.forms[2].errors["invocation"] == [
        "Choose the task invocation this node runs."
    ]


def test_reorder_swaps_positions_without_colliding(admin_client):
    wf, _first, _second = build_tutorial_chain(admin_client)
    rows = stored_rows(wf)
    for row in rows:
        if row["invocation"]:
            row["position"] = 1 - row["position"]
    response = admin_client.post(change_url(wf), form_data(rows))
    assert response.status_code == 302
    assert to_python(workflow_to_spec(wf)) == "chain(suma.s(4), suma.s(2, 2))"
    # suma(4) cannot start a chain: saved anyway, with the problem named.
    expected = "root.0 “+4”: project.demo.tasks.suma(a, b) cannot take these arguments"
    assert any(m.startswith(expected) for m in texts(response))


def test_positions_left_empty_are_appended_and_duplicates_refused(admin_client):
    wf = workflow("group", ("group", [invocation(SUMA, [1, 1])]))
    root = wf.nodes.get(parent=None)
    inv = invocation(SUMA, [2, 2])
    rows = [*stored_rows(wf), new_row(NodeKind.TASK, root, invocation=inv.pk, position=0)]
    response = admin_client.post(change_url(wf), form_data(rows, name="group"))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert "already" not in str(formset.forms[2].errors)
    assert "has position 0" in formset.forms[2].errors["position"][0]
    rows[-1]["position"] = ""
    response = admin_client.post(change_url(wf), form_data(rows, name="group"))
    assert response.status_code == 302
    assert list(root.children.order_by("position").values_list("position", flat=True)) == [0, 1]


def test_nest_a_task_in_a_new_group_then_reuse_another_workflow(admin_client):
    wf, _first, second = build_tutorial_chain(admin_client)
    root = wf.nodes.get(parent=None)
    # A group at the end of the chain.
    saved(admin_client, admin_client.post(
        change_url(wf), form_data([*stored_rows(wf), new_row(NodeKind.GROUP, root)])
    ))
    group = wf.nodes.get(kind=NodeKind.GROUP)
    # Move the second step into it, and put a reused workflow beside it.
    other = workflow("other", ("group", [invocation(SUMA, [5, 5])]))
    rows = stored_rows(wf)
    for row in rows:
        if row["invocation"] == second.pk:
            row.update(parent=group.pk, position="")
    rows.append(new_row(NodeKind.WORKFLOW, group, reuse=other.pk))
    response = admin_client.post(change_url(wf), form_data(rows))
    assert response.status_code == 302, response.context and response.context["errors"]
    spec = workflow_to_spec(wf)
    assert to_python(spec) == (
        "chain(suma.s(2, 2), group([suma.s(4), group([suma.s(5, 5)])]))"
    )


def test_chord_header_and_body_through_the_editor(admin_client):
    one, total = invocation(SUMA, [1, 1]), invocation("project.demo.tasks.sum_list", [])
    saved(admin_client, admin_client.post(ADD_URL, form_data([new_row(NodeKind.CHORD)],
                                                             initial=0, name="chord")))
    wf = Workflow.objects.get(name="chord")
    chord = wf.nodes.get()
    rows = [
        *stored_rows(wf),
        new_row(NodeKind.TASK, chord, role=NodeRole.HEADER, invocation=one.pk),
        new_row(NodeKind.TASK, chord, role=NodeRole.HEADER, invocation=one.pk),
        new_row(NodeKind.TASK, chord, role=NodeRole.BODY, invocation=total.pk),
    ]
    response = admin_client.post(change_url(wf), form_data(rows, name="chord"))
    assert response.status_code == 302
    assert not [m for m in texts(response) if "draft" in m]
    assert to_python(workflow_to_spec(wf)) == (
        "chord([suma.s(1, 1), suma.s(1, 1)], sum_list.s())"
    )
    # A second body is refused at its row.
    rows = [*stored_rows(wf), new_row(NodeKind.TASK, chord, role=NodeRole.BODY,
                                      invocation=total.pk)]
    response = admin_client.post(change_url(wf), form_data(rows, name="chord"))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert "A chord has one body" in formset.forms[-1].errors["role"][0]


def test_deleting_a_container_deletes_what_is_inside(admin_client):
    wf = workflow("nested", ("chain", [invocation(SUMA, [2, 2]),
                                       ("group", [invocation(SUMA, [1]), invocation(SUMA, [2])])]))
    group = wf.nodes.get(kind=NodeKind.GROUP)
    rows = stored_rows(wf)
    for row in rows:
        if row["id"] == group.pk:
            row["DELETE"] = True
    response = admin_client.post(change_url(wf), form_data(rows, name="nested"))
    assert response.status_code == 302
    assert to_python(workflow_to_spec(wf)) == "chain(suma.s(2, 2))"


def test_the_top_level_node_can_be_swapped_with_a_child(admin_client):
    wf = workflow("swap", ("chain", [("group", [invocation(SUMA, [1, 1])]),
                                     invocation(SUMA, [2, 2])]))
    chain, group = wf.nodes.get(kind=NodeKind.CHAIN), wf.nodes.get(kind=NodeKind.GROUP)
    rows = stored_rows(wf)
    for row in rows:
        if row["id"] == group.pk:
            row.update(parent="", position=0)
        elif row["id"] == chain.pk:
            row.update(parent=group.pk, position="")
    response = admin_client.post(change_url(wf), form_data(rows, name="swap"))
    assert response.status_code == 302, response.context and response.context["errors"]
    assert to_python(workflow_to_spec(wf)) == "group([suma.s(1, 1), chain(suma.s(2, 2))])"


def test_a_deleted_node_frees_its_position(admin_client):
    wf = workflow("g", ("group", [invocation(SUMA, [1, 1]), invocation(SUMA, [2, 2])]))
    root = wf.nodes.get(parent=None)
    rows = stored_rows(wf)
    rows[2]["DELETE"] = True  # suma(2, 2) at position 1
    rows.append(new_row(NodeKind.TASK, root, position=1,
                        invocation=invocation(SUMA, [3, 3]).pk))
    response = admin_client.post(change_url(wf), form_data(rows, name="g"))
    assert response.status_code == 302, response.context and response.context["errors"]
    assert to_python(workflow_to_spec(wf)) == "group([suma.s(1, 1), suma.s(3, 3)])"


def test_a_node_cannot_go_inside_its_own_subtree(admin_client):
    wf = workflow("nested", ("chain", [("group", [("chain", [invocation(SUMA, [1, 1])])])]))
    group = wf.nodes.get(kind=NodeKind.GROUP)
    # By parent, not by ordering: PostgreSQL sorts the root's NULL parent last, SQLite first.
    inner = wf.nodes.get(kind=NodeKind.CHAIN, parent=group)
    rows = stored_rows(wf)
    for row in rows:
        if row["id"] == group.pk:
            row["parent"] = inner.pk
    response = admin_client.post(change_url(wf), form_data(rows, name="nested"))
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    errors = [f.errors.get("parent") for f in formset.forms if f.errors]
    assert "cannot be placed inside itself" in str(errors)


def test_editor_rows_are_in_tree_order_with_parents_named_by_path(admin_client):
    wf = workflow("nested", ("chain", [invocation(SUMA, [2, 2]),
                                       ("group", [invocation(SUMA, [1]), invocation(SUMA, [2])])]))
    response = admin_client.get(change_url(wf))
    formset = response.context["inline_admin_formsets"][0].formset
    paths = [form.instance.tree_path for form in formset.initial_forms]
    assert paths == ["root", "root.0", "root.1", "root.1.0", "root.1.1"]
    choices = [label for _value, label in formset.forms[0].fields["parent"].choices]
    assert choices == ["(top level)", "root (chain)", "root.1 (group)"]
    # A new row goes inside the top-level node unless told otherwise.
    root = wf.nodes.get(parent=None)
    assert formset.extra_forms[0]["parent"].value() == root.pk
    assert formset.empty_form["parent"].value() == root.pk


def test_change_page_shows_graph_beside_the_canvas(admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    page = admin_client.get(change_url(wf)).content.decode()
    assert '<pre class="ta-python">chain(suma.s(2, 2), suma.s(4))</pre>' in page
    assert 'id="ta-node-targets"' in page
    if importlib.util.find_spec("task_admin.graph") is not None:
        assert "<svg" in page.split('class="ta-canvas"', 1)[1]


def test_canvas_text_is_escaped(admin_client):
    inv = invocation(SUMA, [2, "<b>x</b>"], name="html")
    wf = workflow("escaped", ("chain", [inv]))
    page = admin_client.get(change_url(wf)).content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "'<b>x</b>'" not in page


def test_editor_queries_do_not_grow_with_the_tree(admin_client, django_assert_max_num_queries):
    small = workflow("small", ("chain", [invocation(SUMA, [2, 2])]))
    big = workflow("big", ("chain", [invocation(SUMA, [i, i]) for i in range(30)]))

    def edit(wf):
        rows = stored_rows(wf)
        rows[-1]["label"] = "relabelled"
        return admin_client.post(change_url(wf), form_data(rows, name=wf.name))

    with CaptureQueriesContext(connection) as get_small:
        admin_client.get(change_url(small))
    with CaptureQueriesContext(connection) as post_small:
        assert edit(small).status_code == 302
    with django_assert_max_num_queries(len(get_small.captured_queries)):
        admin_client.get(change_url(big))
    with django_assert_max_num_queries(len(post_small.captured_queries)):
        assert edit(big).status_code == 302
    assert big.nodes.filter(label="relabelled").count() == 1


# -- actions ------------------------------------------------------------------------------------


def action(client, name, *workflows):
    return client.post(
        CHANGELIST_URL,
        {"action": name, "_selected_action": [wf.pk for wf in workflows]},
    )


def test_duplicate_copies_the_tree_with_new_keys(admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2]),
                                         ("chord", [invocation(SUMA, [1, 1])],
                                          invocation("project.demo.tasks.sum_list"))]))
    response = action(admin_client, "duplicate_workflows", wf)
    assert response.status_code == 302
    copy = Workflow.objects.get(name="Copy of tutorial")
    assert canvas.to_dict(_without_refs(workflow_to_spec(copy))) == canvas.to_dict(
        _without_refs(workflow_to_spec(wf))
    )
    assert not set(copy.nodes.values_list("key", flat=True)) & set(
        wf.nodes.values_list("key", flat=True)
    )
    assert copy.nodes.count() == wf.nodes.count() == 5
    action(admin_client, "duplicate_workflows", wf)
    assert Workflow.objects.filter(name="Copy of tutorial (2)").exists()
    entry = LogEntry.objects.get(object_id=str(copy.pk), action_flag=ADDITION)
    assert entry.change_message == "Copied from “tutorial”."


def _without_refs(spec):
    data = canvas.to_dict(spec)

    def strip(node):
        node.pop("ref", None)
        for key in ("tasks", "header"):
            for kid in node.get(key, []):
                strip(kid)
        if "body" in node:
            strip(node["body"])

    strip(data["root"])
    return canvas.from_dict(data)


def test_enable_and_disable(admin_client):
    a = workflow("a", ("chain", [invocation(SUMA, [2, 2])]))
    b = workflow("b", ("chain", [invocation(SUMA, [2, 2])]), enabled=False)
    response = action(admin_client, "disable_workflows", a, b)
    assert response.status_code == 302
    assert "1 workflow was disabled." in texts(response)
    assert not Workflow.objects.filter(enabled=True).exists()
    action(admin_client, "enable_workflows", a, b)
    assert Workflow.objects.filter(enabled=True).count() == 2
    assert LogEntry.objects.filter(object_id=str(a.pk), action_flag=CHANGE).count() == 2


def test_run_action_goes_to_the_confirmation_of_one_workflow(admin_client):
    a = workflow("a", ("chain", [invocation(SUMA, [2, 2])]))
    b = workflow("b", ("chain", [invocation(SUMA, [2, 2])]))
    response = action(admin_client, "run_workflow_now", a)
    assert response.status_code == 302 and response.url == run_url(a)
    response = action(admin_client, "run_workflow_now", a, b)
    assert response.status_code == 302 and response.url != run_url(a)
    assert "Select one workflow to run" in " ".join(texts(response))
    assert not WorkflowRun.objects.exists()


# -- the changelist -----------------------------------------------------------------------------


def make_workflows(count, start=0):
    inv = invocation(SUMA, [2, 2])
    for i in range(start, start + count):
        wf = workflow(f"wf-{i:03}", ("chain", [inv, invocation(SUMA, [4])]))
        WorkflowRun.objects.create(workflow=wf, workflow_name=wf.name, spec={},
                                   trigger="manual", status=RunStatus.FAILED)
        WorkflowRun.objects.create(workflow=wf, workflow_name=wf.name, spec={},
                                   trigger="manual", status=RunStatus.SUCCEEDED)


def test_changelist_shows_nodes_and_last_run_in_bounded_queries(
    admin_client, django_assert_max_num_queries
):
    make_workflows(5)
    with CaptureQueriesContext(connection) as five:
        response = admin_client.get(CHANGELIST_URL)
    assert response.status_code == 200
    row = next(iter(response.context["cl"].result_list))
    assert (row.node_count, row.last_run_status) == (3, RunStatus.SUCCEEDED)
    assert 'class="ta-state ta-state-succeeded"' in response.content.decode()
    make_workflows(45, start=5)
    with django_assert_max_num_queries(len(five.captured_queries)):
        response = admin_client.get(CHANGELIST_URL)
    assert response.context["cl"].result_count == 50


def test_changelist_search_and_filter(admin_client):
    workflow("nightly report", ("chain", [invocation(SUMA, [2, 2])]))
    workflow("hourly", ("chain", [invocation(SUMA, [2, 2])]), enabled=False)
    response = admin_client.get(CHANGELIST_URL, {"q": "nightly"})
    assert [wf.name for wf in response.context["cl"].result_list] == ["nightly report"]
    response = admin_client.get(CHANGELIST_URL, {"enabled__exact": "0"})
    assert [wf.name for wf in response.context["cl"].result_list] == ["hourly"]


# -- run now ------------------------------------------------------------------------------------


@pytest.fixture
def tutorial():
    return workflow("tutorial", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))


@pytest.fixture
def kw_chain():
    """suma(2, b=2) | suma(4): the first step's ``b`` can be overridden for one run."""
    return workflow("kw", ("chain", [invocation(SUMA, [2], {"b": 2}), invocation(SUMA, [4])]))


def staff(*codenames):
    user = User.objects.create_user("staff", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_change_form_links_to_run_now(admin_client, tutorial):
    page = admin_client.get(change_url(tutorial)).content.decode()
    assert f'href="{run_url(tutorial)}" class="ta-run-link"' in page


def test_run_confirmation_shows_what_will_be_sent(admin_client, tutorial):
    response = admin_client.get(run_url(tutorial))
    assert response.status_code == 200
    html = response.content.decode()
    assert "chain(suma.s(2, 2), suma.s(4))" in html
    form = response.context["form"]
    assert list(form.fields) == ["root.0", "root.1"]
    assert 'name="root.0"' in html and ">\n{}</textarea>" in html
    assert not WorkflowRun.objects.exists()  # GET never runs anything


def test_run_now_with_an_override(admin_client, kw_chain, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(run_url(kw_chain), {"root.0": '{"b": 10}', "root.1": "{}"})
    run = WorkflowRun.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:task_admin_workflowrun_change", args=[run.pk])
    assert len(callbacks) == 1  # the dispatch, left unsent: this checks the view
    assert run.overrides == {"root.0": {"b": 10}}
    sent = canvas.from_dict(run.spec)
    assert to_python(sent) == "chain(suma.s(2, b=10), suma.s(4))"
    assert run.workflow == kw_chain and run.triggered_by.username == "admin"
    entry = LogEntry.objects.get(action_flag=ADDITION, object_id=str(run.pk))
    assert entry.content_type.model == "workflowrun"
    assert "one-off arguments for 1 task" in entry.change_message


def test_override_that_does_not_fit_the_task_is_shown_at_its_field(admin_client, tutorial):
    response = admin_client.post(run_url(tutorial), {"root.0": "{}", "root.1": '{"b": 10}'})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "multiple values for argument 'b'" in errors["root.1"][0]
    response = admin_client.post(run_url(tutorial), {"root.0": "[1]", "root.1": "{"})
    errors = response.context["form"].errors
    assert errors == {"root.0": ['Enter a JSON object, e.g. {"b": 2}.'],
                      "root.1": ["Enter valid JSON."]}
    assert not WorkflowRun.objects.exists()


def test_disabled_workflow_is_not_run(admin_client, tutorial):
    tutorial.enabled = False
    tutorial.save()
    response = admin_client.get(run_url(tutorial))
    assert "This workflow is disabled" in response.content.decode()
    response = admin_client.post(run_url(tutorial), {"root.0": "{}", "root.1": "{}"})
    assert response.status_code == 200
    assert "is disabled" in " ".join(texts(response))
    assert not WorkflowRun.objects.exists()


def test_invalid_workflow_cannot_be_run(admin_client):
    wf = workflow("broken", ("chord", [invocation(SUMA, [1, 1])]))
    response = admin_client.get(run_url(wf))
    assert response.status_code == 200
    html = response.content.decode()
    assert "chord without a body" in html and 'value="Run now"' not in html
    response = admin_client.post(run_url(wf), {})
    assert response.status_code == 200
    assert not WorkflowRun.objects.exists()


def test_view_only_user_cannot_run(client, tutorial):
    client.force_login(staff("view_workflow"))
    assert client.get(change_url(tutorial)).status_code == 200
    assert client.get(run_url(tutorial)).status_code == 403
    assert client.post(run_url(tutorial), {"root.0": "{}", "root.1": "{}"}).status_code == 403
    page = client.get(CHANGELIST_URL).content.decode()
    assert "run_workflow_now" not in page
    assert "ta-run-link" not in client.get(change_url(tutorial)).content.decode()
    response = action(client, "run_workflow_now", tutorial)
    assert not WorkflowRun.objects.exists()
    assert response.status_code in (200, 302)


def test_run_permission_without_view_is_refused(client, tutorial):
    client.force_login(staff("run_workflow"))
    assert client.get(run_url(tutorial)).status_code == 403


def test_view_and_run_permissions_are_enough(client, kw_chain, django_capture_on_commit_callbacks):
    client.force_login(staff("view_workflow", "run_workflow"))
    assert client.get(run_url(kw_chain)).status_code == 200
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(run_url(kw_chain), {"root.0": "{}", "root.1": "{}"})
    assert response.status_code == 302
    assert WorkflowRun.objects.get().overrides == {}
    assert "run_workflow_now" in client.get(CHANGELIST_URL).content.decode()


def test_run_view_for_a_missing_workflow_redirects(admin_client):
    response = admin_client.get(reverse("admin:task_admin_workflow_run", args=[999]))
    assert response.status_code == 302


def test_json_script_data_is_valid(admin_client, tutorial):
    html = admin_client.get(change_url(tutorial)).content.decode()
    start = html.index('<script id="ta-node-targets" type="application/json">') + len(
        '<script id="ta-node-targets" type="application/json">')
    data = json.loads(html[start:html.index("</script>", start)])
    assert data == {"task": "invocation", "workflow": "reuse"}


def test_add_node_factory_still_matches_editor_paths(admin_client):
    # The preview names nodes exactly as compile does, including a chord's header and body.
    wf = workflow("c", ("chord", [invocation(SUMA, [1, 1])], invocation(
        "project.demo.tasks.sum_list")))
    add_node(wf, invocation(SUMA, [2, 2]), wf.nodes.get(parent=None), NodeRole.HEADER, 5)
    response = admin_client.get(change_url(wf))
    rows = response.context["workflow_preview"].rows
    assert [row.path for row in rows] == ["root", "root.header.0", "root.header.1", "root.body"]


def posted_as_rendered(response) -> dict:
    """What a browser posts back for the change page in ``response`` when nothing is touched."""
    data = {}
    for form in [response.context["adminform"].form, *[
        f for formset in response.context["inline_admin_formsets"]
        for f in [formset.formset.management_form, *formset.formset.forms]
    ]]:
        for bound in form:
            value = bound.value()
            if isinstance(value, bool):
                if value:
                    data[bound.html_name] = "on"
                continue
            data[bound.html_name] = "" if value is None else str(value)
    return data


def test_saving_untouched_page_keeps_the_blank_node_row_unused(admin_client):
    """Regression: the blank row's default parent counted as a change, so Kind was required."""
    wf = workflow("tutorial", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])]))
    data = posted_as_rendered(admin_client.get(change_url(wf)))
    data.pop("enabled")  # untick Enabled, as a person disabling the workflow would
    response = admin_client.post(change_url(wf), data)
    assert response.status_code == 302, response.context["errors"]
    wf.refresh_from_db()
    assert not wf.enabled and wf.nodes.count() == 3
