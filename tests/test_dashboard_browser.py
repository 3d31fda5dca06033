"""End to end: ``finpulse dashboard`` serves the real Streamlit app on a free port over a seeded SQLite file,
and headless Chromium (Selenium) loads every page, waits for the charts, finds the seeded headlines, checks
that hostile HTML stays text, watches a live panel update, and saves screenshots under
``artifacts/dashboard/``. ``FINPULSE_DOCS_SCREENSHOTS=1`` also refreshes ``docs/overview.png``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from dashboards import seed
from monitor.broker import free_port
from monitor.schema import NewsItem, Tags
from monitor.store import alerts, make_engine, write_batch
from tests.conftest import require_binaries

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts" / "dashboard"
CHART = '[data-testid="stPlotlyChart"] .main-svg'
REFRESH_SECONDS = 3


@dataclass(frozen=True)
class Served:
    base: str
    db_url: str
    known: list[NewsItem]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The dashboard started through the CLI on a seeded database (a week of synthetic news, the known and
    hostile headlines, alerts, heartbeats) with a model card."""
    tmp = tmp_path_factory.mktemp("browser")
    db_url = f"sqlite:///{tmp / 'dashboard.db'}"
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    seed.seed_demo(engine, 20_000, now - timedelta(minutes=5), span=timedelta(days=7))
    known = seed.seed_known(engine, now)
    with engine.begin() as conn:  # the newest alert: the one whose headlines the Alerts page opens on
        fired = now - timedelta(seconds=40)  # after the known headline, before the dashboard's "now"
        row = seed.demo_alert(now, "ticker", "UMBR", "sent", 0) | {"fired_at": fired, "window_end": fired}
        conn.execute(alerts.insert(), [row])
    engine.dispose()
    (tmp / "model").mkdir()
    card = {"model": "finpulse-smollm2-lora-demo", "base_model": {"name": "SmolLM2-135M"},
            "validation": {"topic": {"macro_f1": 0.81}, "sentiment": {"macro_f1": 0.77}}}  # fmt: skip
    (tmp / "model" / "model_card.json").write_text(json.dumps(card))
    port = free_port()
    env = {**os.environ, "FINPULSE_DATABASE_URL": db_url, "FINPULSE_MODEL_PATH": str(tmp / "model"),
           "FINPULSE_DASHBOARD_REFRESH_SECONDS": str(REFRESH_SECONDS)}  # fmt: skip
    log = (tmp / "streamlit.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "dashboard", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, server)
        yield Served(base, db_url, known)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp / "streamlit.log", ARTIFACTS / "streamlit.log")


def wait_healthy(base: str, server: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dashboard exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("dashboard did not become healthy")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    found = require_binaries("chromium", "chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = found["chromium"]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1440,2300", "--hide-scrollbars",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=found["chromedriver"]))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(
    driver: WebDriver, served: Served, path: str, charts: int = 0, text: str = "", timeout: float = 60
) -> None:
    """Load a page and wait until it has rendered: its charts drawn, ``text`` shown, no script running."""
    driver.get(f"{served.base}/{path}")
    wait = WebDriverWait(driver, timeout)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, '[data-testid="stMainBlockContainer"] h1')))
    if charts:
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, CHART)) >= charts)
    if text:
        wait.until(lambda d: text in page_text(d))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'))
    time.sleep(0.5)  # let Plotly finish its transitions before a screenshot


