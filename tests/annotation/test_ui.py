"""An expert in Label Studio's own UI (headless Chromium): finds a species the model never offered by typing
part of its name in the search, submits, and `pull` stores exactly that species."""

from __future__ import annotations

import time
import uuid

import pytest

from annotation.vocabulary import Vocabulary
from tests.annotation.conftest import SPECIES, generate
from tests.test_app_browser import browser  # noqa: F401 - the headless Chromium fixture

pytestmark = pytest.mark.labelstudio
TOAD = "Anaxyrus cognatus_Great Plains Toad"


def _wait(driver, css: str, timeout: float = 60.0, text: str | None = None):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # the page re-renders while it loads: an element found may be gone a moment later
            found = [e for e in driver.find_elements(By.CSS_SELECTOR, css)
                     if e.is_displayed() and (text is None or text in e.text)]
        except StaleElementReferenceException:
            found = []
        if found:
            return found[0]
        time.sleep(0.3)
    driver.save_screenshot("/tmp/ui_fail.png")
    open("/tmp/ui_fail.html", "w").write(driver.page_source)
    raise AssertionError(f"{css!r} {text or ''} did not appear; page text: {driver.find_element(By.TAG_NAME, 'body').text[:800]}")


def _click(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    time.sleep(0.3)
    element.click()


def test_an_expert_finds_an_unlisted_species_by_typing_and_pull_stores_it(ls_client, ls_store, labelstudio,
                                                                           tmp_path, browser):  # noqa: F811
    from embeddings.birdnet import BirdNET
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    gen = generate(ls_store, tmp_path, n_clips=1, seed=uuid.uuid4().int % 1000)
    label_set = ls_store.add_label_set(f"ui-{uuid.uuid4().hex[:8]}", SPECIES[:3] + ["Other", "Noise"])
    vocab = Vocabulary.of(label_set.labels, BirdNET().labels)  # the real 6,522 names
    pid = ls_client.ensure_project(label_set, title=f"ui {label_set.name}", clips_dir=labelstudio.workspace.clips,
                                   vocabulary=vocab)
    report = ls_client.push(ls_store, labelstudio.workspace.clips, pid, run_id=gen.run_id)
    [tid] = report.task_ids.values()

    browser.get(f"{labelstudio.url}/user/login/")
    browser.find_element(By.NAME, "email").send_keys(labelstudio.settings.username)
    browser.find_element(By.NAME, "password").send_keys(labelstudio.settings.password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
    _wait(browser, "body")
    browser.get(f"{labelstudio.url}/projects/{pid}/data?task={tid}")
    _wait(browser, ".lsf-choices", text="Other species")
    assert "Clip" in browser.find_element(By.TAG_NAME, "body").text
    assert gen.audio.name not in browser.find_element(By.TAG_NAME, "body").text  # blind
    _click(browser, _wait(browser, "label", text="Other species"))
    _click(browser, _wait(browser, ".htx-taxonomy .ant-select-selector"))
    search = _wait(browser, "input[placeholder='Search']")  # the tree's own search box
    search.send_keys("cognatus")
    _click(browser, _wait(browser, ".ant-select-tree-title", text="Great Plains Toad"))
    search.send_keys(Keys.ESCAPE)
    _wait(browser, ".htx-taxonomy .ant-select-selection-item", text="Great Plains Toad")
    _click(browser, _wait(browser, "button", text="Submit"))
    deadline = time.monotonic() + 30
    while not list(ls_client.sdk.annotations.list(id=tid)) and time.monotonic() < deadline:
        time.sleep(0.5)

    pulled = ls_client.pull(ls_store, pid)
    assert (pulled.new, pulled.usable, pulled.rejected) == (1, 1, 0), pulled.problems
    [stored] = [a for a in ls_store.annotations() if a.ls_task_id == tid]
    assert TOAD in stored.labels and "Other" not in stored.labels
    assert pulled.new_species == [TOAD]  # the label set now offers it
    assert TOAD in ls_store.label_set().labels
