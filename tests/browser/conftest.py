import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# ``make screenshots``: the pictures go to docs/ and show the demo project.
SCREENSHOTS = bool(os.environ.get("TASK_ADMIN_SCREENSHOTS"))


@dataclass(frozen=True)
class Project:
    """The project a browser test drives: its Celery app and the module of its tasks."""

    app: Celery
    module: str

    def task(self, name: str) -> str:
        """The full name of this project's task ``name`` (``suma``)."""
        return f"{self.module}.{name}"


@pytest.fixture
def browser_project(request) -> Project:
    """The tests' own app, or under ``make screenshots`` the demo project installed for the
    test (``demo_project``): the pictures of the README and docs/ show the demo's tasks and
    site, while the normal run does not depend on the demo. The two register the same example
    tasks (examples/tasks.py), so a test passes on either."""
    if SCREENSHOTS:
        return Project(request.getfixturevalue("demo_project"), "project.demo.tasks")
    return Project(request.getfixturevalue("celery_app"), "tests.testapp.tasks")


@pytest.fixture
def browser_worker(request, browser_project):
    """A real worker of ``browser_project``: the session's worker, or the demo's own."""
    return request.getfixturevalue("demo_worker" if SCREENSHOTS else "worker")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Debian's headless Chromium driven by Selenium through Debian's chromedriver."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1400,1100", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    # An explicit chromedriver path: Selenium Manager would try to download one.
    drv = webdriver.Chrome(options=options, service=Service(driver))
    drv.implicitly_wait(0)
    yield drv
    drv.quit()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def shoot(browser, artifacts):
    """``shoot(name, element=None)``: a PNG of the page (or of one element) in test-artifacts/,
    and in docs/screenshots/ when TASK_ADMIN_SCREENSHOTS=1 (``make screenshots``)."""
    import base64

    def take(name: str, height: int | None = None) -> Path:
        # From the top: the admin's sticky sidebar is drawn where the scrolled window has it,
        # halfway down the picture once a test has scrolled.
        browser.execute_script("window.scrollTo(0, 0)")
        # The whole page, not the window: Chromium's DevTools capture beyond the viewport.
        metrics = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": 1400, "height": min(height or size["height"], 4000),
                "scale": 1}
        data = browser.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )["data"]
        png = base64.b64decode(data)
        target = artifacts / f"{name}.png"
        target.write_bytes(png)
        if SCREENSHOTS:
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            (DOCS_SHOTS / f"{name}.png").write_bytes(png)
        return target

    return take
