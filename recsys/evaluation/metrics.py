"""Ranking metrics over all users x all items, vectorised in user batches.

Conventions (as in implicit and LightFM): items the user already had are never ranked; recall
divides by the user's number of held-out items, precision by K; IDCG uses min(K, |relevant|);
averages run over users with at least one held-out item.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys.errors import BadInputError
from recsys.evaluation.topk import top_k_dot

ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Averaged metrics, the per-user arrays behind them, and the protocol that produced them."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray
    protocol: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: float(v) for k, v in self.metrics.items()}, "protocol": self.protocol}


def top_k_items(
    score_fn: ScoreFn,
    users: np.ndarray,
    exclude: sp.csr_matrix | None,
    k: int,
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items per user, skipping the items in ``exclude``'s rows.

    ``score_fn(user_batch)`` returns a (batch, n_items) float array. Returns item indices and
    scores, both shape (len(users), k), best first; excluded items never appear (when fewer than
    ``k`` items remain, the tail holds excluded items with score ``-inf``).
    """
    users = np.asarray(users, np.int64)
    items_out, scores_out = [], []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = np.array(score_fn(batch), dtype=np.float32, copy=True)
        if exclude is not None:
            rows, cols = stored_cells(exclude, batch)
            scores[rows, cols] = -np.inf
        best = torch.topk(torch.from_numpy(scores), min(k, scores.shape[1]), dim=1)
        items_out.append(best.indices.numpy())
        scores_out.append(best.values.numpy())
    if not items_out:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(items_out), np.concatenate(scores_out)


