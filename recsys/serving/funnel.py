"""A production-style funnel: retrieval -> ranking -> re-ranking, with a reason on every row.

1. Retrieval: the union of the FAISS top-``n_candidates`` of the user vector (inner product on
   item factors) and the cosine neighbours of the user's most recent positives.
2. Ranking: the run's model scores the candidates.
3. Re-ranking, each rule switchable: a freshness boost by release year, a popularity penalty,
   and MMR diversity (``mmr_lambda < 1``).

Everything runs on a batch of users at once, so :func:`evaluate_funnel` scores every test user
in a few vectorised passes and the app's single-user call is the same code with a batch of 1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from recsys.checks import check_k
from recsys.data.splits import Split
from recsys.errors import BadInputError
from recsys.evaluation.metrics import ranking_metrics
from recsys.linalg import unit_rows
from recsys.serving.catalog import Catalog
from recsys.serving.index import VectorIndex
from recsys.settings import check_fields
from recsys.settings import option as _opt

RETRIEVAL, NEIGHBOUR = 0, 1
# The FunnelConfig fields that decide the candidates (the rest only re-rank them).
RETRIEVAL_FIELDS = ("n_candidates", "recent_items", "neighbours_per_item", "exclude_seen")


@dataclass(frozen=True)
class FunnelConfig:
    """Knobs of the funnel; defaults retrieve broadly and re-rank nothing."""

    n_candidates: int = _opt(300, "items retrieved by the user vector (FAISS inner product)",
                             bounds=(1, 1_000_000))
    recent_items: int = _opt(5, "latest positives whose neighbours join the candidates (0 = off)",
                             bounds=(0, 1000))
    neighbours_per_item: int = _opt(20, "cosine neighbours taken per recent positive",
                                    bounds=(1, 10_000))
    exclude_seen: bool = _opt(True, "never return the user's known positives")
    mmr_lambda: float = _opt(1.0, "MMR trade-off: 1 = pure relevance, lower = more diverse",
                             bounds=(0.0, 1.0))
    freshness_weight: float = _opt(0.0, "boost for newer release years (0 = off; ~0.1-0.5)",
                                   bounds=(0.0, 10.0))
    popularity_penalty: float = _opt(0.0, "penalty on log popularity (0 = off; ~0.1-0.5)",
                                     bounds=(0.0, 10.0))

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def reranks(self) -> bool:
        return self.mmr_lambda < 1 or self.freshness_weight > 0 or self.popularity_penalty > 0

    def ranking_only(self) -> FunnelConfig:
        """The same candidates and ranking with every re-ranking rule off."""
        return replace(self, mmr_lambda=1.0, freshness_weight=0.0, popularity_penalty=0.0)


# The Recommendations page's default re-ranking (its sliders start here); the tour and the run
# comparison show the same: a little score traded for variety and fewer blockbusters.
DEFAULT_RERANKING = FunnelConfig(mmr_lambda=0.7, popularity_penalty=0.2)


@dataclass(frozen=True, eq=False)
class FunnelBatch:
    """The top-``k`` of each user in a batch; all arrays (n_users, k), -1 / NaN when short."""

    items: np.ndarray  # item indices, best first
    model_scores: np.ndarray  # the ranking model's score
    final_scores: np.ndarray  # after freshness / popularity (before the MMR penalty)
    model_rank: np.ndarray  # 1-based rank among the candidates by model score alone
    source: np.ndarray  # RETRIEVAL or NEIGHBOUR
    reason_item: np.ndarray  # for NEIGHBOUR: the recent positive it neighbours, else -1
    n_candidates: np.ndarray  # (n_users,) distinct candidates per user
    candidates: np.ndarray = field(repr=False)  # (n_users, C) every candidate, -1 = none


def run_funnel(catalog: Catalog, user_id: int, config: FunnelConfig | None = None,
               k: int = 10) -> pd.DataFrame:
    """The funnel's top-``k`` for raw user ``user_id``.

    Returns
    -------
    DataFrame with rank, item_id, title, year, genres, score (model), final_score, model_rank
    (rank among the candidates before re-ranking), source ("retrieval" / "neighbour") and
    reason ("retrieval: user vector" / "neighbour of <title>"); ``attrs["n_candidates"]``.
    """
    return run_funnels(catalog, user_id, [config or FunnelConfig()], k)[0]


def run_funnels(catalog: Catalog, user_id: int, configs: Sequence[FunnelConfig],
                k: int = 10) -> list[pd.DataFrame]:
    """:func:`run_funnel` for each of ``configs``, which must retrieve alike (the same
    n_candidates, recent_items, neighbours_per_item, exclude_seen; e.g. ``config`` and
    ``config.ranking_only()``): one retrieval and one scoring pass, re-ranked per config.
    Each frame equals :func:`run_funnel`'s for its config."""
    batches = funnel_batches(catalog, np.array([catalog.user_index(user_id)]), configs, k)
    return [_frame(catalog, batch) for batch in batches]


