"""The task invocation admin: a picker of allowed tasks, JSON arguments checked at the field."""

import pytest
from django.urls import reverse

from task_admin.models import TaskInvocation
from tests.support.factories import SUMA, invocation, workflow

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:task_admin_taskinvocation_add")


def change_url(inv):
    return reverse("admin:task_admin_taskinvocation_change", args=[inv.pk])


def form_data(**values):
    """Everything the add/change form posts, with the given values."""
    data = {
        "name": "add 2 and 2",
        "description": "",
        "task": SUMA,
        "args": "[2, 2]",
        "kwargs": "{}",
        "countdown": "",
        "eta_0": "",
        "eta_1": "",
        "expires": "",
        "queue": "",
        "priority": "",
        "retry": "on",
        "retry_max_retries": "",
        "retry_interval_start": "",
        "retry_interval_step": "",
        "retry_interval_max": "",
        "soft_time_limit": "",
        "time_limit": "",
    }
    data.update(values)
    return data


def form_of(response):
    return response.context["adminform"].form


def test_picker_lists_allowed_tasks_with_signature_and_doc(admin_client):
    response = admin_client.get(ADD_URL)
    assert response.status_code == 200
    choices = dict(form_of(response).fields["task"].choices)
    assert choices[SUMA] == (
        "tests.testapp.tasks.suma(a, b) — Add two numbers (the tutorial's first task)."
    )
    # A long signature is shown by its parameter names (the option's title has it whole), so
    # the picker stays readable.
    report = SUMA.replace("suma", "sales_report")
    assert choices[report].startswith(
        f"{report}(day, region, top, min_amount, include_refunds, recipients) — "
    )
    assert "datetime.date" not in choices[report]
    assert not [name for name in choices if name.startswith(("celery.", "task_admin."))]
    html = response.content.decode()
    assert f'<option value="{SUMA}" title="suma(a, b) — Add two numbers' in html
    assert "sales_report(day: datetime.date, region: Literal[" in html  # a title
    assert 'value="celery.' not in html
    assert ">\n[]</textarea>" in html and ">\n{}</textarea>" in html


def test_fieldsets_group_the_options(admin_client):
    response = admin_client.get(ADD_URL)
    names = [name for name, _options in response.context["adminform"].fieldsets]
    assert [str(name) for name in names] == [
        "Task", "Scheduling", "Routing", "Publishing retry policy", "Time limits",
    ]


def test_invalid_json_is_an_error_at_the_args_field(admin_client):
    response = admin_client.post(ADD_URL, form_data(args="[2, 2"))
    assert response.status_code == 200
    form = form_of(response)
    assert form.errors["args"] == ["Enter valid JSON."]
    # Only the field error: no second error about arguments the user did not give.
    assert not form.non_field_errors()
    assert "[2, 2" in response.content.decode()  # what was typed is shown again
    assert not TaskInvocation.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("args", '{"a": 1}', "Enter a JSON list, e.g. [2, 2]."),
        ("kwargs", "[1]", 'Enter a JSON object, e.g. {"b": 2}.'),
        ("args", "[NaN, 1]", "Enter valid JSON."),
    ],
)
def test_wrong_json_shapes_are_field_errors(admin_client, field, value, message):
    response = admin_client.post(ADD_URL, form_data(**{field: value}))
    assert response.status_code == 200
    assert form_of(response).errors[field] == [message]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[" * 2000 + "]" * 2000, "Enter valid JSON."),  # json.loads: RecursionError
        ("[" + "9" * 5000 + "]", "Enter valid JSON."),  # int(): more than 4300 digits
        ("[" * 100 + "]" * 100, "nested deeper than 32 levels"),  # parses; too deep to show
    ],
)
def test_pathological_json_is_a_field_error_not_a_server_error(admin_client, value, message):
    response = admin_client.post(ADD_URL, form_data(args=value))
    assert response.status_code == 200
    assert message in " ".join(form_of(response).errors["args"])
    assert not TaskInvocation.objects.exists()


def test_wrong_arity_is_shown_as_a_form_error(admin_client):
    response = admin_client.post(ADD_URL, form_data(args="[1, 2, 3]"))
    assert response.status_code == 200
    errors = form_of(response).non_field_errors()
    assert any("suma(a, b) cannot take these arguments" in e for e in errors)
    html = response.content.decode()
    assert "suma(a, b) cannot take these arguments" in html
    assert 'class="errorlist nonfield"' in html
    assert not TaskInvocation.objects.exists()


def test_valid_post_creates_the_invocation(admin_client):
    response = admin_client.post(
        ADD_URL, form_data(args="", kwargs='{"a": 2, "b": 3}', queue="fast", priority="3")
    )
    assert response.status_code == 302, form_of(response).errors
    inv = TaskInvocation.objects.get(name="add 2 and 2")
    assert (inv.task, inv.args, inv.kwargs, inv.queue, inv.priority) == (
        SUMA, [], {"a": 2, "b": 3}, "fast", 3,
    )


