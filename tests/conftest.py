"""Shared fixtures: small synthetic data with known structure, and the real ML-100K if present."""

from __future__ import annotations

import os

import pytest

from recsys.data.interactions import Interactions
from recsys.data.loading import MovieLens, load_movielens
from recsys.data.protocol import SplitConfig
from recsys.data.splits import make_split
from recsys.errors import DataUnavailableError
from tests.synthetic import block_ratings

# Job managers keep a warm standby worker (recsys/jobs/standby.py): in tests only where a test
# asks for one (tests/test_warm_worker.py, the Train page's warm test), not in every app the
# suite opens. Set before any test runs, so servers the tests start inherit it too.
os.environ.setdefault("RECSYS_WARM_WORKER", "0")


@pytest.fixture
def block_split():
    events = Interactions.from_frame(block_ratings())
    return make_split(events, SplitConfig(test_fraction=0.25, valid_fraction=0.2))



@pytest.fixture(scope="session")
def movielens() -> MovieLens:
    """The real MovieLens 100K (from the cache, a local folder or the recbole wheel)."""
    try:
        return load_movielens(download=True, progress=False)
    except DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"MovieLens 100K unavailable: {err}")


@pytest.fixture(scope="module")
def browser():
    """Debian Chromium through Playwright's sync API, one per test module that asks for it
    (the modules skip themselves where Chromium or Playwright is missing)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, FLAGS

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()