def _frame(catalog: Catalog, batch: FunnelBatch) -> pd.DataFrame:
    """:func:`run_funnel`'s table of a batch of one user."""
    keep = batch.items[0] >= 0
    items = batch.items[0][keep]
    titles = catalog.movies["title"].to_numpy()
    reason_items = batch.reason_item[0][keep]
    sources = batch.source[0][keep]
    frame = catalog.rows(items)
    frame.insert(0, "rank", np.arange(1, len(items) + 1))
    frame["score"] = batch.model_scores[0][keep].astype(np.float64)
    frame["final_score"] = batch.final_scores[0][keep].astype(np.float64)
    frame["model_rank"] = batch.model_rank[0][keep]
    frame["source"] = np.where(sources == RETRIEVAL, "retrieval", "neighbour")
    frame["reason"] = ["retrieval: user vector" if s == RETRIEVAL else f"neighbour of {titles[r]}"
                       for s, r in zip(sources, reason_items, strict=True)]
    frame.attrs["n_candidates"] = int(batch.n_candidates[0])
    return frame


def funnel_batch(catalog: Catalog, users: np.ndarray, config: FunnelConfig, k: int) -> FunnelBatch:
    """The whole funnel for user indices ``users`` at once."""
    return funnel_batches(catalog, users, [config], k)[0]


def funnel_batches(catalog: Catalog, users: np.ndarray, configs: Sequence[FunnelConfig],
                   k: int) -> list[FunnelBatch]:
    """:func:`funnel_batch` for each of ``configs`` (which must retrieve alike, see
    :func:`run_funnels`), sharing the retrieval and the model's scores."""
    check_k(k)
    if not configs:
        return []
    retrieval = {tuple(getattr(c, name) for name in RETRIEVAL_FIELDS) for c in configs}
    if len(retrieval) > 1:
        raise BadInputError("configs that retrieve differently cannot share a retrieval: they "
                            f"differ in {', '.join(RETRIEVAL_FIELDS)}")
    users = np.asarray(users, np.int64)
    cand, source, reason = _candidates(catalog, users, configs[0])
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    scores = np.take_along_axis(catalog.model.score(users), safe, axis=1).astype(np.float64)
    scores[~valid] = -np.inf
    model_rank = _ranks(scores)
    out = []
    for config in configs:
        final = _adjusted(catalog, safe, scores, valid, config)
        picks = _select(catalog, safe, final, valid, config.mmr_lambda, k)
        picked_ok = np.take_along_axis(valid, picks, 1)

        def take(values, fill, picks=picks, picked_ok=picked_ok):
            return np.where(picked_ok, np.take_along_axis(values, picks, 1), fill)

        out.append(FunnelBatch(
            items=take(cand, -1),
            model_scores=take(scores, np.nan),
            final_scores=take(final, np.nan),
            model_rank=take(model_rank, -1),
            source=take(source, -1),
            reason_item=take(reason, -1),
            n_candidates=valid.sum(axis=1),
            candidates=cand,
        ))
    return out


