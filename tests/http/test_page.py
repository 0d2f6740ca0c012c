"""The web page at `/`, in a real headless Chromium against `orchestrator serve` and the real worker.

Submits a transcript and a learner's sentence, watches the workers appear one by one, and checks the
rendered result, the run's model calls and the stats. Screenshots are kept in the test logs' directory
(``page-analysis.png``, ``page-tutor.png``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from orchestrator.config import Settings
from tests.fake_llm import FakeLLM, Fault
from tests.http.conftest import serving
from tests.services import Process

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TRANSCRIPT = (
    "Maria: We should move the offices to a four-day week, because absences fell by 20 percent in the pilots.\n"
    "Tom: Everyone knows that will never work, and if we allow it, soon nobody will work on Fridays at all."
)


@pytest.fixture(scope="module")
def page_url(settings: Settings, celery_worker: Process, log_dir: Path) -> Iterator[str]:
    with serving(settings, log_dir, "serve-page", "--threads", "8") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium and ChromeDriver are missing: `make install` installs them (Debian packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # Headless, and no background connections: the machine has no network but localhost.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,2200",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)  # fmt: skip
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def submit(browser: WebDriver, url: str, pipeline: str, text: str) -> None:
    browser.get(url)
    Select(browser.find_element(By.ID, "pipeline")).select_by_value(pipeline)
    browser.find_element(By.ID, "text").send_keys(text)
    browser.find_element(By.ID, "submit").click()


def worker_cards(browser: WebDriver) -> list[str]:
    return [card.get_attribute("data-worker") or "" for card in browser.find_elements(By.CSS_SELECTOR, ".worker")]


def test_a_transcript_shows_each_worker_live_then_the_rendered_analysis_and_its_calls(
    browser: WebDriver, page_url: str, fake_llm: FakeLLM, log_dir: Path
) -> None:
    fake_llm.script("logic_bias", Fault.hang(0.8))  # one worker late: the others show first
    submit(browser, page_url, "analysis", TRANSCRIPT)
    wait = WebDriverWait(browser, 20)

    wait.until(lambda b: len(worker_cards(b)) >= 3)
    assert "logic_bias" not in worker_cards(browser), "the late worker showed before it finished"
    wait.until(lambda b: b.find_elements(By.ID, "summary"))
    assert sorted(worker_cards(browser)) == ["argument", "implication_sentiment", "logic_bias", "summary"]
    assert worker_cards(browser)[-1] == "logic_bias"

    result = browser.find_element(By.ID, "result").text
    assert browser.find_element(By.ID, "summary").text.strip()
    assert "Claims" in result and "Sentiment" in result and "Fallacies and biases" in result
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "tr.call")) >= 4)
    rows = [row.find_elements(By.TAG_NAME, "td") for row in browser.find_elements(By.CSS_SELECTOR, "tr.call")]
    assert {row[0].text for row in rows} == {"argument", "implication_sentiment", "logic_bias", "summary"}
    assert all(row[3].text == "fake-model" and row[4].text == "ok" for row in rows)
    wait.until(lambda b: "analysis:" in b.find_element(By.ID, "stats").text)
    assert "Done: ok." in browser.find_element(By.ID, "state").text
    browser.save_screenshot(str(log_dir / "page-analysis.png"))


def test_a_learner_sentence_is_shown_with_its_errors_marked_corrected_scored_and_answered(
    browser: WebDriver, page_url: str, log_dir: Path
) -> None:
    submit(browser, page_url, "tutor", "I goes to school yesterday")
    wait = WebDriverWait(browser, 20)

    wait.until(lambda b: b.find_elements(By.ID, "corrected"))
    assert sorted(worker_cards(browser)) == ["feedback", "fluency", "grammar", "vocabulary"]
    marked = browser.find_elements(By.CSS_SELECTOR, "#marked mark.err")
    assert marked and marked[0].text == "goes"
    assert browser.find_element(By.ID, "corrected").text == "I went to school yesterday"
    assert browser.find_element(By.ID, "reply").text.strip()
    assert "overall" in browser.find_element(By.ID, "result").text
    browser.save_screenshot(str(log_dir / "page-tutor.png"))
