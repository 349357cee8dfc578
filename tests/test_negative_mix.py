"""Negative samples by popularity decile, against a slow count on synthetic data."""

import numpy as np
import pandas as pd

from recsys.interactions import Interactions
from recsys.negative_mix import negatives_by_decile, popularity_deciles


def skewed_positives(n_users=200, n_items=100, seed=0) -> Interactions:
    """Item i is liked with probability falling with i: a long tail like MovieLens."""
    rng = np.random.default_rng(seed)
    likes = rng.random((n_users, n_items)) < 0.6 / (1 + np.arange(n_items) / 5)
    users, items = np.nonzero(likes)
    return Interactions.from_frame(pd.DataFrame({
        "user_id": users + 1, "item_id": items + 1, "rating": 5.0,
        "timestamp": np.arange(len(users))}))


def test_deciles_are_equal_sized_and_ordered_by_popularity():
    counts = np.array([5, 50, 0, 7, 7, 100, 1, 2, 3, 4, 9, 8, 6, 30, 20, 10, 11, 12, 13, 14])
    deciles = popularity_deciles(counts)
    assert np.bincount(deciles)[1:].tolist() == [2] * 10
    assert set(np.flatnonzero(deciles == 1)) == {1, 5}
    for d in range(1, 10):  # every movie of a decile is at least as popular as the next's
        assert counts[deciles == d].min() >= counts[deciles == d + 1].max()


def test_uniform_negatives_sit_in_the_tail_popularity_ones_follow_the_positives():
    positives = skewed_positives()
    mix = negatives_by_decile(positives, {"uniform": None, "popularity": 1.0})
    assert mix["decile"].tolist() == list(range(1, 11))
    for column in ("positives", "uniform", "popularity"):
        assert abs(mix[column].sum() - 1) < 1e-12
    # A slow reference for the positives' column.
    deciles = popularity_deciles(positives.item_counts())
    slow = [np.mean([deciles[i] == d for i in positives.item_index]) for d in range(1, 11)]
    assert np.allclose(mix["positives"], slow)
    assert mix["positives"].iloc[0] > 0.3  # the head holds many of the likes
    # Uniform draws avoid the user's positives, which are mostly head movies: the head gets
    # less than its 10% share; popularity^1 draws give it far more.
    assert mix["uniform"].iloc[0] < 0.1 < mix["popularity"].iloc[0]
    assert mix["popularity"].iloc[0] > 2 * mix["uniform"].iloc[0]