# ---------------------------------------------------------------------------- retrieval
def _candidates(catalog: Catalog, users: np.ndarray, config: FunnelConfig):
    """(B, C) candidate item indices (-1 = none), their source and reason item, deduplicated
    with the first source winning (retrieval before neighbours)."""
    item_f = catalog.item_factors("the funnel's retrieval")
    user_f = catalog.user_factors("the funnel's retrieval")
    if len(item_f[0]) != len(user_f[0]):
        raise BadInputError("user and item factors differ in size: the funnel needs a dot model")
    seen = catalog.seen[users]
    exclude = seen if config.exclude_seen else None
    n = min(config.n_candidates, catalog.model.n_items)
    retrieved, _ = catalog.index("dot").search(user_f[users], n, exclude)
    parts = [retrieved]
    sources = [np.full(retrieved.shape, RETRIEVAL)]
    reasons = [np.full(retrieved.shape, -1)]
    if config.recent_items:
        recent = _recent_positives(catalog, users, config.recent_items)  # (B, R)
        owner, slot = np.nonzero(recent >= 0)
        m = min(config.neighbours_per_item, catalog.model.n_items)
        neighbours = np.full((*recent.shape, m), -1, np.int64)
        if len(owner):
            items = recent[owner, slot]
            banned = ([seen[o].indices for o in owner] if config.exclude_seen
                      else [np.array([i]) for i in items])
            found = _neighbour_search(catalog.index("cosine"), item_f[items], m, banned,
                                      one_by_one=len(users) == 1)
            neighbours[owner, slot] = found
        parts.append(neighbours.reshape(len(users), -1))
        sources.append(np.full(parts[-1].shape, NEIGHBOUR))
        reasons.append(np.repeat(recent, m, axis=1))
    cand, source, reason = (np.concatenate(x, axis=1) for x in (parts, sources, reasons))
    order = np.argsort(cand, axis=1, kind="stable")  # stable: the first occurrence leads
    ordered = np.take_along_axis(cand, order, 1)
    duplicate = np.zeros_like(cand, dtype=bool)
    np.put_along_axis(duplicate, order[:, 1:], ordered[:, 1:] == ordered[:, :-1], 1)
    cand = np.where(duplicate, -1, cand)
    return cand, source, np.where(source == NEIGHBOUR, reason, -1)


def _neighbour_search(index: VectorIndex, queries: np.ndarray, m: int, banned: list,
                      one_by_one: bool) -> np.ndarray:
    """(len(queries), m) ids of each query's ``m`` nearest items, leaving out its ``banned``.

    ``one_by_one`` (one user, the app's call): a search per query. FAISS runs a search of
    several queries on its OpenMP threads, whose wake-up and spinning cost ~3 ms of CPU for 5
    queries against ~0.1 ms in the calling thread (measured on 2 cores). Below its BLAS
    threshold (queries x dimensions < 128,000 in faiss 1.15) a flat index scores each query
    alone either way, and one user's banned lists are alike in length, so every search
    fetches as many: the same neighbours (``tests/test_serving_cache.py``)."""
    if not one_by_one:
        return index.search(queries, m, banned)[0]
    return np.concatenate([index.search(query, m, [ban])[0]
                           for query, ban in zip(queries, banned, strict=True)])


def _recent_positives(catalog: Catalog, users: np.ndarray, r: int) -> np.ndarray:
    """(B, r) indices of each user's ``r`` latest known positives, newest first; -1 pads."""
    user_sorted, item_sorted = catalog.positives_by_recency
    starts = np.searchsorted(user_sorted, users)
    ends = np.searchsorted(user_sorted, users, side="right")
    offsets = starts[:, None] + np.arange(r)[None, :]
    inside = offsets < ends[:, None]
    picked = item_sorted[np.minimum(offsets, len(item_sorted) - 1)]
    return np.where(inside, picked, -1)


# ---------------------------------------------------------------------------- (re-)ranking
def _adjusted(catalog: Catalog, cand: np.ndarray, scores: np.ndarray, valid: np.ndarray,
              config: FunnelConfig) -> np.ndarray:
    """Model scores min-max scaled to [0, 1] per user, plus the freshness boost, minus the
    popularity penalty (both features scaled to [0, 1] over the catalogue)."""
    low = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
    high = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
    final = (scores - low) / np.maximum(high - low, 1e-12)
    if config.freshness_weight:
        final = final + config.freshness_weight * _freshness(catalog)[cand]
    if config.popularity_penalty:
        counts = np.log1p(catalog.item_counts)  # known positives: no peeking at the test period
        final = final - config.popularity_penalty * (counts / max(counts.max(), 1e-12))[cand]
    return np.where(valid, final, -np.inf)


