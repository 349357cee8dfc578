"""When an element was first drawn in Chromium, timed inside the page.

Playwright's ``locator.wait_for`` checks its condition with a back-off (0, 20, 50, 100, 100 ms,
then every 500 ms: ``retryWithProgressAndBackoff`` in Playwright 1.65's driver). Anything that
takes more than ~0.3 s to appear is therefore seen by the benchmark up to 0.5 s after Chromium
drew it: a 1.2 s heading could be reported as 1.7 s. Seen on the Train page (Dec 7 2026): the
"Done:" box was in the page 0.35-0.75 s before ``wait_for`` returned.

So the benchmarks watch in the page itself: an init script installs a ``MutationObserver``
that, after every change of the document, checks each watched element (a CSS selector and
optionally a text pattern) and records, the first time one is on screen (attached, with a
non-empty box, not ``visibility: hidden`` — Playwright's "visible"), the time of that change
and the time of the next frame (a ``requestAnimationFrame`` callback, then a task after it:
the frame that shows the element has been drawn). Playwright's ``wait_for`` stays as the
condition to wait on; the time reported is the page's.

    context.add_init_script(watch_script({"done": ("[data-testid='stAlert']", "Done:")}))
    ...
    start = time.time(); button.click(); locator.wait_for(); seconds = drawn(page, "done") - start

Times are wall-clock seconds (``performance.timeOrigin + performance.now()``, the same clock
as Python's ``time.time()`` on the same machine, to a few ms). Works with both Playwright APIs:
the sync functions take a sync ``Page``, the ``async_`` ones an async ``Page``.
"""

from __future__ import annotations

import json
from typing import Any

_SCRIPT = """
(() => {
  const watches = %s;
  const marks = {};
  window.__paintMarks = marks;
  const now = () => (performance.timeOrigin + performance.now()) / 1000;
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
  };
  const check = () => {
    for (const [name, [selector, pattern]] of Object.entries(watches)) {
      if (marks[name]) continue;
      const re = pattern === null ? null : new RegExp(pattern);
      for (const el of document.querySelectorAll(selector)) {
        if ((re === null || re.test(el.textContent || "")) && visible(el)) {
          const mark = {inserted: now(), drawn: null};
          marks[name] = mark;
          requestAnimationFrame(() => setTimeout(() => { mark.drawn = now(); }, 0));
          break;
        }
      }
    }
  };
  window.__paintReset = (names) => { for (const name of names) delete marks[name]; check(); };
  const start = () => {
    new MutationObserver(check).observe(document, {childList: true, subtree: true,
                                                   characterData: true});
    check();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
"""


def watch_script(watches: dict[str, tuple[str, str | None]]) -> str:
    """The init script (``context.add_init_script``) watching ``{name: (css selector, text
    regular expression or None)}`` in every page of the context."""
    return _SCRIPT % json.dumps({name: [css, text] for name, (css, text) in watches.items()})


_READ = "(name) => (window.__paintMarks || {})[name] || null"
_RESET = "(names) => window.__paintReset && window.__paintReset(names)"


def _drawn(mark: dict[str, Any] | None) -> float | None:
    if not mark:
        return None
    return mark["drawn"] if mark["drawn"] is not None else mark["inserted"]


def drawn(page, name: str, wait_ms: int = 200) -> float | None:
    """Wall-clock time the watched element ``name`` was first drawn (its next frame; its
    insertion if that frame has not come within ``wait_ms``), or None if never seen."""
    mark = page.evaluate(_READ, name)
    if mark and mark["drawn"] is None:
        page.wait_for_timeout(wait_ms)
        mark = page.evaluate(_READ, name)
    return _drawn(mark)


def reset(page, *names: str) -> None:
    """Forget ``names`` so their next appearance is timed (in the same document, e.g. before a
    page switch inside the app). One already on screen is timed again at once."""
    page.evaluate(_RESET, list(names))


async def async_drawn(page, name: str, wait_ms: int = 200) -> float | None:
    """:func:`drawn` for Playwright's async API."""
    mark = await page.evaluate(_READ, name)
    if mark and mark["drawn"] is None:
        await page.wait_for_timeout(wait_ms)
        mark = await page.evaluate(_READ, name)
    return _drawn(mark)