def test_used_in_lists_the_workflows_with_links(admin_client):
    inv = invocation(SUMA, [2, 2])
    wf = workflow("tutorial chain", ("chain", [inv, invocation(SUMA, [4])]))
    workflow("unrelated", ("group", [invocation(SUMA, [1, 1])]))
    response = admin_client.get(change_url(inv))
    assert response.status_code == 200
    html = response.content.decode()
    link = reverse("admin:task_admin_workflow_change", args=[wf.pk])
    assert f'<a href="{link}">tutorial chain</a>' in html
    assert "unrelated" not in html


def test_used_in_says_when_nothing_uses_it(admin_client):
    inv = invocation(SUMA, [2, 2])
    response = admin_client.get(change_url(inv))
    assert "No workflow uses this invocation yet." in response.content.decode()
    assert "No workflow uses" not in admin_client.get(ADD_URL).content.decode()


def test_a_task_no_longer_allowed_renders_and_fails_at_the_field(admin_client):
    inv = invocation("celery.backend_cleanup", [], clean=False, name="old")
    response = admin_client.get(change_url(inv))
    assert response.status_code == 200
    assert 'value="celery.backend_cleanup" selected' in response.content.decode()
    response = admin_client.post(
        change_url(inv), form_data(name="old", task="celery.backend_cleanup", args="[]")
    )
    assert response.status_code == 200
    assert "not a task that may be run" in form_of(response).errors["task"][0]


def test_an_edit_that_would_break_a_workflow_is_refused(admin_client):
    inv = invocation(SUMA, [2, 2], name="first")
    workflow("tutorial chain", ("chain", [inv, invocation(SUMA, [4])]))
    response = admin_client.post(change_url(inv), form_data(name="first", immutable="on",
                                                            args="[2]"))
    assert response.status_code == 200
    errors = " ".join(form_of(response).non_field_errors())
    assert "missing a required argument" in errors


def test_changelist_search_and_filters(admin_client):
    invocation(SUMA, [2, 2], name="adds two", description="the tutorial's add")
    invocation("tests.testapp.tasks.slow", [1], name="sleeps")
    url = reverse("admin:task_admin_taskinvocation_changelist")
    response = admin_client.get(url, {"q": "tutorial"})
    assert [obj.name for obj in response.context["cl"].result_list] == ["adds two"]
    response = admin_client.get(url, {"task": "tests.testapp.tasks.slow"})
    assert [obj.name for obj in response.context["cl"].result_list] == ["sleeps"]


REPORT = "tests.testapp.tasks.sales_report"


def test_the_picker_carries_each_task_s_typed_parameters(admin_client):
    import json

    html = admin_client.get(ADD_URL).content.decode()
    start = html.index('<script id="ta-task-parameters" type="application/json">')
    data = json.loads(html[html.index(">", start) + 1:html.index("</script>", start)])
    params = {p["name"]: p for p in data[REPORT]["params"]}
    assert params["day"]["type"] == "date" and params["day"]["required"]
    assert params["region"]["choices"] == ["EU", "US", "APAC"]
    assert (params["top"]["type"], params["top"]["default"]) == ("int", 10)
    assert params["include_refunds"]["doc"] == "count refunded sales too."
    assert params["recipients"]["nullable"]
    assert data[SUMA]["params"][0]["type"] == "json"  # no annotation: raw JSON values
    assert "task_admin/arguments.js" in html


def test_a_value_of_the_wrong_type_is_named_at_its_field(admin_client):
    response = admin_client.post(ADD_URL, form_data(
        task=REPORT, args='["2026-11-01"]', kwargs='{"top": "ten", "region": "MARS"}',
    ))
    assert response.status_code == 200
    errors = form_of(response).errors["kwargs"]
    assert "“top” takes an integer, not \"ten\"" in errors
    assert "“region” takes one of \"EU\", \"US\", \"APAC\", not \"MARS\"" in errors
    response = admin_client.post(ADD_URL, form_data(task=REPORT, args='["yesterday"]'))
    assert form_of(response).errors["args"] == [
        "“day” takes a date (YYYY-MM-DD), not \"yesterday\""
    ]
    response = admin_client.post(ADD_URL, form_data(
        task=REPORT, args='["2026-11-01"]', kwargs='{"top": 3, "recipients": null}',
    ))
    assert response.status_code == 302
    assert TaskInvocation.objects.get().kwargs == {"top": 3, "recipients": None}


def test_a_misspelt_keyword_is_named(admin_client):
    response = admin_client.post(ADD_URL, form_data(
        task="tests.testapp.tasks.send_report_email", args="[]",
        kwargs='{"too": "a@example.com"}',
    ))
    assert response.status_code == 200
    text = str(form_of(response).errors)
    assert "has no parameter &#x27;too&#x27;" in text or "has no parameter 'too'" in text
    assert "missing a required argument" not in text


def test_whole_seconds_show_without_a_decimal_point(admin_client):
    """Regression: a countdown of 10 showed as 10.0 on the form and in the spec."""
    inv = invocation(SUMA, [2, 2], countdown=10, time_limit=2.5)
    html = admin_client.get(change_url(inv)).content.decode()
    assert 'name="countdown" value="10"' in html and 'value="10.0"' not in html
    assert 'name="time_limit" value="2.5"' in html
    inv.refresh_from_db()
    options = inv.to_spec().options
    assert (options.countdown, options.time_limit) == (10, 2.5)
    assert isinstance(options.countdown, int)
