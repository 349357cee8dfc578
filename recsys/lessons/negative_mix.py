"""Which movies negative sampling picks, by popularity decile, beside the positives' own
spread: the numbers behind the Train page's negative-sampling lesson. The negatives are drawn
by :mod:`recsys.data.sampling` itself, on a split's training positives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.interactions import Interactions
from recsys.data.sampling import PositiveSet, popularity_cdf, sample_negatives
from recsys.errors import BadInputError

N_DECILES = 10


def popularity_deciles(item_counts: np.ndarray) -> np.ndarray:
    """Decile of each item, 0 = the least popular tenth of the catalogue .. 9 = the most
    popular tenth, by training positives; ties are broken by item index, so every decile
    holds a tenth of the items (int64, shape (n_items,))."""
    counts = np.asarray(item_counts)
    order = np.argsort(counts, kind="stable")
    deciles = np.empty(len(counts), np.int64)
    deciles[order] = np.arange(len(counts)) * N_DECILES // max(len(counts), 1)
    return deciles


def sampling_probabilities(item_counts: np.ndarray, neg_sampling: str, alpha: float) -> np.ndarray:
    """P(item) of one draw of the sampler before it redraws a user's own positives: uniform,
    or the steps of :func:`recsys.data.sampling.popularity_cdf` (count ** alpha)."""
    n_items = len(item_counts)
    if neg_sampling == "uniform":
        return np.full(n_items, 1.0 / n_items)
    if neg_sampling != "popularity":
        raise BadInputError(f"neg_sampling must be 'uniform' or 'popularity', got {neg_sampling!r}")
    return np.diff(popularity_cdf(item_counts, alpha), prepend=0.0)


def expected_negatives(train_pos: Interactions, probabilities: np.ndarray) -> np.ndarray:
    """Per item, the expected share of an epoch's negatives: each positive's user draws from
    ``probabilities`` with their own positives redrawn, i.e. from ``p`` restricted to the items
    they did not like, renormalised (float64, shape (n_items,), sums to 1)."""
    users, items = train_pos.user_index, train_pos.item_index
    p = np.asarray(probabilities, np.float64)
    liked_mass = np.bincount(users, p[items], minlength=train_pos.n_users)
    rows_per_user = np.bincount(users, minlength=train_pos.n_users)
    # weight of each user's conditional distribution: their share of the rows / the mass left
    weight = rows_per_user / len(users) / np.maximum(1.0 - liked_mass, 1e-12)
    return p * (weight.sum() - np.bincount(items, weight[users], minlength=len(p)))


def negative_mix(
    train_pos: Interactions,
    negatives: int,
    neg_sampling: str,
    alpha: float,
    seed: int = 0,
) -> pd.DataFrame:
    """Shares of the training positives and of one epoch's sampled negatives per popularity
    decile, plus the share the sampler's distribution predicts (:func:`expected_negatives`).

    Returns one row per decile (1 = least popular tenth): ``decile``, ``ratings`` (the range
    of training positives of its movies, as text), ``positives``, ``negatives`` and
    ``expected`` (shares summing to 1 over the rows).
    """
    counts = train_pos.item_counts()
    users, items = train_pos.user_index, train_pos.item_index
    known = PositiveSet(users, items, train_pos.n_users, train_pos.n_items)
    cdf = popularity_cdf(counts, alpha) if neg_sampling == "popularity" else None
    drawn = sample_negatives(users, negatives, train_pos.n_items, known,
                             np.random.default_rng(seed), cdf)
    deciles = popularity_deciles(counts)
    low = np.full(N_DECILES, np.inf)
    high = np.zeros(N_DECILES)
    np.minimum.at(low, deciles, counts)
    np.maximum.at(high, deciles, counts)
    return pd.DataFrame({
        "decile": np.arange(1, N_DECILES + 1),
        "ratings": [f"{lo:.0f}–{hi:.0f}" if lo < hi else f"{lo:.0f}"
                    for lo, hi in zip(low, high, strict=True)],
        "positives": _shares(deciles[items]),
        "negatives": _shares(deciles[drawn.ravel()]),
        "expected": np.bincount(deciles, expected_negatives(
            train_pos, sampling_probabilities(counts, neg_sampling, alpha)), minlength=N_DECILES),
    })


def _shares(deciles: np.ndarray) -> np.ndarray:
    return np.bincount(deciles, minlength=N_DECILES) / max(len(deciles), 1)


def negatives_lesson(mix: pd.DataFrame) -> str:
    """One sentence, from the numbers of :func:`negative_mix`, on what these negatives teach."""
    top_neg, top_pos = mix["negatives"].iloc[-1], mix["positives"].iloc[-1]
    half = N_DECILES // 2
    low_neg, low_pos = mix["negatives"].iloc[:half].sum(), mix["positives"].iloc[:half].sum()
    if top_neg < top_pos / 2:
        return (f"{low_neg:.0%} of the negatives are movies from the less popular half of the "
                f"catalogue, which holds only {low_pos:.0%} of the positives, and the most "
                f"popular tenth gets {top_neg:.0%} of the negatives against {top_pos:.0%} of the "
                "positives: the model mostly learns to tell popular from obscure, i.e. "
                "popularity, and popular movies end up on top of everyone's list.")
    return (f"The most popular tenth of the movies gets {top_neg:.0%} of the negatives against "
            f"{top_pos:.0%} of the positives: popular movies are pushed down about as often as "
            "they are pulled up, so popularity alone no longer lowers the loss and the model "
            "has to learn which users like them (fewer blockbusters in the lists).")