def _freshness(catalog: Catalog) -> np.ndarray:
    """Release year scaled to [0, 1] over the catalogue (unknown year = 0)."""
    years = catalog.movies["year"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
    low, high = np.nanmin(years), np.nanmax(years)
    return np.nan_to_num((years - low) / max(high - low, 1.0), nan=0.0)


def _select(catalog: Catalog, cand: np.ndarray, final: np.ndarray, valid: np.ndarray,
            mmr_lambda: float, k: int) -> np.ndarray:
    """(B, k) positions into the candidates: top-k of ``final``, or greedy MMR
    ``argmax lambda * final - (1 - lambda) * max cosine to the items already picked``."""
    k = min(k, cand.shape[1])
    if mmr_lambda >= 1.0:
        return np.argsort(-final, axis=1, kind="stable")[:, :k]
    factors = catalog.item_factors("MMR diversity")
    unit = unit_rows(factors)
    vectors = unit[cand]  # (B, C, d)
    rows = np.arange(len(cand))
    closest = np.full(final.shape, -np.inf)  # max similarity to the picked items so far
    available = valid.copy()
    picks = np.zeros((len(cand), k), np.int64)
    for step in range(k):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        gain = mmr_lambda * final - (1 - mmr_lambda) * penalty
        gain = np.where(available, gain, -np.inf)
        best = np.argmax(gain, axis=1)
        picks[:, step] = best
        available[rows, best] = False
        sims = np.einsum("bcd,bd->bc", vectors, vectors[rows, best])
        closest = np.maximum(closest, sims)
    return picks


def _ranks(scores: np.ndarray) -> np.ndarray:
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :], 1)
    return ranks


# ---------------------------------------------------------------------------- evaluation
def evaluate_funnel(catalog: Catalog, split: Split | None = None,
                    config: FunnelConfig | None = None, k: int = 10,
                    batch_size: int = 256) -> dict[str, float]:
    """Test metrics of the funnel's lists for every user with a test positive.

    The usual ranking metrics (:func:`recsys.evaluation.metrics.ranking_metrics`: recall, NDCG, ...,
    novelty), plus ``intra_list_diversity@k`` (mean pairwise cosine distance of item factors
    within a list), ``candidate_recall`` (share of test positives among the candidates, the
    ceiling retrieval sets) and ``seconds``.
    """
    split = split or catalog.split
    config = config or FunnelConfig()
    start = time.perf_counter()
    relevant = split.test_pos.to_csr()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    tops, hits_in_candidates = [], 0
    for s in range(0, len(users), batch_size):
        batch_users = users[s:s + batch_size]
        batch = funnel_batch(catalog, batch_users, config, k)
        if (batch.items < 0).any():
            raise BadInputError(f"some users have fewer than {k} candidates: raise n_candidates "
                             "or lower k")
        tops.append(batch.items)
        rows = relevant[batch_users].toarray() > 0
        found = np.take_along_axis(rows, np.maximum(batch.candidates, 0), 1)
        hits_in_candidates += int(found[batch.candidates >= 0].sum())
    top = np.concatenate(tops)
    metrics, _ = ranking_metrics(top, relevant, users, k, split.seen_at_test.item_counts(),
                                 relevant.shape[0])
    vectors = catalog.item_factors("diversity")
    metrics[f"intra_list_diversity@{k}"] = intra_list_diversity(vectors, top)
    metrics["candidate_recall"] = hits_in_candidates / max(relevant[users].nnz, 1)
    metrics["users_evaluated"] = int(len(users))
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def intra_list_diversity(item_factors: np.ndarray, lists: np.ndarray) -> float:
    """Mean pairwise cosine distance (1 - cosine) between the items of each list, averaged
    over lists; ``lists`` is (n_lists, k) item indices."""
    k = lists.shape[1]
    if k < 2 or not len(lists):
        return 0.0
    unit = unit_rows(item_factors)
    vectors = unit[lists]
    gram = np.einsum("bid,bjd->bij", vectors, vectors)
    off_diagonal = gram.sum(axis=(1, 2)) - np.trace(gram, axis1=1, axis2=2)
    return float(np.mean(1.0 - off_diagonal / (k * (k - 1))))


def compare_reranking(catalog: Catalog, config: FunnelConfig, split: Split | None = None,
                      k: int = 10) -> pd.DataFrame:
    """Metrics of the ranking alone and with ``config``'s re-ranking rules, one row each."""
    rows = {"ranking only": evaluate_funnel(catalog, split, config.ranking_only(), k),
            "re-ranked": evaluate_funnel(catalog, split, config, k)}
    return pd.DataFrame(rows).T
