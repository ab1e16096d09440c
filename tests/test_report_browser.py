"""The demo's report: its structure, and in a real browser: headless Chromium opens index.html from
disk, takes a full-page screenshot (kept in the test's tmp dir) and every figure must have loaded."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_report_data import CORE_SECTIONS, check_self_contained

pytestmark = pytest.mark.browser

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)


def _binaries() -> tuple[str, str]:
    """chromium and chromedriver, or a one-line reason: fail when installable, skip when apt is absent."""
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if chromium and driver:
        return chromium, driver
    missing = " and ".join(n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p)
    if shutil.which("apt-get") is None:
        pytest.skip(f"{missing} not installed and apt-get is unavailable to install it")
    pytest.fail(
        f"{missing} not installed: run `make browser-deps` (apt-get install chromium chromium-driver)"
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The demo study (`fairmed demo`) in its smoke profile, two strategies over two seeds, and its report."""
    from fairmed.studies.runner import run_study
    from fairmed.studies.spec import load_spec

    spec = load_spec("demo", profile="smoke")
    spec = spec.model_copy(
        update={"strategies": ["erm", "groupdro"], "design": spec.design.model_copy(update={"seeds": [0, 1]})}
    )
    outcome = run_study(spec, tmp_path_factory.mktemp("demo"), jobs=1, report=True)
    return outcome.report


def test_demo_report_structure(report):
    """The demo's report: every section, every figure embedded (PNG + SVG on disk), nothing external."""
    page = check_self_contained(report.parent)
    assert page.sections == [*CORE_SECTIONS, "comparison"]
    text = report.read_text(encoding="utf-8")
    assert "The largest gap is the fst " in text and "The study spec (spec.yaml)" in text
    assert (
        "Images per group in each split (first seed; fold 0 under cross-validation)" in text
    )  # the runner's per-split summary


def test_report_renders_in_chromium(report, tmp_path):
    chromium, driver_path = _binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(report.resolve().as_uri())
        height = driver.execute_script("return document.documentElement.scrollHeight")
        images = driver.execute_script(
            "return [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
        )
    finally:
        driver.quit()
    path = tmp_path / "report_screenshot.png"
    path.write_bytes(base64.b64decode(shot["data"]))

    n_figures = len(list((report.parent / "figures").glob("*.png")))
    assert height > 4000, f"page only {height}px tall"
    assert len(images) == n_figures > 10
    assert all(complete and w > 0 and h > 0 for complete, w, h in images), images
    assert not [r for r in resources if r.startswith(("http:", "https:"))], resources
    picture = np.asarray(Image.open(path).convert("L"))
    assert picture.shape[0] >= height - 5 and picture.shape[1] >= 1000
    assert picture.std() > 20  # drawn, not a blank page
