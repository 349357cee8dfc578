"""Refreshes the README's screenshots from a running app, one per page or lesson, in Chromium.

    bash scripts/run.sh &                       # or any running instance
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8501 --out docs/screenshots

Each page gets one real interaction first (a user, a movie, a search, likes, a step, a
slider), so the pictures show the app doing something rather than empty forms, and is scrolled
to the part that carries its lesson. The Train page's curves and norms need two or more runs
of one model that differ in a setting, e.g.

    recsys train --model mf-bpr --epochs 8 --weight-decay 0.003
    recsys train --model mf-bpr --epochs 8 --weight-decay 0.03
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


ONLY: set[str] = set()  # --only: the pictures to retake, else all


def wait(page: Page, text: str, timeout: float = 60_000) -> None:
    page.get_by_text(text).first.wait_for(state="visible", timeout=timeout)


def settle(page: Page) -> None:
    """Waits until Streamlit has finished running the script."""
    page.wait_for_timeout(500)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=120_000)
    page.wait_for_timeout(1500)


def shoot(page: Page, url: str, out: Path, name: str, ready: str, action=None) -> None:
    if ONLY and name not in ONLY:
        return
    page.goto(url)
    wait(page, ready)
    settle(page)
    if action:
        action(page)
        settle(page)
    page.mouse.move(1, 1)  # no hover tooltip or toolbar in the picture
    page.wait_for_timeout(300)
    page.screenshot(path=str(out / f"{name}.png"), full_page=False)
    print(f"wrote {out / name}.png")


def scroll_to(page: Page, text: str, above: int = 0) -> None:
    """Scrolls the main column so the first element showing ``text`` (or matching a CSS
    selector given as ``css=...``) is at the top, ``above`` px of what precedes it showing."""
    target = page.locator(text) if text.startswith("css=") else page.get_by_text(text)
    target.first.evaluate("(e, above) => { e.scrollIntoView({block: 'start'});"
                          " document.querySelector('[data-testid=\"stMain\"]')"
                          "?.scrollBy(0, -above); }", above)
    page.wait_for_timeout(300)


def like_movies(page: Page) -> None:
    box = page.get_by_label("Movies you liked")
    for title in ("Star Wars (1977)", "Toy Story (1995)", "Fargo (1996)"):
        box.click()
        page.keyboard.type(title.split(" (")[0])
        page.get_by_role("option", name=title).first.click()
        page.keyboard.press("Escape")
        settle(page)


def highlight_star_wars(page: Page) -> None:
    box = page.get_by_label("Highlight titles")
    box.fill("star wars")
    box.press("Enter")


def show_leaderboard(page: Page) -> None:
    """Trains the missing baselines (a few seconds) and scrolls to the leaderboard."""
    button = page.get_by_role("button", name="Train baselines")
    if button.count():
        button.first.click()
        page.get_by_text("Training baselines").first.wait_for(state="hidden", timeout=120_000)
        page.get_by_text("popularity on the same protocol").first.wait_for(timeout=120_000)
        settle(page)
    page.get_by_role("heading", name="Leaderboard").evaluate(
        "e => e.scrollIntoView({block: 'start'})")


def next_step(page: Page) -> None:
    """The tour's Next button, from step 1 to step 2 (the dot product)."""
    page.get_by_role("button", name="Next").click()
    wait(page, "Step 2 of")


def show_anatomy(page: Page) -> None:
    scroll_to(page, "Score anatomy: why is this movie on the list?")


def replay_to_middle(page: Page) -> None:
    """Drags the replay's epoch slider to the middle of training."""
    rail = page.locator(".slider-rail-touch-rect").first
    box = rail.bounding_box()
    rail.click(position={"x": box["width"] * 0.4, "y": box["height"] / 2})
    page.wait_for_timeout(800)
    scroll_to(page, "css=[data-testid='stPlotlyChart']", above=90)


def show_axis(page: Page) -> None:
    scroll_to(page, "Axis from (x = 0)")


def popularity_negatives(page: Page) -> None:
    """Switches the sampler to popularity, the lesson's contrast with uniform."""
    page.get_by_text("popularity", exact=True).first.click()
    settle(page)
    scroll_to(page, "Lessons: what the settings do")


def overlay_runs_of_one_model(page: Page) -> None:
    """Keeps only the mf-bpr runs in the overlay (one loss scale)."""
    remove = page.get_by_role("button", name="Remove ")
    for button in remove.all():
        if "mf-bpr" not in (button.get_attribute("aria-label") or ""):
            button.click()
            settle(page)
    scroll_to(page, "Lessons: what the settings do")


def show_lesson(page: Page) -> None:
    scroll_to(page, "Lessons: what the settings do")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--width", type=int, default=1366,
                        help="viewport width in px (the app is laid out for 1,280-1,400)")
    parser.add_argument("--only", default="",
                        help="comma-separated picture names to retake (default: all)")
    args = parser.parse_args()
    ONLY.update(filter(None, args.only.split(",")))
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.url.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 1000})
        shoot(page, f"{base}/", args.out, "home", "Where to go")
        shoot(page, f"{base}/recommendations?user=42", args.out, "recommendations", "History")
        shoot(page, f"{base}/similar_movies?movie=50", args.out, "similar_movies",
              "Star Wars (1977)")
        shoot(page, f"{base}/embedding_map", args.out, "embedding_map", "Embedding map",
              highlight_star_wars)
        shoot(page, f"{base}/profile", args.out, "profile", "Build your profile", like_movies)
        shoot(page, f"{base}/train", args.out, "train", "Leaderboard", show_leaderboard)
        shoot(page, f"{base}/tour?step=1", args.out, "tour", "Step 1 of", next_step)
        shoot(page, f"{base}/recommendations?user=14&movie=50", args.out,
              "recommendations_anatomy", "Score anatomy", show_anatomy)
        shoot(page, f"{base}/embedding_map?view=replay&genre=Horror&movie=50", args.out,
              "map_replay", "snapshots of the", replay_to_middle)
        shoot(page, f"{base}/embedding_map?axis=Children's..Horror&movie=1", args.out,
              "map_axis", "Axis from", show_axis)
        shoot(page, f"{base}/train?view=negatives", args.out, "train_negatives",
              "Where the positives", popularity_negatives)
        shoot(page, f"{base}/train?view=curves", args.out, "train_curves",
              "Training loss and validation", overlay_runs_of_one_model)
        shoot(page, f"{base}/train?view=norms", args.out, "train_norms",
              "Movie vector length against", show_lesson)
        shoot(page, f"{base}/train?view=activity", args.out, "train_activity",
              "Test Recall@10 per user group", show_lesson)
        browser.close()


if __name__ == "__main__":
    main()
