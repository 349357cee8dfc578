"""Train / validation / test splits: temporal per user (default) or seeded random."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recsys.data.interactions import Interactions
from recsys.data.protocol import SplitConfig
from recsys.errors import BadInputError

TRAIN, VALID, TEST = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Part:
    """One part of a split as a model receives it: every rated event (mf-mse learns stars)
    and the positives among them (the implicit models)."""

    ratings: Interactions
    positives: Interactions

    def concat(self, other: Part) -> Part:
        """This part followed by ``other``: train + validation for the final refit."""
        return Part(self.ratings.concat(other.ratings), self.positives.concat(other.positives))

    def __len__(self) -> int:
        return len(self.positives)


@dataclass(frozen=True, eq=False)
class Split:
    """The three parts of one protocol, explicit (all ratings) and implicit (positives).

    Every rated event lands in exactly one part, so the explicit model (mf-mse) and the implicit
    ones never see each other's held-out events.
    """

    config: SplitConfig
    train: Interactions
    valid: Interactions
    test: Interactions
    train_pos: Interactions
    valid_pos: Interactions
    test_pos: Interactions

    @cached_property
    def seen_at_test(self) -> Interactions:
        """Positives a user had before the test period: excluded from test rankings, and
        what serving treats as a user's known positives."""
        return self.train_pos.concat(self.valid_pos)

    @cached_property
    def train_part(self) -> Part:
        return Part(self.train, self.train_pos)

    @cached_property
    def valid_part(self) -> Part:
        return Part(self.valid, self.valid_pos)

    @cached_property
    def test_part(self) -> Part:
        return Part(self.test, self.test_pos)

    def fit_parts(self) -> tuple[Part, Part]:
        """(train, validation): all a model is given to fit; the test part never is."""
        return self.train_part, self.valid_part

    def counts(self) -> dict[str, int]:
        return {
            "train_positives": len(self.train_pos),
            "valid_positives": len(self.valid_pos),
            "test_positives": len(self.test_pos),
            "train_ratings": len(self.train),
            "valid_ratings": len(self.valid),
            "test_ratings": len(self.test),
            "users_with_test": int(np.count_nonzero(self.test_pos.user_counts())),
        }

    def describe(self) -> str:
        c = self.counts()
        return (
            f"{self.config.describe()}: {c['train_positives']:,} train / "
            f"{c['valid_positives']:,} valid / {c['test_positives']:,} test positives, "
            f"{c['users_with_test']:,} users with test items"
        )

    def __repr__(self) -> str:
        return f"Split({self.describe()})"


def make_split(events: Interactions, config: SplitConfig | None = None) -> Split:
    """Assigns every event to train, validation or test according to ``config``."""
    config = config or SplitConfig()
    positive = events.ratings >= config.threshold
    if not positive.any():
        raise BadInputError(
            f"no rating reaches the positive threshold {config.threshold:g}: lower it"
        )
    if config.split == "temporal":
        part = _temporal_parts(events, positive, config)
    else:
        part = _random_parts(events, positive, config)
    parts = [events.subset(part == p) for p in (TRAIN, VALID, TEST)]
    split = Split(config, *parts, *(p.positives(config.threshold) for p in parts))
    check_no_overlap(split.train, split.test)
    check_no_overlap(split.valid, split.test)
    return split


def check_no_overlap(a: Interactions, b: Interactions) -> None:
    """Raises if a (user, item) pair is in both sets: a leak that inflates every metric."""
    shared = np.intersect1d(a.keys(), b.keys())
    if len(shared):
        raise RuntimeError(f"{len(shared)} (user, item) pairs are in both train and test")


def _temporal_parts(events: Interactions, positive: np.ndarray, config: SplitConfig) -> np.ndarray:
    """Each user's latest positives go to test, the ones before them to validation.

    Non-positive ratings follow the same per-user time cut-offs, so nothing rated after a
    user's first test positive is used for training.
    """
    rng = np.random.default_rng(config.split_seed)
    tiebreak = rng.permutation(len(events))
    pos_idx = np.flatnonzero(positive)
    order = pos_idx[
        np.lexsort((tiebreak[pos_idx], events.timestamps[pos_idx], events.user_index[pos_idx]))
    ]
    users = events.user_index[order]
    n_pos = np.bincount(users, minlength=events.n_users)
    rank = _rank_within_groups(users)
    n_test = _holdout_sizes(n_pos, config.test_fraction)
    n_valid = _holdout_sizes(n_pos - n_test, config.valid_fraction)
    remaining = n_pos[users] - rank  # 1 for each user's latest positive
    in_test = remaining <= n_test[users]
    in_held_out = remaining <= n_test[users] + n_valid[users]
    part = np.full(len(events), TRAIN, np.int8)
    part[order[in_held_out]] = VALID
    part[order[in_test]] = TEST

    # Time cut-offs per user: the timestamp of the first test / held-out positive, read off
    # the time-sorted order (the first flagged event of each user's run).
    sorted_times = events.timestamps[order]
    cut_test = _first_time_per_user(users, sorted_times, in_test, events.n_users)
    cut_valid = _first_time_per_user(users, sorted_times, in_held_out, events.n_users)
    neg = ~positive
    ts, u = events.timestamps[neg], events.user_index[neg]
    part[neg] = np.where(ts >= cut_test[u], TEST, np.where(ts >= cut_valid[u], VALID, TRAIN))
    return part


def _random_parts(events: Interactions, positive: np.ndarray, config: SplitConfig) -> np.ndarray:
    """A seeded shuffle: test_fraction of all positives to test, then valid_fraction of the
    rest to validation; non-positive ratings are split in the same proportions."""
    rng = np.random.default_rng(config.split_seed)
    part = np.full(len(events), TRAIN, np.int8)
    for mask in (positive, ~positive):
        idx = rng.permutation(np.flatnonzero(mask))
        n_test = int(round(config.test_fraction * len(idx)))
        n_valid = int(round(config.valid_fraction * (len(idx) - n_test)))
        part[idx[:n_test]] = TEST
        part[idx[n_test : n_test + n_valid]] = VALID
    return part


def _first_time_per_user(users: np.ndarray, times: np.ndarray, flagged: np.ndarray,
                         n_users: int) -> np.ndarray:
    """Per user, the time of their first flagged event in a user-then-time sorted array
    (int64 max when none)."""
    cut = np.full(n_users, np.iinfo(np.int64).max)
    idx = np.flatnonzero(flagged)
    first_users, first_at = np.unique(users[idx], return_index=True)
    cut[first_users] = times[idx[first_at]]
    return cut


def _rank_within_groups(sorted_groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values of an already grouped array."""
    n = len(sorted_groups)
    if n == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    run_lengths = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, run_lengths)


def _holdout_sizes(n: np.ndarray, fraction: float) -> np.ndarray:
    """round(fraction * n), at least one, always leaving one event behind (0 if n < 2)."""
    if fraction <= 0:
        return np.zeros_like(n)
    size = np.maximum(1, np.rint(fraction * n).astype(np.int64))
    return np.where(n >= 2, np.minimum(size, n - 1), 0)
