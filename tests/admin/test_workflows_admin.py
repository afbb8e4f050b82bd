"""The workflow admin: the node editor, the preview with its problems, actions and run now."""

import importlib.util
import json
import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from task_admin import canvas, composer
from task_admin.canvas.build import to_python
from task_admin.compile import workflow_to_spec
from task_admin.models import NodeKind, NodeRole, RunStatus, TaskRun, Workflow, WorkflowRun
from tests.support.factories import SUMA, add_node, invocation, workflow

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:task_admin_workflow_add")
CHANGELIST_URL = reverse("admin:task_admin_workflow_changelist")


def change_url(wf):
    return reverse("admin:task_admin_workflow_change", args=[wf.pk])


def run_url(wf):
    return reverse("admin:task_admin_workflow_run", args=[wf.pk])


def doc(root):
    return {"version": 1, "root": root}


def task(inv, **extra):
    return {"kind": "task", "invocation": inv.pk, **extra}


def node(kind, *kids, **extra):
    return {"kind": kind, "children": list(kids), **extra}


def chord(header, body=None, **extra):
    return {"kind": "chord", "header": list(header), "body": body, **extra}


def stored(wf):
    """The composer's document of the stored tree, as the change page renders it."""
    return composer.stored_document(wf)


def form_data(tree, *, name="tutorial", enabled=True, **extra):
    """The change form's POST: the workflow's fields and the composer's one document."""
    data = {"name": name, "description": "", "tree": json.dumps(tree),
            # The alert settings inline, left empty.
            "alert_rule-TOTAL_FORMS": "0", "alert_rule-INITIAL_FORMS": "0", **extra}
    if enabled:
        data["enabled"] = "on"
    return data


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def saved(client, response):
    """Assert the form was saved; show its messages (so the next request starts afresh)."""
    assert response.status_code == 302, response.context and response.context["errors"]
    client.get(response.url)


def build_tutorial_chain(client):
    """``suma(2, 2) | suma(4)`` composed on the Add page and saved once, as staff would."""
    first, second = invocation(SUMA, [2, 2], name="2+2"), invocation(SUMA, [4], name="+4")
    tree = doc(node(NodeKind.CHAIN, task(first), task(second)))
    saved(client, client.post(ADD_URL, form_data(tree)))
    return Workflow.objects.get(name="tutorial"), first, second


def children_of(tree, path):
    """The node of a document at a path such as ``root.1``."""
    item = tree["root"]
    for part in path.split(".")[1:]:
        item = item["children"][int(part)]
    return item


# -- the composer ------------------------------------------------------------------------------


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
    response = admin_client.post(ADD_URL, form_data(doc(node(NodeKind.CHAIN))))
    assert response.status_code == 302
    assert Workflow.objects.get(name="tutorial").nodes.count() == 1
    messages = texts(response)
    assert any("saved as a draft with 1 problem" in m for m in messages)
    assert "root “chain”: empty chain" in messages


def test_chord_without_body_shows_the_problem_with_its_node_path(admin_client):
    header = invocation(SUMA, [1, 1], name="one plus one")
    wf = workflow("chord", ("group", [("chord", [header])]))
    chord_node = wf.nodes.get(kind=NodeKind.CHORD)
    tree = stored(wf)
    children_of(tree, "root.0")["label"] = "adds"
    response = admin_client.post(change_url(wf), form_data(tree, name="chord", _continue="1"))
    assert response.status_code == 302
    assert "root.0 “adds”: chord without a body" in texts(response)
    page = admin_client.get(change_url(wf)).content.decode()
    assert "chord without a body" in page
    assert "<code>root.0</code> “adds”: chord without a body" in page
    # The composer's document names the node, so the script puts the problem next to it.
    assert chord_node.key in page and wf.nodes.get(kind=NodeKind.CHORD).pk == chord_node.pk


def test_a_malformed_document_is_refused_with_its_path(admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2])]))
    before = stored(wf)
    for tree, path in [
        (doc(node(NodeKind.CHAIN, {"kind": "nonsense"})), "root.0"),
        (doc(node(NodeKind.CHAIN, [1, 2])), "root.0"),
        ("{not json", "root"),
    ]:
        data = form_data(tree, name="renamed")
        if isinstance(tree, str):
            data["tree"] = tree
        response = admin_client.post(change_url(wf), data)
        assert response.status_code == 200
        errors = response.context["adminform"].form.tree_errors
        assert errors and errors[0].path == path
        assert "The tree was not saved" in response.content.decode()
    wf.refresh_from_db()
    assert wf.name == "tutorial" and stored(wf) == before  # nothing saved half-way


