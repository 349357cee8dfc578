"""One validated container for user-item events and the raw-id <-> index mapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.errors import BadInputError


@dataclass(frozen=True, eq=False)
class Interactions:
    """User-item events with their ratings and times, indexed 0..n-1 on both sides.

    ``user_ids[u]`` / ``item_ids[i]`` give the raw MovieLens ids of index ``u`` / ``i``; the
    mapping is shared by every subset (train, test, positives) so indices always agree. Never
    assume ``item_index == movie_id - 1``.

    Attributes
    ----------
    user_index, item_index : int64 arrays, shape (n_events,)
    ratings : float32 array, shape (n_events,)
    timestamps : int64 array, shape (n_events,), seconds since the epoch
    user_ids, item_ids : int64 arrays, shape (n_users,), (n_items,), sorted ascending
    """

    user_index: np.ndarray
    item_index: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __post_init__(self) -> None:
        _check(self)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_frame(
        cls,
        ratings: pd.DataFrame,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
    ) -> Interactions:
        """Builds from a ``user_id, item_id, rating, timestamp`` frame of raw ids.

        The catalogue defaults to the ids present; pass ``item_ids`` (e.g. every movie in the
        movies table) to keep unrated items in the index. Duplicate (user, item) events keep
        the latest one.
        """
        missing = {"user_id", "item_id", "rating", "timestamp"} - set(ratings.columns)
        if missing:
            raise BadInputError(f"ratings table lacks columns {sorted(missing)}")
        if ratings[["user_id", "item_id", "rating", "timestamp"]].isna().any().any():
            raise BadInputError("ratings table has missing values (NaN): drop or fill them first")
        frame = ratings.sort_values("timestamp", kind="stable").drop_duplicates(
            ["user_id", "item_id"], keep="last"
        )
        raw_users = frame["user_id"].to_numpy(np.int64)
        raw_items = frame["item_id"].to_numpy(np.int64)
        user_ids = np.unique(raw_users) if user_ids is None else np.asarray(user_ids, np.int64)
        item_ids = np.unique(raw_items) if item_ids is None else np.asarray(item_ids, np.int64)
        return cls(
            user_index=_lookup(user_ids, raw_users, "user"),
            item_index=_lookup(item_ids, raw_items, "item"),
            ratings=frame["rating"].to_numpy(np.float32),
            timestamps=frame["timestamp"].to_numpy(np.int64),
            user_ids=user_ids,
            item_ids=item_ids,
        )

    # ----------------------------------------------------------------- views
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user_index)

    def __repr__(self) -> str:
        density = len(self) / max(1, self.n_users * self.n_items)
        return (
            f"Interactions({len(self):,} events, {self.n_users:,} users x {self.n_items:,} items,"
            f" density {density:.2%})"
        )

    def subset(self, mask: np.ndarray) -> Interactions:
        """The events where ``mask`` is true, keeping the same id mapping."""
        return Interactions(
            self.user_index[mask],
            self.item_index[mask],
            self.ratings[mask],
            self.timestamps[mask],
            self.user_ids,
            self.item_ids,
        )

    def positives(self, threshold: float) -> Interactions:
        """Implicit feedback: the events rated at least ``threshold`` (e.g. 4 stars)."""
        return self.subset(self.ratings >= threshold)

    def to_csr(self, values: str = "ones") -> sp.csr_matrix:
        """Users x items sparse matrix of ones (``values="ones"``) or of the ratings."""
        data = np.ones(len(self), np.float32) if values == "ones" else self.ratings
        return sp.csr_matrix(
            (data, (self.user_index, self.item_index)), shape=(self.n_users, self.n_items)
        )

    def keys(self) -> np.ndarray:
        """One int64 per event, ``user * n_items + item``: fast set operations on pairs."""
        return self.user_index * self.n_items + self.item_index

    def item_counts(self) -> np.ndarray:
        """Events per item, shape (n_items,)."""
        return np.bincount(self.item_index, minlength=self.n_items)

    def user_counts(self) -> np.ndarray:
        """Events per user, shape (n_users,)."""
        return np.bincount(self.user_index, minlength=self.n_users)

    def raw_pairs(self) -> np.ndarray:
        """(n_events, 2) int64 array of raw (user_id, item_id)."""
        return np.stack([self.user_ids[self.user_index], self.item_ids[self.item_index]], axis=1)

    def concat(self, other: Interactions) -> Interactions:
        """Events of both, which must share the id mapping (e.g. train + validation)."""
        if not (
            np.array_equal(self.user_ids, other.user_ids)
            and np.array_equal(self.item_ids, other.item_ids)
        ):
            raise ValueError("cannot concatenate interactions with different id mappings")
        return Interactions(
            np.concatenate([self.user_index, other.user_index]),
            np.concatenate([self.item_index, other.item_index]),
            np.concatenate([self.ratings, other.ratings]),
            np.concatenate([self.timestamps, other.timestamps]),
            self.user_ids,
            self.item_ids,
        )


def _lookup(ids: np.ndarray, raw: np.ndarray, kind: str) -> np.ndarray:
    """Maps raw ids to indices into the sorted ``ids``; unknown ids raise."""
    if len(ids) and np.any(np.diff(ids) <= 0):
        raise BadInputError(f"{kind}_ids must be sorted and unique")
    index = np.searchsorted(ids, raw)
    bad = ids[np.minimum(index, len(ids) - 1)] != raw if len(ids) else np.ones(len(raw), bool)
    if np.any(bad):
        examples = np.unique(raw[bad])[:5].tolist()
        raise BadInputError(
            f"{int(bad.sum())} events refer to {kind} ids missing from the {kind} table,"
            f" e.g. {examples}: add them to the table or drop those ratings"
        )
    return index.astype(np.int64)


def _check(x: Interactions) -> None:
    """Validates lengths, dtypes, index ranges and NaNs with messages a user can act on."""
    n = len(x.user_index)
    lengths = {len(x.item_index), len(x.ratings), len(x.timestamps)}
    if lengths != {n}:
        raise BadInputError(
            f"user_index has {n} events but item_index/ratings/timestamps have"
            f" {len(x.item_index)}/{len(x.ratings)}/{len(x.timestamps)}: they must be equal"
        )
    for name in ("user_index", "item_index", "timestamps", "user_ids", "item_ids"):
        if not np.issubdtype(getattr(x, name).dtype, np.integer):
            raise BadInputError(f"{name} must be integers, got {getattr(x, name).dtype}")
    if np.isnan(x.ratings).any():
        raise BadInputError("ratings contain NaN: drop or fill them before building Interactions")
    for name, index, size in (
        ("user_index", x.user_index, len(x.user_ids)),
        ("item_index", x.item_index, len(x.item_ids)),
    ):
        if n and (index.min() < 0 or index.max() >= size):
            raise BadInputError(
                f"{name} out of range [0, {size}): min {index.min()}, max {index.max()};"
                " build Interactions with Interactions.from_frame to map raw ids"
            )
