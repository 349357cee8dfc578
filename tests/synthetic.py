"""Synthetic MovieLens-shaped data with known answers, shared by the tests."""

import numpy as np
import pandas as pd

from recsys.data.loading import MovieLens
from recsys.data.protocol import SplitConfig
from recsys.models.config import TrainConfig
from recsys.serving import catalog as serving
from recsys.storage.runs import load_run, train_run

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


N_PER_BLOCK_USERS, N_PER_BLOCK_ITEMS = 20, 10


def make_world(seed: int = 0) -> MovieLens:
    """Users 1-20 like movies 1-10 (sci-fi), users 21-40 like movies 11-20 (romance); each
    user rates 8 of their block's 10 movies 5 stars and 2 of the other block 1 star. Movies
    21-22 are two "Star Trek" films (for ambiguous titles), rated by nobody."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, 2 * N_PER_BLOCK_USERS + 1):
        block = 0 if user <= N_PER_BLOCK_USERS else 1
        own = rng.choice(N_PER_BLOCK_ITEMS, 8, replace=False) + 1 + block * N_PER_BLOCK_ITEMS
        other = rng.choice(N_PER_BLOCK_ITEMS, 2, replace=False) + 1 + (1 - block) * 10
        items = np.concatenate([own, other])
        stars = np.r_[np.full(8, 5.0), np.full(2, 1.0)]
        order = rng.permutation(len(items))
        for t, j in enumerate(order):
            rows.append((user, int(items[j]), stars[j], 1_000_000 + 100 * user + t))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    ratings = ratings.astype({"rating": "float32"})
    titles = ([f"Alpha Space {i} (199{i % 10})" for i in range(1, 11)]
              + [f"Beta Love {i} (198{i % 10})" for i in range(11, 21)]
              + ["Star Trek: The Motion Picture (1979)", "Star Trek II (1982)"])
    movies = pd.DataFrame({
        "item_id": np.arange(1, 23),
        "title": titles,
        "year": pd.array([int(t[-5:-1]) for t in titles], dtype="Int64"),
        "genres": ["Sci-Fi|Action"] * 10 + ["Romance|Drama"] * 10 + ["Sci-Fi"] * 2,
    })
    users = pd.DataFrame({"user_id": np.arange(1, 41)})
    return MovieLens(ratings, movies, users, "synthetic", "test")


def block_of_item(item_id) -> int:
    return 0 if item_id <= N_PER_BLOCK_ITEMS else 1 if item_id <= 20 else 2


def block_of_user(user_id) -> int:
    return 0 if user_id <= N_PER_BLOCK_USERS else 1


def fit(ml, tmp_path, model: str, **extra):
    config = TrainConfig(model=model, dim=4, epochs=30, refit=False, threads=1, patience=0,
                         batch_size=64, lr=0.05, **extra)
    train_run(ml, SplitConfig(), config, tmp_path / model)
    return serving.Catalog.build(load_run(tmp_path / model), ml)