def test_task_node_needs_its_invocation(admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2])]))
    tree = stored(wf)
    tree["root"]["children"].append({"kind": "task", "invocation": None})
    response = admin_client.post(change_url(wf), form_data(tree))
    assert response.status_code == 200
    errors = response.context["adminform"].form.tree_errors
    assert [(p.path, p.message) for p in errors] == [
        ("root.1", "Choose the task invocation this node runs.")
    ]
    data = json.loads(html_json(response.content.decode(), "ta-composer-data"))
    assert data["errors"] == [{"path": "root.1", "level": "error",
                               "message": "Choose the task invocation this node runs."}]
    assert wf.nodes.count() == 2


def test_reorder_swaps_positions_without_colliding(admin_client):
    wf, _first, _second = build_tutorial_chain(admin_client)
    pks = set(wf.nodes.values_list("pk", flat=True))
    tree = stored(wf)
    tree["root"]["children"].reverse()
    response = admin_client.post(change_url(wf), form_data(tree))
    assert response.status_code == 302
    assert to_python(workflow_to_spec(wf)) == "chain(suma.s(4), suma.s(2, 2))"
    assert set(wf.nodes.values_list("pk", flat=True)) == pks  # the same nodes, moved
    # suma(4) cannot start a chain: saved anyway, with the problem named.
    expected = "root.0 “+4”: tests.testapp.tasks.suma(a, b) cannot take these arguments"
    assert any(m.startswith(expected) for m in texts(response))


def test_nest_a_task_in_a_new_group_then_reuse_another_workflow(admin_client):
    wf, _first, _second = build_tutorial_chain(admin_client)
    other = workflow("other", ("group", [invocation(SUMA, [5, 5])]))
    tree = stored(wf)
    moved = tree["root"]["children"].pop()
    tree["root"]["children"].append(
        node(NodeKind.GROUP, moved, {"kind": "workflow", "reuse": other.pk})
    )
    response = admin_client.post(change_url(wf), form_data(tree))
    assert response.status_code == 302, response.context and response.context["errors"]
    spec = workflow_to_spec(wf)
    assert to_python(spec) == (
        "chain(suma.s(2, 2), group([suma.s(4), group([suma.s(5, 5)])]))"
    )


def test_chord_header_and_body_through_the_editor(admin_client):
    one, total = invocation(SUMA, [1, 1]), invocation("tests.testapp.tasks.sum_list", [])
    tree = doc(chord([task(one), task(one)], task(total)))
    response = admin_client.post(ADD_URL, form_data(tree, name="chord"))
    assert response.status_code == 302
    assert not [m for m in texts(response) if "draft" in m]
    wf = Workflow.objects.get(name="chord")
    assert to_python(workflow_to_spec(wf)) == (
        "chord([suma.s(1, 1), suma.s(1, 1)], sum_list.s())"
    )
    roles = sorted(wf.nodes.exclude(parent=None).values_list("role", "position"))
    assert roles == [("body", 0), ("header", 0), ("header", 1)]


def test_a_nested_chord_is_built_in_one_save(admin_client):
    """A header holding a chain and a group, a chain as the body: one POST from the Add page."""
    two, four = invocation(SUMA, [2, 2]), invocation(SUMA, [4])
    one = invocation(SUMA, [1, 1])
    total = invocation("tests.testapp.tasks.sum_list", [])
    tree = doc(chord(
        [node(NodeKind.CHAIN, task(two), task(four)), node(NodeKind.GROUP, task(one), task(one))],
        node(NodeKind.CHAIN, task(total)),
    ))
    response = admin_client.post(ADD_URL, form_data(tree, name="nested"))
    assert response.status_code == 302, response.context and response.context["errors"]
    wf = Workflow.objects.get(name="nested")
    compact = re.sub(r"\s+", "", to_python(workflow_to_spec(wf)))
    compact = compact.replace(",)", ")").replace(",]", "]")
    assert compact == (
        "chord([chain(suma.s(2,2),suma.s(4)),group([suma.s(1,1),suma.s(1,1)])],chain(sum_list.s()))"
    )
    assert wf.nodes.count() == 9
    assert stored(wf)["root"]["header"][0]["children"][1]["invocation"] == four.pk


