"""Real-browser tests: the app served by `streamlit run`, driven in Debian Chromium.

Every page is visited with one real interaction, visible text is checked and a screenshot is
saved to ``tests/artifacts/``. The server uses a temporary runs dir, so the first visit trains
the default model (in a worker process) exactly as on a fresh machine. Beyond the smoke
tests: training while the page watches, a reload during training, state across navigation,
a damaged run beside good ones, and markdown in a link shown as plain text.
"""

from __future__ import annotations

import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, app_server

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SLOW = 120_000  # ms: the first page trains the default model (seconds, more on a busy machine)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from recsys.data.loading import load_movielens
    from recsys.errors import DataUnavailableError

    try:
        load_movielens(download=False, progress=False)
    except DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"MovieLens 100K unavailable: {err}")
    tmp = tmp_path_factory.mktemp("browser")
    runs = tmp / "runs"
    with app_server(runs, tmp / "server.log") as url:
        yield url, runs


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 1800})
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


def sidebar_link(page, label: str):
    return page.locator("[data-testid='stSidebar']").get_by_role("link", name=label, exact=True)


def test_deep_link_on_fresh_server_gets_the_frame_and_toggles_exclude_seen(server, page):
    # First request of the process, straight to a page: the app's own navigation from the
    # first frame (never a listing of files), the default model trained, ?user=42 honoured.
    url, _ = server
    page.goto(f"{url}/recommendations?user=42")
    sidebar_link(page, "Similar movies").wait_for(timeout=SLOW)
    sidebar = page.locator("[data-testid='stSidebar']")
    for legacy in ("streamlit app", "shared", "train", "recommendations"):
        assert sidebar.get_by_text(legacy, exact=True).count() == 0, legacy
    page.get_by_role("heading", name="Recommendations").wait_for()
    visible(page, "Users with similar taste", timeout=SLOW)  # after the first-launch training
    assert sidebar.get_by_text("Active model").count() == 1
    settle(page)
    picker = page.get_by_label("User (type to search by id, age, occupation)")
    assert picker.input_value().startswith("user 42 ·") or picker.inner_text().startswith(
        "user 42 ·")
    page.get_by_text("Exclude seen").click()
    visible(page, "Seen movies are included")
    settle(page)
    shot(page, "recommendations")


@pytest.mark.parametrize("value", ["[Session expired](https://example.org/login)",
                                   "![x](http://127.0.0.1:9/pixel.png)"])
def test_markdown_in_a_link_is_shown_as_text(server, page, value):
    url, _ = server
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{url}/recommendations?user={urllib.parse.quote(value)}")
    visible(page, "Ignoring the link", timeout=SLOW)
    alert = page.locator("[data-testid='stAlert']").filter(has_text="Ignoring the link").first
    assert alert.locator("a").count() == 0 and alert.locator("img").count() == 0
    assert value.split("]")[0].lstrip("!") in alert.inner_text()  # the text itself is shown
    fetched = [r for r in requested if not r.startswith(url)]
    assert not fetched, fetched  # nothing outside the app was requested (no image, no link)


def test_state_survives_navigation(server, page):
    url, _ = server
    page.goto(f"{url}/recommendations?user=42")
    visible(page, "Users with similar taste", timeout=SLOW)
    settle(page)
    page.get_by_text("cosine", exact=True).click()
    settle(page)
    sidebar_link(page, "Similar movies").click()
    visible(page, "Co-occurrence neighbours")
    settle(page)
    sidebar_link(page, "Recommendations").click()
    visible(page, "Users with similar taste")
    settle(page)
    picker = page.get_by_label("User (type to search by id, age, occupation)")
    assert (picker.input_value() or picker.inner_text()).startswith("user 42 ·")
    assert page.get_by_role("radio", name="cosine").is_checked()
    assert "user=42" in page.url


def test_home_then_link_to_recommendations(server, page):
    url, _ = server
    page.goto(f"{url}/")
    visible(page, "Where to go", timeout=SLOW)
    settle(page)
    visible(page, "The movies of the active model, in 2-D")
    assert page.locator("[data-testid='stSidebar']").get_by_text("Recall@10").count()
    shot(page, "home")
    page.locator("[data-testid='stMain']").get_by_role("link", name="Recommendations").click()
    visible(page, "Users with similar taste")
    assert "/recommendations" in page.url


