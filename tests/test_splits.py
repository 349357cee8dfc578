import numpy as np
import pandas as pd
import pytest

from recsys.data.interactions import Interactions
from recsys.data.protocol import SplitConfig
from recsys.data.splits import make_split


def user_history(n_pos: int, n_neg: int = 0, user: int = 1) -> list[tuple]:
    rows = [(user, i, 5.0, 100 + i) for i in range(1, n_pos + 1)]
    rows += [(user, 1000 + j, 1.0, 100 + 2 * j) for j in range(n_neg)]
    return rows


def split_of(rows, **kw):
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return make_split(Interactions.from_frame(df), SplitConfig(**kw))


def test_temporal_split_holds_out_each_users_latest_positives():
    s = split_of(user_history(10), test_fraction=0.2, valid_fraction=0.25)
    items = lambda x: sorted(x.item_ids[x.item_index].tolist())  # noqa: E731
    assert items(s.test_pos) == [9, 10]
    assert items(s.valid_pos) == [7, 8]
    assert items(s.train_pos) == [1, 2, 3, 4, 5, 6]


def test_at_least_one_test_item_and_single_positive_users_stay_in_train():
    s = split_of(user_history(3) + user_history(1, user=2), test_fraction=0.01,
                 valid_fraction=0.0)
    test_users = s.test_pos.user_ids[s.test_pos.user_index].tolist()
    assert test_users == [1]
    assert s.counts()["train_positives"] == 3


def test_non_positive_ratings_follow_the_time_cutoffs():
    s = split_of(user_history(10, n_neg=10), test_fraction=0.2, valid_fraction=0.0)
    cutoff = s.test_pos.timestamps.min()
    assert (s.train.timestamps < cutoff).all()
    assert (s.test.timestamps >= cutoff).all()


def test_random_split_is_seeded_disjoint_and_sized():
    rows = [(u, i, 5.0, u * 100 + i) for u in range(1, 21) for i in range(1, 21)]
    a = split_of(rows, split="random", split_seed=3)
    b = split_of(rows, split="random", split_seed=3)
    c = split_of(rows, split="random", split_seed=4)
    assert np.array_equal(a.test_pos.keys(), b.test_pos.keys())
    assert not np.array_equal(a.test_pos.keys(), c.test_pos.keys())
    assert len(a.test_pos) == 80
    assert not np.intersect1d(a.train.keys(), a.test.keys()).size


def test_fit_parts_hold_no_test_event_and_concat_folds_valid_into_train():
    s = split_of(user_history(10))
    train, valid = s.fit_parts()
    merged = train.concat(valid)
    assert len(merged.positives) == len(s.train_pos) + len(s.valid_pos)
    assert len(merged.ratings) == len(s.train) + len(s.valid)
    assert np.array_equal(merged.positives.keys(), s.seen_at_test.keys())
    for part in (train, valid, merged):
        assert not np.intersect1d(part.ratings.keys(), s.test.keys()).size


def test_bad_threshold_raises():
    with pytest.raises(ValueError, match="positive threshold"):
        split_of(user_history(3), threshold=6.0)


def test_real_temporal_split_counts(movielens):
    from recsys.storage.runs import prepare_split

    s = prepare_split(movielens)
    c = s.counts()
    assert c["train_positives"] + c["valid_positives"] + c["test_positives"] == int(
        (movielens.ratings["rating"] >= 4).sum())
    assert c["train_ratings"] + c["valid_ratings"] + c["test_ratings"] == 100_000
    assert c["users_with_test"] > 900
