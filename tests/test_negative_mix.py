"""The negative-sampling lesson's numbers: deciles, the sampler's distribution, and a real
draw of recsys.data.sampling against it, on synthetic data with a long-tailed popularity."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.interactions import Interactions
from recsys.lessons import negative_mix as nm


def long_tail(n_users: int = 400, n_items: int = 300, per_user: int = 8, seed: int = 0):
    """Users who each like ``per_user`` items drawn with Zipf-like popularity: sparse enough
    that the sampler's redraws of a user's own positives are rare."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1)
    rows = [(u, int(i), 5.0, t) for u in range(n_users)
            for t, i in enumerate(rng.choice(n_items, per_user, replace=False, p=p / p.sum()))]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Interactions.from_frame(frame, item_ids=np.arange(n_items))


def test_deciles_hold_a_tenth_of_the_items_each_and_follow_popularity():
    counts = np.random.default_rng(1).poisson(3.0, size=95)
    deciles = nm.popularity_deciles(counts)
    sizes = np.bincount(deciles, minlength=10)
    assert sizes.sum() == 95 and sizes.max() - sizes.min() <= 1
    more_popular = counts[:, None] < counts[None, :]
    assert (deciles[:, None] <= deciles[None, :])[more_popular].all()


def test_popularity_sampling_with_alpha_one_is_proportional_to_counts():
    counts = np.array([1, 2, 3, 10, 84])
    p = nm.sampling_probabilities(counts, "popularity", 1.0)
    np.testing.assert_allclose(p, counts / counts.sum())
    np.testing.assert_allclose(nm.sampling_probabilities(counts, "popularity", 0.0), 0.2)
    np.testing.assert_allclose(nm.sampling_probabilities(counts, "uniform", 0.75), 0.2)
    # alpha 0.5 flattens: the most popular item's share falls, the least popular's rises
    half = nm.sampling_probabilities(counts, "popularity", 0.5)
    assert half[-1] < p[-1] and half[0] > p[0]
    with pytest.raises(ValueError, match="neg_sampling"):
        nm.sampling_probabilities(counts, "hard", 1.0)


@pytest.mark.parametrize("sampling, alpha", [("uniform", 0.75), ("popularity", 1.0),
                                             ("popularity", 0.5)])
def test_a_real_draw_matches_the_distribution_the_sampler_implements(sampling, alpha):
    pos = long_tail()
    mix = nm.negative_mix(pos, 4, sampling, alpha, seed=3)
    assert list(mix["decile"]) == list(range(1, 11))
    for column in ("positives", "negatives", "expected"):
        assert mix[column].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(mix["negatives"], mix["expected"], atol=0.015)


def test_positives_are_counted_by_the_decile_of_their_movie():
    pos = long_tail()
    mix = nm.negative_mix(pos, 1, "uniform", 0.0)
    deciles = nm.popularity_deciles(pos.item_counts())
    expected = np.bincount(deciles[pos.item_index], minlength=10) / len(pos)
    np.testing.assert_allclose(mix["positives"], expected)
    assert mix["positives"].iloc[-1] > 0.4  # a long tail: the top tenth holds most positives
    assert mix["ratings"].iloc[-1].split("–")[-1] == str(pos.item_counts().max())


def test_uniform_negatives_miss_the_head_and_popularity_negatives_follow_it():
    pos = long_tail()
    uniform = nm.negative_mix(pos, 4, "uniform", 0.75)
    popular = nm.negative_mix(pos, 4, "popularity", 1.0)
    assert uniform["negatives"].iloc[-1] < 0.15 < popular["negatives"].iloc[-1]
    assert "popularity" in nm.negatives_lesson(uniform)
    assert "pushed down" in nm.negatives_lesson(popular)


def test_the_same_seed_draws_the_same_mix():
    pos = long_tail()
    a = nm.negative_mix(pos, 2, "popularity", 0.75, seed=7)
    b = nm.negative_mix(pos, 2, "popularity", 0.75, seed=7)
    pd.testing.assert_frame_equal(a, b)


def test_expected_negatives_leave_out_each_users_own_positives():
    # user 0 liked item 0, user 1 liked items 0 and 1; uniform over 4 items
    frame = pd.DataFrame({"user_id": [0, 1, 1], "item_id": [0, 0, 1], "rating": 5.0,
                          "timestamp": [1, 2, 3]})
    pos = Interactions.from_frame(frame, item_ids=np.arange(4))
    expected = nm.expected_negatives(pos, np.full(4, 0.25))
    # row of user 0 (1/3): items 1-3 at 1/3 each; rows of user 1 (2/3): items 2-3 at 1/2 each
    np.testing.assert_allclose(expected, [0, 1 / 9, 1 / 9 + 1 / 3, 1 / 9 + 1 / 3])
