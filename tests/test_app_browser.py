"""Every page of the served app in headless Chromium: rendered, not blank, no exception box.

AppTest runs the scripts but not the browser: this catches what only the front end sees (a chart spec
Vega refuses, a page path the router does not know, a widget the browser cannot draw).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from tests.test_app import add_simulation, audited_round, build, sample_run, two_rounds

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
PAGES = {"": "Pool", "sample": "Sample", "annotate": "Annotate", "rounds": "Rounds", "lab": "Lab"}
RUNNING = '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSkeleton"]'  # a script run in progress
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000"]


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs headless Chromium: the Debian packages chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def served(workspace, tmp_path, monkeypatch):
    """The app on a free port over a workspace with a pool, a batch, two rounds, an audited third (calibration
    and auto-validation) and a simulation."""
    from workbench.services import start_app, stop_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("LABEL_STUDIO_URL", f"http://127.0.0.1:{closed}")  # unreachable: the page must say so
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-token")
    monkeypatch.delenv("WORKBENCH_DB_URL", raising=False)
    audio = tmp_path / "audio"
    audio.mkdir()
    built = build(workspace, audio, noise=1.0)
    sample_run(workspace)
    two_rounds(workspace, built)
    audited_round(workspace, built, budget=6)  # clips stay in the pool for the Sample page's preview
    add_simulation(workspace)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = start_app(workspace, port)
    try:
        yield url
    finally:
        stop_app(workspace)


def settle(driver, title: str, timeout: float = 60.0) -> None:
    """Wait for the page's title, then for the script run to finish (no running indicator for a moment)."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        titles = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "h1")]
        running = driver.find_elements(By.CSS_SELECTOR, RUNNING)
        if title in titles and not running:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.5:
                return
        else:
            quiet_since = None
        time.sleep(0.25)
    raise AssertionError(f"page {title!r} did not finish rendering in {timeout:.0f} s; headings seen: "
                         f"{[h.text for h in driver.find_elements(By.CSS_SELECTOR, 'h1, h2, h3')]}")


def check_page(driver, title: str) -> None:
    from selenium.webdriver.common.by import By

    errors = [e.text.splitlines()[:3] for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')]
    assert not errors, f"{title}: Streamlit exception box(es): {errors}"
    main = driver.find_element(By.CSS_SELECTOR, '[data-testid="stMainBlockContainer"]')
    assert len(main.text.strip()) > 100, f"{title}: the page is (nearly) blank: {main.text!r}"
    assert "Page not found" not in driver.find_element(By.TAG_NAME, "body").text, title


def test_every_page_renders_in_a_browser(served, browser):
    from selenium.webdriver.common.by import By

    for path, title in PAGES.items():
        browser.get(f"{served}/{path}")
        settle(browser, title)
        check_page(browser, title)
        if title == "Annotate":
            assert "cannot reach Label Studio" in browser.find_element(By.CSS_SELECTOR, '[data-testid="stAlert"]').text
        if title == "Rounds":  # the trust section: calibration table, reliability chart, auto-validation
            body = browser.find_element(By.TAG_NAME, "body").text
            assert "Calibration and auto-validation" in body and "Auto-validation: precision ≥ 0.8" in body, body[-2000:]
            assert "1 of them disputed by their experts" in body
            charts = browser.find_elements(By.XPATH, "//*[contains(@class, 'st-key-rounds_reliability_class')]"
                                                     "/following::*[@data-testid='stVegaLiteChart']")
            assert charts and charts[0].size["height"] > 100, "no reliability chart drawn"
            for key in ("rounds_ece", "rounds_validation"):
                assert browser.find_elements(By.CSS_SELECTOR, f".st-key-{key}"), f"no {key} table drawn"
    browser.get(f"{served}/sample")
    settle(browser, "Sample")
    browser.find_element(By.CSS_SELECTOR, ".st-key-sample_preview button").click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "Preview (not stored)" not in browser.find_element(By.TAG_NAME, "body").text:
        time.sleep(0.25)
    settle(browser, "Sample")
    check_page(browser, "Sample preview")
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stVegaLiteChart"]'), "no embedding map"
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img'), "no spectrogram"
    assert browser.find_elements(By.CSS_SELECTOR, "audio"), "no audio player"