def test_deleting_a_container_deletes_what_is_inside(admin_client):
    wf = workflow("nested", ("chain", [invocation(SUMA, [2, 2]),
                                       ("group", [invocation(SUMA, [1]), invocation(SUMA, [2])])]))
    tree = stored(wf)
    del tree["root"]["children"][1]
    response = admin_client.post(change_url(wf), form_data(tree, name="nested"))
    assert response.status_code == 302
    assert to_python(workflow_to_spec(wf)) == "chain(suma.s(2, 2))"
    assert wf.nodes.count() == 2


def test_the_top_level_node_can_be_swapped_with_a_child(admin_client):
    wf = workflow("swap", ("chain", [("group", [invocation(SUMA, [1, 1])]),
                                     invocation(SUMA, [2, 2])]))
    tree = stored(wf)
    chain_item = tree["root"]
    group_item = chain_item["children"].pop(0)
    group_item["children"].append(chain_item)
    response = admin_client.post(change_url(wf), form_data(doc(group_item), name="swap"))
    assert response.status_code == 302, response.context and response.context["errors"]
    assert to_python(workflow_to_spec(wf)) == "group([suma.s(1, 1), chain(suma.s(2, 2))])"


def test_a_deleted_node_frees_its_position(admin_client):
    wf = workflow("g", ("group", [invocation(SUMA, [1, 1]), invocation(SUMA, [2, 2])]))
    tree = stored(wf)
    tree["root"]["children"][1] = task(invocation(SUMA, [3, 3]))
    response = admin_client.post(change_url(wf), form_data(tree, name="g"))
    assert response.status_code == 302, response.context and response.context["errors"]
    assert to_python(workflow_to_spec(wf)) == "group([suma.s(1, 1), suma.s(3, 3)])"


def test_kept_nodes_keep_their_ids_and_runs_their_links(admin_client):
    wf = workflow("g", ("group", [invocation(SUMA, [1, 1]), invocation(SUMA, [2, 2])]))
    kept, dropped = wf.nodes.exclude(parent=None).order_by("position")
    run = WorkflowRun.objects.create(workflow=wf, workflow_name="g", spec={}, trigger="manual")
    for i, target in enumerate((kept, dropped)):
        TaskRun.objects.create(run=run, task_id=f"t{i}", path=f"root.{i}", position=i,
                               task_name=SUMA, node=target)
    tree = stored(wf)
    del tree["root"]["children"][1]
    tree["root"]["children"].insert(0, task(invocation(SUMA, [3, 3])))
    response = admin_client.post(change_url(wf), form_data(tree, name="g"))
    assert response.status_code == 302
    assert wf.nodes.filter(pk=kept.pk, position=1).exists()
    assert not wf.nodes.filter(pk=dropped.pk).exists()
    assert list(run.nodes.order_by("position").values_list("node", flat=True)) == [kept.pk, None]


def test_a_reuse_cycle_is_a_problem_not_a_crash(admin_client):
    inner = workflow("inner", ("group", [invocation(SUMA, [1, 1])]))
    outer = workflow("outer", ("group", [("workflow", inner)]))
    tree = stored(inner)
    tree["root"]["children"].append({"kind": "workflow", "reuse": outer.pk})
    response = admin_client.post(change_url(inner), form_data(tree, name="inner"))
    assert response.status_code == 302
    assert any("reuse cycle: inner → outer → inner" in m for m in texts(response))


def test_preview_rows_are_in_tree_order_and_named_by_path(admin_client):
    wf = workflow("nested", ("chain", [invocation(SUMA, [2, 2]),
                                       ("group", [invocation(SUMA, [1]), invocation(SUMA, [2])])]))
    response = admin_client.get(change_url(wf))
    rows = response.context["workflow_preview"].rows
    assert [row.path for row in rows] == ["root", "root.0", "root.1", "root.1.0", "root.1.1"]
    tree = json.loads(response.context["adminform"].form["tree"].value())
    assert [kid["kind"] for kid in tree["root"]["children"]] == ["task", "group"]


