"""Which movies negative sampling hands the model, by popularity decile, beside the positives:
the picture behind "uniform negatives are mostly obscure movies"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.interactions import Interactions
from recsys.sampling import PositiveSet, popularity_cdf, sample_negatives

N_DECILES = 10


def popularity_deciles(item_counts: np.ndarray) -> np.ndarray:
    """Decile (1 = the 10% most liked movies, 10 = the least) of every item, (n_items,) int64;
    ties broken by item index so every decile holds the same number of movies (±1)."""
    order = np.argsort(-np.asarray(item_counts), kind="stable")
    deciles = np.empty(len(order), np.int64)
    deciles[order] = np.arange(len(order)) * N_DECILES // max(len(order), 1) + 1
    return deciles


def negatives_by_decile(positives: Interactions, alphas: dict[str, float | None],
                        n_negatives: int = 4, seed: int = 0) -> pd.DataFrame:
    """Share of the training positives and of one epoch's sampled negatives per popularity
    decile, one column per sampler.

    Parameters
    ----------
    positives : the training positives (``split.train_pos``), as the model samples against.
    alphas : column name -> popularity exponent α (P(item) ∝ count^α), None for uniform.

    Returns
    -------
    DataFrame with decile (1-10, most popular first), positives, then one column per sampler;
    every column but decile sums to 1.
    """
    counts = positives.item_counts()
    deciles = popularity_deciles(counts)
    members = PositiveSet(positives.user_index, positives.item_index, positives.n_users,
                          positives.n_items)
    frame = pd.DataFrame({"decile": np.arange(1, N_DECILES + 1)})
    frame["positives"] = _shares(deciles[positives.item_index])
    for name, alpha in alphas.items():
        cdf = None if alpha is None else popularity_cdf(counts, alpha)
        drawn = sample_negatives(positives.user_index, n_negatives, positives.n_items, members,
                                 np.random.default_rng(seed), cdf)
        frame[name] = _shares(deciles[drawn.ravel()])
    return frame


def _shares(deciles: np.ndarray) -> np.ndarray:
    counts = np.bincount(deciles, minlength=N_DECILES + 1)[1:].astype(np.float64)
    return counts / max(counts.sum(), 1.0)