def test_similar_movies_title_search(server, page):
    url, _ = server
    page.goto(f"{url}/similar_movies")
    visible(page, "Co-occurrence neighbours", timeout=SLOW)
    box = page.get_by_label("Search a title")
    box.fill("the godfather")
    box.press("Enter")
    page.get_by_role("heading", name="Godfather, The (1972)").wait_for()
    settle(page)
    visible(page, "IVF Recall@10")
    shot(page, "similar_movies")


def test_embedding_map_highlight(server, page):
    url, _ = server
    page.goto(f"{url}/embedding_map")
    visible(page, "Why dot and cosine disagree", timeout=SLOW)
    box = page.get_by_label("Highlight titles")
    box.fill("star wars")
    box.press("Enter")
    settle(page)
    visible(page, "search hits")
    shot(page, "embedding_map")


def test_profile_like_a_movie_and_share_it(server, page):
    url, _ = server
    page.goto(f"{url}/profile")
    visible(page, "Recommended for you", timeout=SLOW)
    page.get_by_label("Movies you liked").click()
    page.keyboard.type("Star Wars (1977)")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    visible(page, "content similarity —")
    settle(page)
    visible(page, "PCA of the movie vectors")
    assert "likes=50" in page.url
    shot(page, "profile")


def test_training_while_watching_finishes_and_joins_the_leaderboard(server, page):
    url, _ = server
    page.goto(f"{url}/train")
    visible(page, "Leaderboard", timeout=SLOW)
    settle(page)
    page.get_by_role("spinbutton", name="Epochs", exact=True).fill("3")
    page.get_by_role("button", name="Train", exact=True).click()
    visible(page, "Training loss", timeout=SLOW)  # live curves while the worker trains
    visible(page, "active model (other visitors keep theirs", timeout=SLOW)
    # "Done" is drawn first; the panel's next tick redraws the page with the new run active
    page.wait_for_function("() => location.search.includes('run=mf-als-2')", timeout=SLOW)
    settle(page)
    assert "job=" in page.url
    assert "run=mf-als-2" in page.url  # the new run (<model>-<date>-…) is this visitor's
    shot(page, "train")


def test_reload_during_training_keeps_the_job_and_its_buttons(server, page):
    url, runs = server
    page.goto(f"{url}/train")
    visible(page, "Leaderboard", timeout=SLOW)
    settle(page)
    page.get_by_role("spinbutton", name="Epochs", exact=True).fill("200")
    page.get_by_text("More settings").click()
    page.get_by_role("spinbutton", name="Early-stopping patience", exact=True).fill("0")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_role("button", name="Cancel").wait_for(timeout=SLOW)
    page.reload()
    page.get_by_role("button", name="Stop early, keep the best").wait_for(timeout=SLOW)
    assert page.get_by_role("button", name="Train", exact=True).is_disabled()
    page.get_by_role("button", name="Cancel").click()
    visible(page, "Cancelled: nothing was saved", timeout=SLOW)
    assert not [p for p in runs.iterdir() if ".tmp-" in p.name]


def test_a_damaged_run_beside_good_ones_leaves_every_page_working(server, page):
    url, runs = server
    good = next(p for p in runs.iterdir() if (p / "weights.npz").exists())
    bad = runs / "zz-damaged-run"
    shutil.copytree(good, bad, ignore=shutil.ignore_patterns("projections"))
    data = (bad / "weights.npz").read_bytes()
    (bad / "weights.npz").write_bytes(data[: len(data) // 3])
    try:
        for path, heading in (("", "MovieLens embeddings"), ("recommendations", "Recommendations"),
                              ("similar_movies", "Similar movies"),
                              ("embedding_map", "Embedding map"),
                              ("profile", "Build your profile"), ("train", "Train & evaluate")):
            page.goto(f"{url}/{path}")
            page.get_by_role("heading", name=heading).first.wait_for(timeout=SLOW)
            visible(page, "Skipped 1 damaged run folder", timeout=SLOW)
            settle(page)
            assert page.get_by_text("Traceback").count() == 0, path
            assert page.locator("[data-testid='stException']").count() == 0, path
    finally:
        shutil.rmtree(bad)