def test_change_page_shows_graph_beside_the_canvas(admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2]), invocation(SUMA, [4])]))
    page = admin_client.get(change_url(wf)).content.decode()
    assert '<pre class="ta-python">chain(suma.s(2, 2), suma.s(4))</pre>' in page
    assert 'id="ta-composer-data"' in page
    # Regression: a workflow never run was headed "Celery canvas sent".
    assert "Celery canvas sent" not in page and "<h3>Celery canvas</h3>" in page
    assert "<h3>Celery canvas to send</h3>" in admin_client.get(run_url(wf)).content.decode()
    if importlib.util.find_spec("task_admin.graph") is not None:
        assert "<svg" in page.split('class="ta-canvas"', 1)[1]


def test_canvas_text_is_escaped(admin_client):
    inv = invocation(SUMA, [2, "<b>x</b>"], name="html")
    wf = workflow("escaped", ("chain", [inv]))
    page = admin_client.get(change_url(wf)).content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "'<b>x</b>'" not in page


def test_one_datalist_of_invocations_not_a_select_per_node(admin_client):
    invs = [invocation(SUMA, [i, i]) for i in range(20)]
    wf = workflow("wide", ("group", invs))
    page = admin_client.get(change_url(wf)).content.decode()
    assert page.count('<datalist id="ta-invocations">') == 1
    assert page.count(f'<option value="{invs[0].name}">') == 1
    assert "<select" not in page.split('id="ta-composer"', 1)[1].split("</fieldset>", 1)[0]


def test_the_invocation_list_escapes_names_and_calls(admin_client):
    hostile = invocation(SUMA, [1, '"><script>x</script>'], name='a"><img src=x onerror=alert(1)>')
    wf = workflow("hostile", ("chain", [hostile]))
    page = admin_client.get(change_url(wf)).content.decode()
    options = page.split('<datalist id="ta-invocations">', 1)[1].split("</datalist>", 1)[0]
    assert "<img" not in options and "<script>" not in options
    assert 'value="a&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"' in options
    assert "&lt;script&gt;" in options


INVOCATIONS_URL = "/admin/task_admin/workflow/composer/invocations/"


def test_the_page_carries_only_the_invocations_its_tree_names(admin_client):
    """The site's invocations grow with every distinct call typed in the composer: the page
    does not list them (its size and time would grow with them), the composer fetches them."""
    used = [invocation(SUMA, [i, i]) for i in range(2)]
    others = [invocation(SUMA, [i, 0], name=f"elsewhere {i}") for i in range(30)]
    wf = workflow("two", ("group", used))
    page = admin_client.get(change_url(wf)).content.decode()
    data = json.loads(html_json(page, "ta-composer-data"))
    assert sorted(data["invocations"]) == sorted(str(i.pk) for i in used)
    assert data["invocationsUrl"] == reverse("admin:task_admin_workflow_invocations")
    assert data["invocationsUrl"] == INVOCATIONS_URL
    assert others[0].name not in page
    # A refused save's posted tree names its own: those are the ones carried.
    tree = stored(wf)
    tree["root"]["children"][1]["invocation"] = others[5].pk
    tree["root"]["children"].append({"kind": "task", "invocation": others[7].pk, "key": "new"})
    response = admin_client.post(change_url(wf), {"name": "", "tree": json.dumps(tree)})
    data = json.loads(html_json(response.content.decode(), "ta-composer-data"))
    assert sorted(data["invocations"]) == sorted(str(i.pk) for i in (used[0], others[5],
                                                                        others[7]))


def test_the_invocation_list_is_json_for_those_who_may_see_workflows(client, admin_client):
    made = [invocation(SUMA, [i, i], name=f"inv {i}") for i in range(3)]
    response = admin_client.get(INVOCATIONS_URL)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    listed = response.json()["invocations"]
    assert [i["name"] for i in listed] == [i.name for i in made]
    assert listed[0]["call"] == "suma.s(0, 0)" and listed[0]["args"] == [0, 0]
    assert admin_client.post(INVOCATIONS_URL).status_code == 405
    user = staff("view_taskinvocation")
    client.force_login(user)
    assert client.get(INVOCATIONS_URL).status_code == 403
    for codename in ("view_workflow", "add_workflow"):  # the add page's composer too
        user.user_permissions.set(Permission.objects.filter(codename=codename))
        assert client.get(INVOCATIONS_URL).status_code == 200
    client.logout()
    assert client.get(INVOCATIONS_URL).status_code == 302  # to the login page


