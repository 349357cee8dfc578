"""Refreshes the README's screenshots from a running app, one per page, in Debian Chromium.

    bash scripts/run.sh &                       # or any running instance
    .venv/bin/python scripts/screenshots.py --url http://127.0.0.1:8501 --out docs/screenshots

Each page gets one real interaction first (a user, a movie, a search, likes), so the pictures
show the app doing something rather than empty forms.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def wait(page: Page, text: str, timeout: float = 60_000) -> None:
    page.get_by_text(text).first.wait_for(state="visible", timeout=timeout)


def settle(page: Page) -> None:
    """Waits until Streamlit has finished running the script."""
    page.wait_for_timeout(500)
    page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=120_000)
    page.wait_for_timeout(1500)


def shoot(page: Page, url: str, out: Path, name: str, ready: str, action=None) -> None:
    page.goto(url)
    wait(page, ready)
    settle(page)
    if action:
        action(page)
        settle(page)
    page.screenshot(path=str(out / f"{name}.png"), full_page=False)
    print(f"wrote {out / name}.png")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--width", type=int, default=1366,
                        help="viewport width in px (the app is laid out for 1,280-1,400)")
    args = parser.parse_args()
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
        browser.close()


if __name__ == "__main__":
    main()
