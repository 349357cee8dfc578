"""Real-browser smoke test: the app served by `streamlit run`, driven in Debian Chromium.

Every page is visited, one real interaction is made on each, visible text is checked and a
screenshot is saved to ``tests/artifacts/``. The server uses a temporary runs dir, so the
first visit trains the default model exactly as on a fresh machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SLOW = 120_000  # ms: the first page trains the default model (seconds, more on a busy machine)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from recsys.data import DataUnavailableError, load_movielens

    try:
        load_movielens(download=False, progress=False)
    except DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"MovieLens 100K unavailable: {err}")
    port = free_port()
    tmp = tmp_path_factory.mktemp("browser")
    env = {**os.environ, "RECSYS_RUNS_DIR": str(tmp / "runs")}
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
         "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start: see {tmp / 'server.log'}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 1800})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


def settle(page) -> None:
    """Waits until Streamlit has finished the current script run."""
    page.wait_for_timeout(300)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=SLOW)


def shot(page, name: str) -> None:
    page.wait_for_timeout(1500)  # data grids and Plotly draw after the script run ends
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def visible(page, text: str, timeout: int = 30_000) -> None:
    page.get_by_text(text).first.wait_for(state="visible", timeout=timeout)


def test_deep_link_on_fresh_server_gets_the_frame_and_toggles_exclude_seen(server, page):
    # First request of the process, straight to a page: it must still run through the frame
    # (sidebar with the run picker), train the default model, and honour ?user=42.
    page.goto(f"{server}/recommendations?user=42")
    visible(page, "Users with similar taste", timeout=SLOW)
    sidebar = page.locator("[data-testid='stSidebar']")
    assert sidebar.get_by_text("Active model").count() == 1
    assert sidebar.get_by_text("shared", exact=True).count() == 0  # no legacy page list
    settle(page)
    picker = page.get_by_label("User (type to search by id, age, occupation)")
    assert picker.input_value().startswith("user 42 ·") or picker.inner_text().startswith(
        "user 42 ·")
    page.get_by_text("Exclude seen").click()
    visible(page, "Seen movies are included")
    settle(page)
    shot(page, "recommendations")


def test_home_then_link_to_recommendations(server, page):
    page.goto(f"{server}/")
    visible(page, "Where to go", timeout=SLOW)  # first visit trains the default model
    settle(page)
    visible(page, "The movies of the active model, in 2-D")
    assert page.locator("[data-testid='stSidebar']").get_by_text("Recall@10").count()
    shot(page, "home")
    page.get_by_role("link", name="Recommendations").last.click()
    visible(page, "Users with similar taste")
    assert "/recommendations" in page.url


def test_similar_movies_title_search(server, page):
    page.goto(f"{server}/similar_movies")
    visible(page, "Co-occurrence neighbours", timeout=SLOW)
    box = page.get_by_label("Search a title")
    box.fill("the godfather")
    box.press("Enter")
    page.get_by_role("heading", name="Godfather, The (1972)").wait_for()
    settle(page)
    visible(page, "IVF Recall@10")
    shot(page, "similar_movies")


def test_embedding_map_highlight(server, page):
    page.goto(f"{server}/embedding_map")
    visible(page, "Why dot and cosine disagree", timeout=SLOW)
    box = page.get_by_label("Highlight titles")
    box.fill("star wars")
    box.press("Enter")
    settle(page)
    visible(page, "search hits")
    shot(page, "embedding_map")


def test_profile_like_a_movie(server, page):
    page.goto(f"{server}/profile")
    visible(page, "Recommended for you", timeout=SLOW)
    page.get_by_label("Movies you liked").click()
    page.keyboard.type("Star Wars (1977)")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    visible(page, "content similarity is blended")
    settle(page)
    visible(page, "PCA of the movie vectors")
    shot(page, "profile")


def test_train_popularity_and_see_it_on_the_leaderboard(server, page):
    page.goto(f"{server}/train")
    visible(page, "Leaderboard", timeout=SLOW)
    settle(page)
    page.get_by_role("button", name="Train baselines").click()
    visible(page, "beats popularity on the same protocol", timeout=SLOW)
    settle(page)
    # A tiny run: the live curves in seconds.
    page.get_by_role("spinbutton", name="epochs", exact=True).fill("2")
    page.get_by_role("button", name="Train", exact=True).click()
    visible(page, "is now your active model", timeout=SLOW)
    settle(page)
    shot(page, "train")