def stored_cells(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``matrix[rows].nonzero()`` read straight off the CSR arrays: (position in ``rows``,
    column) of every nonzero cell. Slicing the matrix first built a new CSR per call, a fifth
    of the serving API's CPU per /recommend (one row)."""
    matrix = matrix.tocsr()  # the same object for a CSR matrix; a CSC one would read columns
    starts, ends = matrix.indptr[rows], matrix.indptr[np.asarray(rows) + 1]
    lengths = ends - starts
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    cells = np.repeat(starts, lengths) + offsets
    keep = matrix.data[cells] != 0  # stored zeros are not cells (as nonzero() skips them)
    return np.repeat(np.arange(len(lengths)), lengths)[keep], matrix.indices[cells][keep]


def ranking_metrics(
    top_items: np.ndarray,
    relevant: sp.csr_matrix,
    users: np.ndarray,
    k: int,
    item_counts: np.ndarray,
    n_users_total: int,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Recall, precision, NDCG, MRR, hit rate, coverage and novelty at ``k``.

    ``top_items[j]`` is the ranked list of ``users[j]``, -1 marking empty slots (fewer than
    ``k`` rankable items); ``relevant`` holds the held-out items; ``item_counts`` are training
    interaction counts (for novelty: mean ``-log2 p(item)``, with ``p`` = share of users who
    had the item, unseen items counted as one user). Precision always divides by ``k``.
    """
    top = top_items[:, :k]
    filled = top >= 0
    rel_rows = relevant[users]
    n_rel = np.diff(rel_rows.indptr).astype(np.int64)
    hits = _is_relevant(rel_rows, np.where(filled, top, 0)) & filled
    n_hits = hits.sum(axis=1)
    width = top.shape[1]  # k, or the catalogue size when k exceeds it
    discounts = 1.0 / np.log2(np.arange(2, width + 2))
    dcg = (hits * discounts).sum(axis=1)
    idcg = np.cumsum(discounts)[np.clip(np.minimum(width, n_rel) - 1, 0, max(width - 1, 0))]
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), -1)
    p_item = np.maximum(item_counts, 1) / max(n_users_total, 1)
    self_info = -np.log2(np.minimum(p_item, 1.0))
    per_user = {
        f"recall@{k}": n_hits / np.maximum(n_rel, 1),
        f"precision@{k}": n_hits / k,
        f"ndcg@{k}": dcg / idcg,
        f"mrr@{k}": np.where(first_hit >= 0, 1.0 / (np.maximum(first_hit, 0) + 1), 0.0),
        f"hit@{k}": (n_hits > 0).astype(np.float64),
        f"novelty@{k}": (np.where(filled, self_info[np.where(filled, top, 0)], 0).sum(axis=1)
                         / np.maximum(filled.sum(axis=1), 1)),
    }
    metrics = {name: float(values.mean()) if len(values) else 0.0
               for name, values in per_user.items()}
    metrics[f"coverage@{k}"] = float(len(np.unique(top[filled])) / relevant.shape[1])
    return metrics, per_user


def _is_relevant(rel_rows: sp.csr_matrix, top: np.ndarray) -> np.ndarray:
    """hits[j, r] = whether item ``top[j, r]`` is in row j of ``rel_rows``, without densifying
    the rows (a sorted-key lookup: memory O(users x k), fine for 62k-item catalogues)."""
    n_items = rel_rows.shape[1]
    rows = np.repeat(np.arange(rel_rows.shape[0], dtype=np.int64), np.diff(rel_rows.indptr))
    keys = np.sort(rows * n_items + rel_rows.indices.astype(np.int64))
    if len(keys) == 0:
        return np.zeros(top.shape, bool)
    wanted = np.arange(len(top), dtype=np.int64)[:, None] * n_items + top
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return keys[at] == wanted


def evaluate_scores(
    score_fn: ScoreFn,
    relevant: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    item_counts: np.ndarray,
    k: int = 10,
    protocol: dict[str, Any] | None = None,
    batch_size: int = 512,
) -> Evaluation:
    """Ranks all items for every user with a held-out item and scores the lists."""
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    top, scores = top_k_items(score_fn, users, exclude, k, batch_size)
    return _evaluate_lists(top, scores, relevant, users, item_counts, k, protocol)


def _evaluate_lists(top: np.ndarray, scores: np.ndarray, relevant: sp.csr_matrix,
                    users: np.ndarray, item_counts: np.ndarray, k: int,
                    protocol: dict[str, Any] | None) -> Evaluation:
    """The metrics of ranked lists ``top`` (their ``scores`` -inf where a list ran short)."""
    top = np.where(np.isfinite(scores), top, -1)  # excluded items padding a short list
    metrics, per_user = ranking_metrics(top, relevant, users, k, item_counts, relevant.shape[0])
    protocol = {**(protocol or {}), "k": k, "users_evaluated": int(len(users))}
    return Evaluation(metrics, per_user, users, protocol)


def evaluate_model(model: Any, split: Any, k: int = 10, part: str = "test") -> Evaluation:
    """Evaluates a fitted recommender on ``split``'s validation or test positives.

    For ``part="test"`` the train and validation positives are excluded from rankings; for
    ``"valid"`` only the train positives. Models that predict ratings also get RMSE.
    """
    if part not in ("test", "valid"):
        raise BadInputError(f"part must be 'test' or 'valid', got {part!r}")
    protocol = {
        "part": part,
        "split": split.config.split,
        "threshold": split.config.threshold,
        "description": split.config.describe(),
        "excluded": "train + validation positives" if part == "test" else "train positives",
    }
    if part == "test":
        return evaluate_held_out(model, split.test_part, split.seen_at_test, k, protocol)
    return evaluate_held_out(model, split.valid_part, split.train_pos, k, protocol)


def evaluate_held_out(model: Any, held_out: Any, known: Any, k: int = 10,
                      protocol: dict[str, Any] | None = None) -> Evaluation:
    """Ranks every item but the user's ``known`` positives (Interactions) for each user with
    a positive in ``held_out`` (a :class:`recsys.data.splits.Part`) and scores the lists; models
    that predict ratings also get RMSE on ``held_out.ratings``."""
    relevant, exclude, counts = _matrices(held_out.positives, known)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    top, scores = _model_top_k(model, users, exclude, k)
    result = _evaluate_lists(top, scores, relevant, users, counts, k, protocol)
    ratings = held_out.ratings
    # Anything with score() can be evaluated (bench/ passes plain objects): no kind, no RMSE.
    if getattr(model, "score_kind", None) == "rating" and len(ratings):
        predicted = model.predict_ratings(ratings.user_index, ratings.item_index)
        result.metrics["rmse"] = float(np.sqrt(np.mean((predicted - ratings.ratings) ** 2)))
    return result


def _model_top_k(model: Any, users: np.ndarray, exclude: sp.csr_matrix,
                 k: int, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Every user's top ``k``. Dot-product models go through
    :func:`recsys.evaluation.topk.top_k_dot`
    (one reused score buffer, no numpy copy of each block: 1.4-3x faster per validation at
    ML-100K, the same lists and scores: ``tests/test_speed_paths.py``); others through
    ``model.score``."""
    kind = getattr(model, "score_kind", None)  # bench/ passes plain objects with score()
    if kind not in ("dot", "dot+bias"):
        return top_k_items(model.score, users, exclude, k, batch_size)
    return top_k_dot(model.user_factors(), model.item_factors(), users, exclude, k,
                     item_bias=model.item_biases(), user_bias=model.user_biases(),
                     block_size=batch_size)


_MATRICES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _matrices(held_out: Any, known: Any) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Held-out and excluded matrices and item counts, built once per pair of Interactions
    (the trainer evaluates the same validation set after every epoch)."""
    cached = _MATRICES.get(held_out)
    if cached is None or cached[0]() is not known:
        cached = (weakref.ref(known), (held_out.to_csr(), known.to_csr(), known.item_counts()))
        _MATRICES[held_out] = cached
    return cached[1]
