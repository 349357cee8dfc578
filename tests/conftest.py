"""Shared fixtures: small synthetic data with known structure, and the real ML-100K if present."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.config import SplitConfig
from recsys.data import DataUnavailableError, MovieLens, load_movielens
from recsys.interactions import Interactions
from recsys.splits import make_split

USERS_PER_BLOCK = 30


def block_ratings(
    n_blocks: int = 2,
    users_per_block: int = USERS_PER_BLOCK,
    items_per_block: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Users of block b like (rate 5) most items of block b and rate one other item 2.

    The right answer is known: a user's best unseen items are the rest of their own block.
    """
    rng = np.random.default_rng(seed)
    rows = []
    t = 1_000_000
    for b in range(n_blocks):
        for u in range(users_per_block):
            user = b * users_per_block + u + 1
            liked = rng.permutation(items_per_block)[: items_per_block - 2]
            items = b * items_per_block + 1 + liked
            for item in items:
                t += 1
                rows.append((user, int(item), 5.0, t))
            other = ((b + 1) % n_blocks) * items_per_block + 1
            rows.append((user, other, 2.0, t + 1))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture
def block_split():
    events = Interactions.from_frame(block_ratings())
    return make_split(events, SplitConfig(test_fraction=0.25, valid_fraction=0.2))


def tiny_movielens(n_users: int = 40, n_items: int = 30, seed: int = 1) -> MovieLens:
    """A MovieLens-shaped dataset of block structure, for CLI and runs tests."""
    ratings = block_ratings(n_blocks=2, users_per_block=n_users // 2, items_per_block=n_items // 2,
                            seed=seed)
    items = np.arange(1, n_items + 1)
    movies = pd.DataFrame({
        "item_id": items.astype(np.int64),
        "title": [f"Movie {i} ({1980 + i})" for i in items],
        "year": pd.array([1980 + i for i in items], dtype="Int64"),
        "genres": ["Drama" if i <= n_items // 2 else "Comedy" for i in items],
    })
    users = pd.DataFrame({
        "user_id": np.arange(1, n_users + 1, dtype=np.int64),
        "age": pd.array([30] * n_users, dtype="Int64"),
        "gender": ["F"] * n_users,
        "occupation": ["writer"] * n_users,
    })
    return MovieLens(ratings, movies, users, name="ml-100k", source="tests")


@pytest.fixture(scope="session")
def movielens() -> MovieLens:
    """The real MovieLens 100K (from the cache, a local folder or the recbole wheel)."""
    try:
        return load_movielens(download=True, progress=False)
    except DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"MovieLens 100K unavailable: {err}")