def test_an_unchanged_invocation_list_is_not_sent_again(admin_client):
    first = invocation(SUMA, [1, 1], name="first")
    response = admin_client.get(INVOCATIONS_URL)
    etag = response["ETag"]
    assert "no-cache" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert "no-store" not in response["Cache-Control"]  # else the browser keeps no copy
    with CaptureQueriesContext(connection) as queries:
        again = admin_client.get(INVOCATIONS_URL, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert not any("task_admin_taskinvocation" in q["sql"] and "ORDER BY" in q["sql"]
                   for q in queries.captured_queries)  # the list itself is not read
    # Added, changed or deleted: a new list.
    for change in (lambda: invocation(SUMA, [2, 2], name="second"),
                   lambda: first.save(),
                   lambda: first.delete()):
        change()
        response = admin_client.get(INVOCATIONS_URL, HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 200 and response["ETag"] != etag
        etag = response["ETag"]


def test_the_composer_offers_each_invocation_with_its_current_call(admin_client):
    """The calls are kept per process by (id, last change): an invocation changed since the
    last page shows its new call, one with options shows them, and its arguments come as
    JSON values."""
    from task_admin.presenters.preview import invocation_choices

    inv = invocation(SUMA, [1, 2], name="kept")
    delayed = invocation(SUMA, [3], kwargs={"b": [1, {"c": None}]}, name="delayed",
                         countdown=30)
    first = {choice["name"]: choice for choice in invocation_choices()}
    assert first["kept"]["call"] == to_python(inv.to_spec(label="kept"))
    assert first["delayed"]["call"] == to_python(delayed.to_spec(label="delayed"))
    assert "countdown=30" in first["delayed"]["call"]
    assert (first["delayed"]["args"], first["delayed"]["kwargs"]) == ([3], {"b": [1, {"c": None}]})
    assert (first["kept"]["plain"], first["delayed"]["plain"]) == (True, False)
    inv.args = [5, 6]
    inv.save()
    again = {choice["name"]: choice for choice in invocation_choices()}
    assert again["kept"]["call"] == to_python(inv.to_spec(label="kept"))
    assert again["kept"]["args"] == [5, 6]


def test_a_full_call_cache_drops_old_versions_and_no_call_goes_blank(admin_client, monkeypatch):
    from task_admin.presenters import preview

    invs = [invocation(SUMA, [i, i], name=f"cached {i}") for i in range(3)]
    monkeypatch.setattr(preview, "_CALLS", {})
    preview.invocation_choices()  # the three calls are kept
    # Then calls of versions long gone, up to the brim: the next new call goes past it.
    preview._CALLS.update({(-i, None): "gone" for i in range(1, preview._CALLS_KEPT - 2)})
    invs[0].args = [7, 7]
    invs[0].save()
    choices = {c["name"]: c["call"] for c in preview.invocation_choices()}
    assert all(choices.values()), choices
    assert choices["cached 0"] == to_python(invs[0].to_spec(label="cached 0"))
    assert choices["cached 1"] == to_python(invs[1].to_spec(label="cached 1"))
    assert "gone" not in preview._CALLS.values() and len(preview._CALLS) == 3


def test_the_invocation_list_costs_the_same_queries_for_many_invocations(
    admin_client, django_assert_max_num_queries,
):
    from task_admin.presenters.preview import invocation_choices

    for i in range(3):
        invocation(SUMA, [i, i])
    invocation_choices()
    with CaptureQueriesContext(connection) as few:
        invocation_choices()
    for i in range(40):
        invocation(SUMA, [i, i + 1])
    invocation_choices()  # the new ones' calls are written once, in one query
    with CaptureQueriesContext(connection) as many:
        assert len(invocation_choices()) >= 43
    assert len(many) == len(few) == 2, [q["sql"][:80] for q in many.captured_queries]


def test_editor_queries_do_not_grow_with_the_tree(admin_client, django_assert_max_num_queries):
    small = workflow("small", ("chain", [invocation(SUMA, [2, 2])]))
    big = workflow("big", ("chain", [invocation(SUMA, [i, i]) for i in range(30)]))

    def edit(wf):
        tree = stored(wf)
        tree["root"]["children"][-1]["label"] = "relabelled"
        return admin_client.post(change_url(wf), form_data(tree, name=wf.name))

    with CaptureQueriesContext(connection) as get_small:
        admin_client.get(change_url(small))
    with CaptureQueriesContext(connection) as post_small:
        assert edit(small).status_code == 302
    with django_assert_max_num_queries(len(get_small.captured_queries)):
        admin_client.get(change_url(big))
    with django_assert_max_num_queries(len(post_small.captured_queries)):
        assert edit(big).status_code == 302
    assert big.nodes.filter(label="relabelled").count() == 1


def test_a_tree_larger_than_the_old_field_limit_saves(admin_client, settings):
    """Check W002's reason is gone: 400 nodes in one POST field, Django's default field limit."""
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
    inv = invocation(SUMA, [1, 1])
    tree = doc(node(NodeKind.GROUP, *[task(inv) for _ in range(399)]))
    response = admin_client.post(ADD_URL, form_data(tree, name="big"))
    assert response.status_code == 302
    assert Workflow.objects.get(name="big").nodes.count() == 400


# -- the live preview ---------------------------------------------------------------------------

PREVIEW_URL = reverse("admin:task_admin_workflow_preview")


def test_preview_checks_the_posted_tree_without_saving(admin_client):
    one, total = invocation(SUMA, [1, 1]), invocation("tests.testapp.tasks.sum_list", [])
    tree = doc(chord([task(one)], None))
    response = admin_client.post(PREVIEW_URL, {"tree": json.dumps(tree), "name": "x"})
    assert response.status_code == 200
    data = response.json()
    assert data["problems"] == [{"path": "root", "message": "chord without a body",
                                 "level": "error"}]
    assert data["graph"] == "" and not data["blocking"]
    tree = doc(chord([task(one)], task(total)))
    data = admin_client.post(PREVIEW_URL, {"tree": json.dumps(tree), "name": "x"}).json()
    assert data["problems"] == []
    assert data["python"] == "chord([suma.s(1, 1)], sum_list.s())"
    assert "<svg" in data["graph"]
    tree = doc(node(NodeKind.GROUP, {"kind": "task"}))
    data = admin_client.post(PREVIEW_URL, {"tree": json.dumps(tree)}).json()
    assert data["blocking"] and data["problems"][0]["path"] == "root.0"
    assert not Workflow.objects.exists()


def test_preview_needs_post_and_permission(client, admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2])]))
    body = {"tree": json.dumps(stored(wf)), "workflow": wf.pk}
    assert admin_client.get(PREVIEW_URL).status_code == 405
    client.force_login(staff("view_workflow"))
    assert client.post(PREVIEW_URL, body).status_code == 403
    assert client.post(PREVIEW_URL, {"tree": "{}"}).status_code == 403
    client.force_login(User.objects.create_user("editor", password="x", is_staff=True))
    editor = User.objects.get(username="editor")
    editor.user_permissions.set(Permission.objects.filter(codename="change_workflow"))
    assert client.post(PREVIEW_URL, body).status_code == 200
    assert admin_client.post(PREVIEW_URL, {**body, "workflow": 999}).status_code == 404


