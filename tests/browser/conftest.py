import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


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
    import os

    def take(name: str, height: int | None = None) -> Path:
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
        if os.environ.get("TASK_ADMIN_SCREENSHOTS"):
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            (DOCS_SHOTS / f"{name}.png").write_bytes(png)
        return target

    return take