def page_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def test_overview_renders_charts_kpis_and_headlines(browser: WebDriver, served: Served) -> None:
    open_page(browser, served, "", charts=4, text=seed.KNOWN_HEADLINE)
    text = page_text(browser)
    for label in (
        "Items in window",
        "Negative share",
        "Active alerts",
        "Volume by topic",
        "Sentiment over time",
    ):
        assert label in text
    assert len(browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')) == 4
    shot = screenshot(browser, "overview")
    if os.environ.get("FINPULSE_DOCS_SCREENSHOTS") == "1":
        shutil.copy(shot, REPO / "docs" / "overview.png")


def test_hostile_headline_is_shown_as_text_and_never_runs(browser: WebDriver, served: Served) -> None:
    open_page(browser, served, "", charts=4, text="window.__finpulse_xss=1")
    assert "<script>window.__finpulse_xss=1</script>" in page_text(browser)
    assert browser.execute_script("return window.__finpulse_xss === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]')
    assert not browser.find_elements(By.CSS_SELECTOR, 'a[href^="javascript:"]')
    hostile = served.known[1]
    open_page(browser, served, f"headlines?item={hostile.id}", text="window.__finpulse_xss=2")
    assert browser.execute_script("return window.__finpulse_xss === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, 'img[src="x"], a[href^="javascript:"]')
    screenshot(browser, "headline-hostile")


def test_headlines_page_shows_table_and_details(browser: WebDriver, served: Served) -> None:
    known = served.known[0]
    open_page(browser, served, f"headlines?item={known.id}", text=seed.KNOWN_HEADLINE)
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    text = page_text(browser)
    assert "Details" in text and "UMBR" in text and "newest first" in text
    screenshot(browser, "headlines")


def test_selecting_a_row_opens_its_details(browser: WebDriver, served: Served) -> None:
    open_page(browser, served, "headlines?ticker=UMBR", text="1 headline, newest first")
    grid = browser.find_element(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    # The grid is a canvas: click the row-selection cell of the first data row (header and rows ~35 px).
    left, top = -grid.size["width"] // 2, -grid.size["height"] // 2  # offsets are from the centre
    ActionChains(browser).move_to_element_with_offset(grid, left + 12, top + 35 + 17).click().perform()
    WebDriverWait(browser, 30).until(lambda d: "Details" in page_text(d))
    assert seed.KNOWN_HEADLINE in page_text(browser)
    assert f"item={served.known[0].id}" in browser.current_url
    screenshot(browser, "headline-selected")


def test_tickers_page_shows_movers_and_trend(browser: WebDriver, served: Served) -> None:
    open_page(browser, served, "tickers?ticker=UMBR", charts=1, text="Top movers by negative share")
    assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    assert "UMBR: sentiment and volume" in page_text(browser)
    screenshot(browser, "tickers")


def test_alerts_page_shows_states_and_headlines_behind(browser: WebDriver, served: Served) -> None:
    open_page(browser, served, "alerts", text=seed.KNOWN_HEADLINE)
    text = page_text(browser)
    assert all(state in text for state in ("Pending", "Sent", "Failed"))
    screenshot(browser, "alerts")


def test_system_page_shows_model_workers_and_database(browser: WebDriver, served: Served) -> None:
    open_page(browser, served, "system", text="finpulse-smollm2-lora-demo")
    text = page_text(browser)
    for label in ("Live workers", "Throughput", "Consumer lag", "Dead-lettered", "Size", "Headlines stored"):
        assert label in text
    screenshot(browser, "system")


def test_live_panel_shows_new_headline_without_reload(browser: WebDriver, served: Served) -> None:
    open_page(browser, served, "", charts=4, text=seed.KNOWN_HEADLINE)
    browser.execute_script("window.__finpulse_same_page = true")
    fresh = NewsItem(title="Live wire: Globex recalls every widget", source="Reuters", tickers=("GLBX",),
                     published_at=datetime.now(UTC) - timedelta(seconds=20))  # fmt: skip
    engine = make_engine(served.db_url)
    with engine.begin() as conn:
        write_batch(conn, [(fresh, Tags("Company | Product News", 0.9, "negative", -0.95, 0.9, "v"))],
                    timedelta(hours=24))  # fmt: skip
    engine.dispose()
    try:  # the 24-hour window moves every 30 s (a step of 1/60 bucket), the fragment polls every 3 s
        WebDriverWait(browser, 75, poll_frequency=1).until(lambda d: fresh.title in page_text(d))
    except TimeoutException:
        screenshot(browser, "live-timeout")
        raise
    assert browser.execute_script("return window.__finpulse_same_page === true")  # no page reload


def test_sidebar_filters_survive_page_switches(browser: WebDriver, served: Served) -> None:
    open_page(browser, served, "", charts=4)
    sidebar = browser.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"]')
    sidebar.find_element(By.CSS_SELECTOR, '[data-testid="stSelectbox"]').click()
    WebDriverWait(browser, 10).until(
        ec.element_to_be_clickable((By.XPATH, '//*[@role="option"][contains(., "Last 7 days")]'))
    ).click()
    WebDriverWait(browser, 30).until(lambda d: "3 h buckets" in page_text(d))
    sidebar.find_element(By.CSS_SELECTOR, 'a[href$="/alerts"]').click()
    WebDriverWait(browser, 30).until(lambda d: "Headlines behind alert" in page_text(d))
    selected = browser.find_element(By.CSS_SELECTOR, '[data-testid="stSidebar"] [data-testid="stSelectbox"]')
    shown = selected.get_attribute("textContent") or ""
    shown += " ".join(i.get_attribute("value") or "" for i in selected.find_elements(By.TAG_NAME, "input"))
    assert "Last 7 days" in shown