# -- actions ------------------------------------------------------------------------------------


def action(client, name, *workflows):
    return client.post(
        CHANGELIST_URL,
        {"action": name, "_selected_action": [wf.pk for wf in workflows]},
    )


def test_duplicate_copies_the_tree_with_new_keys(admin_client):
    wf = workflow("tutorial", ("chain", [invocation(SUMA, [2, 2]),
                                         ("chord", [invocation(SUMA, [1, 1])],
                                          invocation("tests.testapp.tasks.sum_list"))]))
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


def html_json(html, element_id):
    start = html.index(f'<script id="{element_id}" type="application/json">') + len(
        f'<script id="{element_id}" type="application/json">')
    return html[start:html.index("</script>", start)]


def test_json_script_data_is_valid(admin_client, tutorial):
    data = json.loads(html_json(admin_client.get(change_url(tutorial)).content.decode(),
                                "ta-composer-data"))
    assert data["workflow"] == tutorial.pk and data["editable"] is True
    assert data["previewUrl"] == reverse("admin:task_admin_workflow_preview")
    assert sorted(i["call"] for i in data["invocations"].values()) == [
        "suma.s(2, 2)", "suma.s(4)"
    ]


def test_add_node_factory_still_matches_editor_paths(admin_client):
    # The preview names nodes exactly as compile does, including a chord's header and body.
    wf = workflow("c", ("chord", [invocation(SUMA, [1, 1])], invocation(
        "tests.testapp.tasks.sum_list")))
    add_node(wf, invocation(SUMA, [2, 2]), wf.nodes.get(parent=None), NodeRole.HEADER, 5)
    response = admin_client.get(change_url(wf))
    rows = response.context["workflow_preview"].rows
    assert [row.path for row in rows] == ["root", "root.header.0", "root.header.1", "root.body"]


