"""A person's path through the admin, in headless Chromium, against a real worker."""

import pytest
from django.contrib.auth import get_user_model
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from task_admin.models import TaskInvocation, Workflow, WorkflowRun
from tests.support.browser import add, choose, fill, save, start, submit, wait_preview

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def add_invocation(browser, base, task, name, args):
    """suma's arguments typed into its parameter fields (``a``, ``b``), as staff would."""
    browser.get(f"{base}/admin/task_admin/taskinvocation/add/")
    fill(browser, "name", name)
    Select(browser.find_element(By.NAME, "task")).select_by_value(task)
    for param, value in zip("ab", args, strict=False):
        browser.find_element(By.ID, f"ta-arg-{param}").send_keys(str(value))
    submit(browser, (By.NAME, "_save"))
    assert "/add/" not in browser.current_url, browser.page_source[:3000]
    assert TaskInvocation.objects.get(name=name).args == list(args), browser.page_source[:3000]


def test_compose_and_run_a_chain_in_the_browser(browser, live_server, browser_project,
                                                 browser_worker, shoot):
    get_user_model().objects.create_superuser("staff", "staff@example.com", "pw-for-browser")
    base = live_server.url
    browser.get(f"{base}/admin/login/")
    fill(browser, "username", "staff")
    fill(browser, "password", "pw-for-browser")
    submit(browser, (By.CSS_SELECTOR, "input[type=submit]"))
    assert "/login/" not in browser.current_url

    suma = browser_project.task("suma")
    add_invocation(browser, base, suma, "two plus two", [2, 2])
    add_invocation(browser, base, suma, "plus four", [4])

    start(browser, base, "browser chain")
    add(browser, "chain", where=None)
    add(browser, "task")
    choose(browser, "root.0", "two plus two")
    add(browser, "task")
    choose(browser, "root.1", "plus four")
    wait_preview(browser, "ready to run")
    save(browser)
    workflow = Workflow.objects.get(name="browser chain")
    assert "chain(suma.s(2, 2), suma.s(4))" in browser.page_source

    browser.get(f"{base}/admin/task_admin/workflow/{workflow.pk}/run/")
    submit(browser, (By.CSS_SELECTOR, "#workflow_run_form input[type=submit]"))
    assert "/workflowrun/" in browser.current_url
    run = WorkflowRun.objects.get(workflow=workflow)

    # The page refreshes itself while the run is unfinished; no reload from the test.
    # The page reloads itself when the run finishes: elements may go stale mid-check.
    WebDriverWait(browser, 60, poll_frequency=0.2, ignored_exceptions=(
        StaleElementReferenceException, NoSuchElementException,
    )).until(
        # The run's own badge: a node's "succeeded" badge shows as soon as the first step ends.
        lambda b: b.find_element(By.CSS_SELECTOR, "#ta-run-status .ta-state").get_attribute(
            "title"
        ) == "succeeded"
        and len(b.find_elements(By.CSS_SELECTOR, "svg.ta-graph .ta-state-success")) == 2
    )
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert [n.result for n in run.nodes.order_by("position")] == [4, 8]
    WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: "8" in b.find_element(By.ID, "content").text
    )
    shoot("run_page")
