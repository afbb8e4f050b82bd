"""The operations pages in headless Chromium, against a real worker (the session's; the demo's
under ``make screenshots``, whose pictures are the README's: docs/screenshots/operations_*.png)."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from selenium.webdriver.common.by import By

from task_admin import operations, services
from tests.support.browser import fill, submit
from tests.support.factories import invocation, workflow
from tests.support.workers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_workers_queues_and_a_task_by_id(browser, live_server, browser_project, browser_worker,
                                          settings, shoot):
    app, worker = browser_project.app, browser_worker
    suma = browser_project.task("suma")
    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-for-browser")
    base = f"{live_server.url}/admin/task_admin"
    orphan = f"reports-{uuid.uuid4().hex[:4]}"
    slow_run = services.run_workflow(workflow("Nightly export", invocation(
        browser_project.task("slow"), kwargs={"seconds": 25}, name="export (slow)")))
    later = app.send_task(suma, args=[2, 3], countdown=300)
    invocation(suma, name="monthly report", args=[1, 2], queue=orphan)
    for _ in range(3):
        app.send_task(suma, args=[1, 1], queue=orphan)
    node = slow_run.nodes.get()
    try:
        with override_settings(TASK_ADMIN={"CELERY_APP": settings.TASK_ADMIN["CELERY_APP"],
                                           "INSPECT_TIMEOUT": 1.0, "INSPECT_CACHE": 1}):
            browser.get(f"{live_server.url}/admin/login/")
            fill(browser, "username", "ops")
            fill(browser, "password", "pw-for-browser")
            submit(browser, (By.CSS_SELECTOR, "input[type=submit]"))

            def shows_both_tasks():
                operations.forget_snapshot(workers=True)
                browser.get(f"{base}/worker/")
                html = browser.page_source
                return node.task_id in html and later.id in html

            wait_for(shows_both_tasks, timeout=30, interval=0.5,
                     what="the workers page to show the running and the scheduled task")
            row = browser.find_element(By.CSS_SELECTOR, f'tr[data-task-id="{node.task_id}"]')
            assert "running" in row.text and "Nightly export" in row.text
            scheduled = browser.find_element(By.CSS_SELECTOR, f'tr[data-task-id="{later.id}"]')
            assert "scheduled" in scheduled.text and "due" in scheduled.text

            # A control: grow the pool by one, confirmed on its page.
            submit(browser, (By.CSS_SELECTOR, "a.ta-control-pool"))
            assert "Grow or shrink the pool" in browser.page_source
            submit(browser, (By.CSS_SELECTOR, "input[type=submit]"))
            assert "Grew the pool" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
            wait_for(lambda: operations.snapshot(refresh=True).worker(worker.nodename)
                     .concurrency == 3, what="the pool to grow")
            operations.forget_snapshot()
            browser.get(f"{base}/worker/")
            shoot("operations_workers")

            # The run link leads to the run page.
            submit(browser, (By.CSS_SELECTOR, f'tr[data-task-id="{node.task_id}"] a.ta-run-link'))
            assert f"/workflowrun/{slow_run.pk}/change/" in browser.current_url

            browser.get(f"{base}/queue/")
            flagged = browser.find_element(By.CSS_SELECTOR, f'tr[data-queue="{orphan}"]')
            assert "nothing consumes it" in flagged.text and "3" in flagged.text
            assert "1 queue holds messages" in browser.page_source
            shoot("operations_queues")

            # Any task by id: typed into the lookup form.
            browser.get(f"{base}/celerytask/")
            fill(browser, "task_id", later.id)
            submit(browser, (By.CSS_SELECTOR, ".ta-task-lookup input[type=submit]"))
            found = browser.find_element(By.ID, "ta-task").text
            assert "held there until" in found and worker.nodename in found
            shoot("operations_task")
    finally:
        later.revoke()
        app.control.revoke(node.task_id, terminate=True)
        app.control.pool_shrink(1, destination=[worker.nodename])
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(orphan)
        operations.forget_snapshot()
