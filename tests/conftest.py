"""Shared fixtures: small synthetic data with known structure, and the real ML-100K if present."""

from __future__ import annotations

import pytest

from recsys.config import SplitConfig
from recsys.interactions import Interactions
from recsys.splits import make_split
from tests.synthetic import block_ratings


@pytest.fixture
def block_split():
    events = Interactions.from_frame(block_ratings())
    return make_split(events, SplitConfig(test_fraction=0.25, valid_fraction=0.2))


