"""What every AppTest file shares: the app's entry point, a visitor opening a page, waiting on
fragments, and serving a folder of runs. Import it after the module's MovieLens skip (it
imports Streamlit's test harness, which is slow)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = "../streamlit_app.py"


@contextlib.contextmanager
def runs_served(runs_dir: Path) -> Iterator[Path]:
    """The app reads its runs from ``runs_dir`` (``RECSYS_RUNS_DIR``) while this is open."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSYS_RUNS_DIR", str(runs_dir))
        yield runs_dir


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(path: str, **query: str) -> AppTest:
    """A new visitor opening ``path`` (a deep link, with ``query`` in the URL)."""
    at = AppTest.from_file(APP, default_timeout=120)
    for name, value in query.items():
        at.query_params[name] = value
    if path != "streamlit_app.py":
        at.switch_page(path)
    return ok(at.run())


def poll(at: AppTest, done, timeout: float = 120.0) -> AppTest:
    """Reruns the app (AppTest does not run fragment timers) until ``done(at)``."""
    deadline = time.time() + timeout
    while not done(at):
        assert time.time() < deadline, "timed out waiting for the app"
        time.sleep(0.5)
        ok(at.run())
    return at
