"""The Train page's lessons in Debian Chromium: each ``?view=`` link opens its lesson with a
drawn chart and no exception, and the lesson controls answer (warm timings
printed with ``-s``). Screenshots of the lessons go to ``tests/artifacts/train_<view>.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, FLAGS, app_server

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LESSONS = "Lessons: what the settings do"

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin"),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    from recsys.data.loading import load_movielens
    from recsys.data.protocol import SplitConfig
    from recsys.errors import DataUnavailableError
    from recsys.models.config import TrainConfig
    from recsys.storage.runs import pin_run, prepare_split, train_run

    try:
        ml = load_movielens(download=False, progress=False)
    except DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"MovieLens 100K unavailable: {err}")
    runs = tmp_path_factory.mktemp("runs")
    split = prepare_split(ml, SplitConfig())
    fast = dict(epochs=5, refit=False)
    train_run(ml, SplitConfig(), TrainConfig(**fast), runs / "bpr-uniform", split=split)
    train_run(ml, SplitConfig(), TrainConfig(neg_sampling="popularity", **fast),
              runs / "bpr-popularity", split=split)
    train_run(ml, SplitConfig(), TrainConfig(weight_decay=0.03, **fast), runs / "bpr-wd0.03",
              split=split)
    train_run(ml, SplitConfig(), TrainConfig.for_model("popularity"), runs / "popularity",
              split=split)
    pin_run(runs, "bpr-uniform")
    with app_server(runs, runs.parent / "server.log") as address:
        yield address


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        tab = browser.new_page(viewport={"width": 1366, "height": 2600})
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


def settle(page) -> None:
    """Waits until the script run has finished and no element is stale."""
    page.wait_for_timeout(100)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=120_000)
    page.wait_for_function(
        "document.querySelectorAll('[data-stale=\"true\"]').length === 0", timeout=120_000)


def pick(page, sampling: str) -> None:
    page.locator("[data-testid='stRadio']").get_by_text(sampling, exact=True).click()


def timed(page, action) -> float:
    start = time.perf_counter()
    action()
    settle(page)
    return time.perf_counter() - start


def screenshot(page, name: str) -> None:
    """The lessons, from their heading to the leaderboard below them."""
    for chart in page.locator("[data-testid='stTabs'] .js-plotly-plot").all():
        chart.locator(".main-svg").first.wait_for(state="visible")
    page.wait_for_timeout(1000)
    top = page.get_by_text(LESSONS).first.bounding_box()
    bottom = page.get_by_role("heading", name="Leaderboard").first.bounding_box()
    main = page.locator("[data-testid='stMain']").bounding_box()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"),
                    clip={"x": main["x"], "y": top["y"] - 10, "width": main["width"],
                          "height": bottom["y"] - top["y"] - 30})


@pytest.mark.parametrize("view, tab, text", [
    ("negatives", "Negative sampling", "learns to tell popular from obscure"),
    ("curves", "Training curves", "Training loss and validation Recall@10"),
    ("norms", "Vector length vs popularity", "gradient steps"),
    ("activity", "Who the model serves", "Best per group"),
])
def test_a_view_link_opens_its_lesson(url, page, view, tab, text):
    page.goto(f"{url}/train?view={view}")
    page.get_by_text(LESSONS).first.wait_for()
    settle(page)
    assert page.get_by_role("tab", name=tab, selected=True).is_visible()
    page.get_by_text(text).first.wait_for()
    assert page.locator("[data-testid='stException']").count() == 0
    page.locator("[data-testid='stTabs'] .js-plotly-plot .main-svg").first.wait_for()
    screenshot(page, f"train_{view}")


def test_lesson_controls_answer_and_print_their_warm_times(url, page):
    page.goto(f"{url}/train?view=negatives")
    page.get_by_text(LESSONS).first.wait_for()
    settle(page)
    for name in ("Training curves", "Vector length vs popularity", "Who the model serves",
                 "Negative sampling"):  # warm the caches
        timed(page, lambda n=name: page.get_by_role("tab", name=n).click())
    for sampling in ("popularity", "uniform"):
        timed(page, lambda s=sampling: pick(page, s))
    seconds: dict[str, list[float]] = {}
    for _ in range(3):  # median of 3: this machine's load varies
        for sampling in ("popularity", "uniform"):
            seconds.setdefault(f"negatives: {sampling}", []).append(timed(
                page, lambda s=sampling: pick(page, s)))
        for name in ("Training curves", "Vector length vs popularity", "Who the model serves",
                     "Negative sampling"):
            seconds.setdefault(f"tab: {name}", []).append(timed(
                page, lambda n=name: page.get_by_role("tab", name=n).click()))
    for name, values in seconds.items():
        print(f"{name}: median {sorted(values)[1]:.2f} s ({', '.join(f'{v:.2f}' for v in values)})")
    assert page.locator("[data-testid='stException']").count() == 0
