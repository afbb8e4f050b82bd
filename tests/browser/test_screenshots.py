"""Screenshots of each admin page for docs/screenshots/: ``make screenshots``.

Skipped in the normal suite (TASK_ADMIN_SCREENSHOTS=1 turns it on). The pages are not listed by
hand: every GET page of every task_admin ModelAdmin (as the smoke test finds them) is taken, with
the demo workflows loaded, a finished chain, a partly failed run and a schedule, so the pictures
follow the code. Files are named after the admin URL (``task_admin_workflow_change.png``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from task_admin import operations, services
from task_admin.models import Workflow, WorkflowRun
from tests.admin.test_smoke_permissions import task_admin_urls
from tests.support.demo import FIXTURE
from tests.support.factories import schedule
from tests.support.runs import finished

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("TASK_ADMIN_SCREENSHOTS"),
                       reason="make screenshots (TASK_ADMIN_SCREENSHOTS=1)"),
]

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots"
PAGES = ("_changelist", "_add", "_change", "_run", "_import", "_export", "_as_code")
SKIP = ("_delete", "_history", "_status", "_autocomplete")
SHOT = re.compile(r'shoot\(\s*"(\w+)"')


def _pages(objects) -> list[tuple[str, str]]:
    pages = [("admin_index", reverse("admin:index")),
             ("task_admin_app_index", reverse("admin:app_list", args=["task_admin"]))]
    for model, _admin, name, converters in task_admin_urls():
        if not name.endswith(PAGES) or name.endswith(SKIP):
            continue
        if converters:
            obj = objects.get(model)
            if obj is None or not model._meta.managed:
                continue
            url = reverse(f"admin:{name}", kwargs={key: obj.pk for key in converters})
        else:
            url = reverse(f"admin:{name}")
        pages.append((name, url))
    return pages


def _objects():
    from task_admin.models import TaskInvocation, TaskRun, WorkflowSchedule

    chain = Workflow.objects.get(name="Tutorial: chain")
    failed = WorkflowRun.objects.filter(status="partially_failed").first()
    return {
        Workflow: chain,
        TaskInvocation: TaskInvocation.objects.order_by("pk").first(),
        WorkflowRun: failed or WorkflowRun.objects.first(),
        TaskRun: TaskRun.objects.filter(state="FAILURE").first() or TaskRun.objects.first(),
        WorkflowSchedule: WorkflowSchedule.objects.first(),
    }


def test_screenshot_every_admin_page(browser, live_server, demo_worker, shoot):
    call_command("loaddata", str(FIXTURE), verbosity=0)
    for name in ("Tutorial: chain", "Partial failure", "Nested report"):
        finished(services.run_workflow(Workflow.objects.get(name=name)), timeout=120)
    schedule(Workflow.objects.get(name="Tutorial: chain"), name="Tutorial chain, every 2 min",
             every=2, period="minutes")
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-screens")
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))

    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("pw-screens")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 20).until(lambda b: "/login/" not in b.current_url)

    # The workers that earlier tests stopped are remembered as "not answering" for a while:
    # the pictures show the demo's one worker, as ``make demo`` has.
    operations.forget_snapshot(workers=True)
    taken = []
    for name, url in _pages(_objects()):
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        browser.get(live_server.url + url)
        WebDriverWait(browser, 20).until(
            lambda b: b.execute_script("return document.readyState") == "complete"
        )
        # The whole page, as the other browser tests' pictures (a window resized to the page
        # lost the browser's own height at the bottom of the longer pages).
        shoot(name)
        taken.append(name)
    assert {"admin_index", "task_admin_workflow_change", "task_admin_workflowrun_change"} <= set(
        taken
    ), taken
    # The pictures the other browser tests take along their paths: their shoot(...) calls.
    along = sorted({name for path in Path(__file__).parent.glob("test_*.py")
                    for name in SHOT.findall(path.read_text())} - set(taken))
    (OUT / "README.md").write_text(
        "Made by `make screenshots` (the browser tests, tests/browser/); do not edit.\n\n"
        "Every admin page of the app (tests/browser/test_screenshots.py):\n\n"
        + "\n".join(f"- `{name}.png`" for name in taken)
        + "\n\nAlong the paths of the other browser tests (their `shoot(...)` calls):\n\n"
        + "\n".join(f"- `{name}.png`" for name in along) + "\n"
    )
