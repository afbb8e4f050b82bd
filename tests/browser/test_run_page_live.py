"""The run page while a run goes, in headless Chromium against a real worker: each node's
started time, runtime and attempts update without a reload; a traceback opens as wide as the
node table; the graph's boxes keep their labels inside (whole on hover); a chord whose body
failed is a failed run."""

import re

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from task_admin.models import RunStatus, WorkflowRun
from tests.support.browser import login, submit
from tests.support.factories import invocation, workflow

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LONG_LABEL = "exchange rate from the flaky rate service, retried until it answers"
STALE = (StaleElementReferenceException, NoSuchElementException)


def cell(browser, path, field):
    return browser.find_element(
        By.CSS_SELECTOR, f'tr.ta-node-row[data-path="{path}"] td[data-field="{field}"]'
    ).text


def test_a_run_page_updates_live_then_shows_the_failed_chord(browser, live_server, settings,
                                                             browser_project, browser_worker,
                                                             shoot):
    settings.TASK_ADMIN = {**getattr(settings, "TASK_ADMIN", {}), "REFRESH_INTERVAL": 500}
    base = live_server.url
    login(browser, base)
    flaky = invocation(browser_project.task("fetch_exchange_rate"),
                       kwargs={"fail_times": 2, "countdown": 1}, name=LONG_LABEL)
    slow = invocation(browser_project.task("slow"), [6], name="six seconds")
    body = invocation(browser_project.task("always_fails"), name="report")
    wf = workflow("live chord", ("chord", [flaky, slow], body))

    browser.get(f"{base}/admin/task_admin/workflow/{wf.pk}/run/")
    submit(browser, (By.CSS_SELECTOR, "#workflow_run_form input[type=submit]"))
    run = WorkflowRun.objects.get(workflow=wf)
    # A mark on this page's window: a reload would lose it.
    browser.execute_script("window.taNotReloaded = true;")

    # The flaky task's third attempt, its started time and runtime arrive while the slow one
    # still runs (the page reloads only once the whole run has finished).
    WebDriverWait(browser, 60, poll_frequency=0.2, ignored_exceptions=STALE).until(
        lambda b: cell(b, "root.header.0", "attempts") == "3"
        and cell(b, "root.header.0", "runtime") != "—"
    )
    assert browser.execute_script("return window.taNotReloaded === true")
    for path in ("root.header.0", "root.header.1"):  # to the second
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cell(browser, path, "started"))
    assert cell(browser, "root.body", "started") == "—"  # not started yet: a dash, not "-"
    # The run's own started time and duration so far, live too.
    WebDriverWait(browser, 10, poll_frequency=0.2, ignored_exceptions=STALE).until(
        lambda b: re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", b.find_element(
            By.CSS_SELECTOR, ".field-started_display .readonly").text)
        and "so far" in b.find_element(By.CSS_SELECTOR, ".field-duration_display .readonly").text
    )
    assert browser.execute_script("return window.taNotReloaded === true")
    # Nothing runs off the page's right edge (the node table did).
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
    shoot("run_page_live")

    # The header succeeded, the body failed: no final result, so the run failed.
    WebDriverWait(browser, 90, poll_frequency=0.3, ignored_exceptions=STALE).until(
        lambda b: b.find_element(By.CSS_SELECTOR, "#ta-run-status .ta-state")
        .get_attribute("title") == RunStatus.FAILED
    )
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED

    # The body's traceback opens in a row as wide as the table, not in its narrow column.
    WebDriverWait(browser, 20, ignored_exceptions=STALE).until(
        lambda b: "Traceback" in b.find_element(
            By.CSS_SELECTOR, 'tr.ta-node-row[data-path="root.body"] details summary').text
    )
    browser.find_element(
        By.CSS_SELECTOR, 'tr.ta-node-row[data-path="root.body"] details summary').click()
    trace = WebDriverWait(browser, 20, ignored_exceptions=STALE).until(
        lambda b: b.find_element(By.CSS_SELECTOR, "tr.ta-detail-row pre.ta-pre"))
    assert "ValueError" in trace.text
    table = browser.find_element(By.ID, "ta-nodes").size["width"]
    assert trace.size["width"] > 0.8 * table

    # Every label of the graph fits in its box; the long one is cut there and whole on hover.
    overflowing = browser.execute_script("""
        return Array.from(document.querySelectorAll('#ta-run-graph svg g')).filter(function (g) {
          var rect = g.querySelector(':scope > rect');
          var text = g.querySelector(':scope > text.ta-label');
          if (!rect || !text) { return false; }
          var r = rect.getBBox(), t = text.getBBox();
          return t.x + t.width > r.x + r.width + 0.5;
        }).length;
    """)
    assert overflowing == 0
    titles = [t.get_attribute("textContent")
              for t in browser.find_elements(By.CSS_SELECTOR, "#ta-run-graph svg title")]
    assert any(LONG_LABEL in t for t in titles)
    shoot("run_page_failed_chord")
