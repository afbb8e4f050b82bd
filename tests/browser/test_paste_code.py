"""Canvas as code in a browser: the tutorial's three canvases pasted into the Add page give the
trees the demo fixtures build by hand (the chord with its warning), and run on a real worker."""


import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from selenium.webdriver.common.by import By

from task_admin import canvas
from task_admin.compile import workflow_to_spec
from task_admin.models import RunStatus, TaskInvocation, Workflow, WorkflowRun
from tests.support.browser import fill, submit
from tests.support.demo import FIXTURE
from tests.support.workers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# As the fixtures' descriptions write them (the tutorial's canvases).
TUTORIAL = {
    "Tutorial: group": "group([suma.s(2, 2), suma.s(4, 4)])",
    "Tutorial: chain": "chain(suma.s(2, 2) | suma.s(4))",
    "Tutorial: chord": "chord([suma.s(2, 2), suma.s(4, 4)], suma.s(10))",
}


def plain(node: canvas.Node) -> canvas.Node:
    """The tree without labels and refs (invocation names, database ids)."""
    if isinstance(node, canvas.Task):
        return canvas.Task(node.task, node.args, node.kwargs, node.options, node.immutable)
    if isinstance(node, canvas.Chord):
        return canvas.Chord(tuple(plain(c) for c in node.header), plain(node.body))
    return type(node)(tuple(plain(c) for c in node.tasks))


def paste(browser, base, name, code, screenshot=None):
    browser.get(f"{base}/admin/task_admin/workflow/add/")
    browser.find_element(By.CSS_SELECTOR, "#ta-from-code > summary").click()
    fill(browser, "paste-name", name)
    fill(browser, "paste-code", code)
    submit(browser, (By.CSS_SELECTOR, "#ta-from-code input[name=_preview]"))
    assert "Preview: nothing is saved yet" in browser.page_source
    assert not Workflow.objects.filter(name=name).exists()  # nothing saved by the preview
    preview = browser.find_element(By.ID, "code-preview").text
    if screenshot:
        browser.save_screenshot(str(screenshot))
    submit(browser, (By.CSS_SELECTOR, "#workflow_from_code_form input[name=_save]"))
    assert "/change/" in browser.current_url, browser.page_source[:3000]
    return preview


def run(browser, base, workflow):
    browser.get(f"{base}/admin/task_admin/workflow/{workflow.pk}/run/")
    submit(browser, (By.CSS_SELECTOR, "#workflow_run_form input[type=submit]"))
    assert "/workflowrun/" in browser.current_url
    done = wait_for(
        lambda: WorkflowRun.objects.filter(workflow=workflow, status=RunStatus.SUCCEEDED).first(),
        timeout=60, what=f"{workflow.name} to succeed",
    )
    return done


def test_paste_the_tutorial_into_the_admin_and_run_it(browser, live_server, demo_worker,
                                                      artifacts):
    call_command("loaddata", FIXTURE, verbosity=0)
    invocations = TaskInvocation.objects.count()
    get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-for-browser")
    base = live_server.url
    browser.get(f"{base}/admin/login/")
    fill(browser, "username", "staff")
    fill(browser, "password", "pw-for-browser")
    submit(browser, (By.CSS_SELECTOR, "input[type=submit]"))

    pasted = {}
    for hand_built, code in TUTORIAL.items():
        name = f"{hand_built} (pasted)"
        shot = artifacts / "paste_preview.png" if hand_built == "Tutorial: chord" else None
        preview = paste(browser, base, name, code, shot)
        pasted[hand_built] = Workflow.objects.get(name=name)
        assert plain(workflow_to_spec(pasted[hand_built])) == plain(
            workflow_to_spec(Workflow.objects.get(name=hand_built))
        )
        if hand_built == "Tutorial: chord":
            # Warned in the preview, at save, and on the workflow page; saved all the same.
            assert "1 warning" in preview and "line 1, column 37: root.body" in preview
            messages = browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
            assert "Warning: line 1, column 37: root.body" in messages
            page_warning = browser.find_element(By.ID, "workflow-warnings").text
            assert "receives the list of header results first" in page_warning
            browser.save_screenshot(str(artifacts / "pasted_chord.png"))
        else:
            assert "warning" not in preview.lower()
    assert TaskInvocation.objects.count() == invocations  # the fixtures' invocations reused

    group_run = run(browser, base, pasted["Tutorial: group"])
    assert [n.result for n in group_run.nodes.order_by("position")] == [4, 8]
    chain_run = run(browser, base, pasted["Tutorial: chain"])
    assert chain_run.nodes.order_by("-position").first().result == 8