def posted_as_rendered(response) -> dict:
    """What a browser posts back for the change page in ``response`` when nothing is touched."""
    data = {}
    for bound in response.context["adminform"].form:
        value = bound.value()
        if isinstance(value, bool):
            if value:
                data[bound.html_name] = "on"
            continue
        data[bound.html_name] = "" if value is None else str(value)
    for inline in response.context["inline_admin_formsets"]:  # their management forms
        for bound in inline.formset.management_form:
            data[bound.html_name] = "" if bound.value() is None else str(bound.value())
    return data


def test_saving_untouched_page_keeps_the_tree(admin_client):
    """Regression (of the old editor's blank row): saving the page as rendered changes nothing
    but what was edited."""
    wf = workflow("tutorial", ("group", [invocation(SUMA, [2, 2]), invocation(SUMA, [4, 4])]))
    before = stored(wf)
    data = posted_as_rendered(admin_client.get(change_url(wf)))
    data.pop("enabled")  # untick Enabled, as a person disabling the workflow would
    response = admin_client.post(change_url(wf), data)
    assert response.status_code == 302, response.context["errors"]
    wf.refresh_from_db()
    assert not wf.enabled and wf.nodes.count() == 3 and stored(wf) == before


def test_the_tutorial_chord_warns_in_the_preview_and_at_save(admin_client):
    """suma.s(10) as a chord body receives the header's list first: a warning, not a draft."""
    tree = doc(chord([task(invocation(SUMA, [2, 2])), task(invocation(SUMA, [4, 4]))],
                     task(invocation(SUMA, [10]))))
    data = admin_client.post(PREVIEW_URL, {"tree": json.dumps(tree)}).json()
    assert [(p["path"], p["level"]) for p in data["problems"]] == [("root.body", "warning")]
    assert "receives the list of header results first" in data["problems"][0]["message"]
    assert data["python"]  # it can still run
    response = admin_client.post(ADD_URL, form_data(tree, name="tutorial chord"))
    assert response.status_code == 302
    assert [m for m in texts(response) if m.startswith("Warning: root.body")]
    assert not [m for m in texts(response) if "draft" in m]
    wf = Workflow.objects.get(name="tutorial chord")
    page = admin_client.get(change_url(wf)).content.decode()
    assert 'id="workflow-warnings"' in page and "draft" not in page


def test_run_now_fields_know_each_task_s_parameters(admin_client, kw_chain):
    html = admin_client.get(run_url(kw_chain)).content.decode()
    assert html.count("data-ta-override") == 2
    # suma(2, b=2): "a" is given positionally; suma(4) as the second step: a is the previous
    # result and b the 4, so neither can be overridden by keyword.
    assert 'data-ta-given="[&quot;a&quot;]"' in html
    assert 'data-ta-given="[&quot;a&quot;, &quot;b&quot;]"' in html
    assert 'data-ta-stored="{&quot;b&quot;: 2}"' in html
    script = '<script id="ta-task-parameters" type="application/json">'
    assert f'{script}{{"tests.testapp.tasks.suma"' in html
    assert "task_admin/arguments.js" in html


@pytest.mark.parametrize("broken", ["no body", "bad arguments"])
def test_run_now_refuses_a_draft_with_its_problems(admin_client, broken):
    # The POST compiles once and leaves the check to services.prepare_run; refused, the page
    # says so and lists every problem again, and nothing starts.
    if broken == "no body":
        wf = workflow("draft", ("chord", [invocation(SUMA, [1, 1])]))  # a chord without body
    else:
        wf = workflow("draft", ("group", [invocation(SUMA, [1, 1], clean=False, name="x",
                                                     kwargs={"zzz": 1})]))
    response = admin_client.post(run_url(wf), {"root.0": "{}"})
    assert response.status_code == 200
    assert any("cannot run until its problems are fixed" in m for m in texts(response))
    assert response.context["workflow_preview"].problems
    assert not WorkflowRun.objects.exists()
