"""Typed argument fields in headless Chromium: an invocation and a run-now override."""

import inspect

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from examples.tasks import sales_report
from task_admin.models import TaskInvocation, WorkflowRun
from tests.support.browser import fill, login, submit
from tests.support.factories import workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def arg(browser, name):
    return browser.find_element(By.ID, f"ta-arg-{name}")


def set_value(browser, element, value):
    """Date inputs take keystrokes in the browser's locale order: set the value as a script
    would, and say so with the events a person's typing fires."""
    browser.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
        element, value,
    )


def test_an_invocation_from_typed_fields_and_a_typed_override(browser, live_server,
                                                              browser_project, shoot):
    base = live_server.url
    login(browser, base)
    browser.get(f"{base}/admin/task_admin/taskinvocation/add/")
    fill(browser, "name", "Monday report")
    report = browser_project.task("sales_report")
    Select(browser.find_element(By.NAME, "task")).select_by_value(report)
    WebDriverWait(browser, 5).until(lambda b: arg(b, "day"))
    # The JSON fields give way to one field per parameter, typed, with doc and default.
    assert not browser.find_element(By.NAME, "args").is_displayed()
    assert arg(browser, "day").get_attribute("type") == "date"
    assert arg(browser, "top").get_attribute("type") == "number"
    assert arg(browser, "top").get_attribute("placeholder") == "default: 10"
    assert "count refunded sales too." in browser.find_element(By.ID, "ta-arguments").text
    set_value(browser, arg(browser, "day"), "2026-11-02")
    Select(arg(browser, "region")).select_by_visible_text("US")
    arg(browser, "top").send_keys("5")
    Select(arg(browser, "include_refunds")).select_by_visible_text("true")
    arg(browser, "recipients").send_keys('["boss@example.com"]')
    arg(browser, "min_amount").send_keys("abc")  # not a number: said at the field
    WebDriverWait(browser, 5).until(
        lambda b: "number" in arg(b, "min_amount").find_element(
            By.XPATH, "ancestor::div[contains(@class,'ta-arg-row')]").text
    )
    arg(browser, "min_amount").clear()
    shoot("invocation_typed_fields", height=1150)
    submit(browser, (By.NAME, "_save"))
    inv = TaskInvocation.objects.get(name="Monday report")
    bound = inspect.signature(sales_report).bind(*inv.args, **inv.kwargs).arguments
    assert bound == {"day": "2026-11-02", "region": "US", "top": 5, "include_refunds": True,
                     "recipients": ["boss@example.com"]}

    # Run now: the override offers only what the invocation does not give positionally.
    wf = workflow("report", ("chain", [inv]))
    browser.get(f"{base}/admin/task_admin/workflow/{wf.pk}/run/")
    override = browser.find_element(By.ID, "id_root.0-min_amount")
    assert override.get_attribute("type") == "number"
    assert "given positionally" in browser.find_element(By.ID, "workflow_run_form").text
    override.send_keys("2.5")
    # Cancel stands beside "Run now": same top and height (it used to sit lower and shorter).
    run, cancel = (browser.find_element(By.CSS_SELECTOR, f"#workflow_run_form .submit-row {css}")
                   for css in ("input[type=submit]", "a.cancel-link"))
    assert abs(run.rect["y"] - cancel.rect["y"]) <= 1
    assert abs(run.rect["height"] - cancel.rect["height"]) <= 1
    # The canvas to send is read whole in its column: a long call wraps instead of running
    # under the box's edge (a scrollbar many systems hide until scrolled).
    assert browser.execute_script(
        "var pre = document.querySelector('.ta-canvas-python pre.ta-python');"
        "return pre.scrollWidth <= pre.clientWidth;")
    shoot("run_now_overrides", height=1000)
    submit(browser, (By.CSS_SELECTOR, "#workflow_run_form input[type=submit]"))
    assert WorkflowRun.objects.get().overrides == {"root.0": {"min_amount": 2.5}}
