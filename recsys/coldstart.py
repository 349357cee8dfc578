"""A new user from a handful of liked (and disliked) movies, without retraining.

Collaborative: the user's vector is *folded in* against the run's frozen item factors by
closed-form weighted ridge regression, the implicit-ALS user step (Hu, Koren & Volinsky 2008;
``recsys.models.als.weighted_ridge``, shared with mf-als training):
liked items are targets 1 with confidence 1, disliked items targets 0 with confidence
``disliked_weight``, every other item a target 0 with small confidence ``unobserved_weight``.
Solving one d x d system takes well under a millisecond. Item-item models (itemknn, EASE)
score the liked items' rows directly.

Content: TF-IDF over title words and genres, cosine to the liked movies. With fewer than
``min_likes`` likes the two are blended, the collaborative weight growing as likes grow; with
no likes at all the list is the most popular movies. Every row says which source placed it.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.feature_extraction.text import TfidfVectorizer

from recsys.config import option as _opt
from recsys.models.als import weighted_ridge
from recsys.serving import Catalog

DOT_MODELS = ("mf-bpr", "mf-bce", "mf-mse", "mf-als", "svd")
_CONTENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Catalog -> TF-IDF matrix



@dataclass(frozen=True)
class ColdStartConfig:
    """How a new user's list is made."""

    min_likes: int = _opt(5, "with fewer likes, content scores are blended in (0 = never)")
    reg: float = _opt(0.1, "ridge penalty, in units of the mean squared item-vector norm")
    unobserved_weight: float = _opt(0.05, "confidence that an unrated movie is not liked")
    disliked_weight: float = _opt(1.0, "confidence of a dislike (target 0)")

    def __post_init__(self) -> None:
        if self.min_likes < 0 or self.reg <= 0 or self.unobserved_weight < 0 \
                or self.disliked_weight < 0:
            raise ValueError("min_likes and the weights must be >= 0 and reg > 0, got "
                             f"{self}")


def fold_in(ctx: Catalog, liked: Sequence[int], disliked: Sequence[int] = (),
            config: ColdStartConfig | None = None) -> np.ndarray:
    """The user vector (dim,) that best explains ``liked`` / ``disliked`` (raw movie ids)
    against the run's frozen item factors. Dot-product models only (mf-*, svd)."""
    config = config or ColdStartConfig()
    liked_idx, disliked_idx = _indices(ctx, liked, disliked)
    return _solve(_dot_item_factors(ctx), liked_idx, disliked_idx, config)


def _solve(q: np.ndarray, liked: np.ndarray, disliked: np.ndarray,
           config: ColdStartConfig) -> np.ndarray:
    """The mf-als user step for one user: base confidence ``unobserved_weight``, liked items
    confidence 1 and target 1, disliked items confidence ``disliked_weight`` and target 0."""
    q = torch.from_numpy(np.asarray(q, np.float64))
    w0 = config.unobserved_weight
    lam = config.reg * float((q * q).sum(1).mean())
    gram = w0 * (q.T @ q) + lam * torch.eye(q.shape[1], dtype=torch.float64)
    observed = np.concatenate([liked, disliked]).astype(np.int64)
    extra = np.r_[np.full(len(liked), 1.0 - w0), np.full(len(disliked),
                                                          config.disliked_weight - w0)]
    target = np.r_[np.ones(len(liked)), np.zeros(len(disliked))]
    x = weighted_ridge(gram, q[observed][None], torch.from_numpy(extra[None]),
                       torch.from_numpy(target[None]))
    return x[0].numpy().astype(np.float32)


def cold_start(ctx: Catalog, liked: Sequence[int], disliked: Sequence[int] = (), k: int = 10,
               config: ColdStartConfig | None = None) -> pd.DataFrame:
    """Top-``k`` movies for a new user (liked / disliked raw ids are never recommended).

    Returns
    -------
    DataFrame with rank, item_id, title, year, genres, score (the blended score),
    collaborative and content (each z-scored over the catalogue; NaN when unused),
    weight_collaborative and source ("collaborative" / "content" / "popularity").
    ``attrs["vector"]`` holds the folded-in vector (dot-product models) for the map.
    """
    config = config or ColdStartConfig()
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    liked_idx, disliked_idx = _indices(ctx, liked, disliked)
    banned = np.union1d(liked_idx, disliked_idx)
    n = ctx.model.n_items
    weight, vector = _collaborative_weight(len(liked_idx), config), None
    collab = content = np.full(n, np.nan)
    if len(liked_idx) == 0:
        score = ctx.item_counts.astype(np.float64)
        source = np.full(n, "popularity", dtype=object)
    else:
        collab, vector = _collaborative(ctx, liked_idx, disliked_idx, config)
        collab = _zscore(collab, banned)
        if weight < 1:
            content = _zscore(content_scores(ctx, liked_idx, disliked_idx), banned)
            score = weight * collab + (1 - weight) * content
            source = np.where(weight * collab >= (1 - weight) * content,
                              "collaborative", "content").astype(object)
        else:
            score, source = collab, np.full(n, "collaborative", dtype=object)
    score = score.copy()
    score[banned] = -np.inf
    top = np.argsort(-score, kind="stable")[:min(k, n - len(banned))]
    frame = ctx.rows(top)
    frame.insert(0, "rank", np.arange(1, len(top) + 1))
    frame["score"] = score[top]
    frame["collaborative"], frame["content"] = collab[top], content[top]
    frame["weight_collaborative"] = weight if len(liked_idx) else 0.0
    frame["source"] = source[top]
    frame.attrs["vector"] = vector
    return frame


def _collaborative_weight(n_liked: int, config: ColdStartConfig) -> float:
    """0 with no likes, rising linearly to 1 at ``min_likes``."""
    if config.min_likes == 0:
        return 1.0
    return min(1.0, n_liked / config.min_likes)


def _collaborative(ctx: Catalog, liked: np.ndarray, disliked: np.ndarray,
                   config: ColdStartConfig):
    """Scores of every item for the new user, and the folded-in vector (None for item-item
    models)."""
    model, name = ctx.model, ctx.run.train_config.model
    if name in DOT_MODELS:
        vector = _solve(model.item_factors(), liked, disliked, config)
        scores = model.item_factors() @ vector
        if hasattr(model, "item_biases"):
            scores = scores + model.item_biases()  # the model's own item prior
        return scores.astype(np.float64), vector
    weights = model.item_item_weights()
    if weights is not None:
        x = np.zeros(model.n_items)
        x[liked] = 1.0
        scores = weights.T @ x  # sparse or dense, a plain (n_items,) array either way
        return np.asarray(scores, np.float64).ravel(), None
    raise ValueError(f"{name} cannot score a new user from likes: use an mf-*, svd, itemknn or "
                     "ease run (NCF scores through an MLP; popularity ignores likes)")


def _dot_item_factors(ctx: Catalog) -> np.ndarray:
    name = ctx.run.train_config.model
    if name not in DOT_MODELS:
        raise ValueError(f"fold-in needs a dot-product model (one of {', '.join(DOT_MODELS)}), "
                         f"this run is {name}")
    return ctx.model.item_factors()


# ---------------------------------------------------------------------------- content
def content_matrix(ctx: Catalog) -> sp.csr_matrix:
    """TF-IDF rows (L2-normalised) over title words and genre tokens, one per item index;
    computed once per catalogue."""
    if ctx not in _CONTENT:
        _CONTENT[ctx] = _tfidf(ctx.movies)
    return _CONTENT[ctx]


def _tfidf(movies: pd.DataFrame) -> sp.csr_matrix:
    titles = movies["title"].astype(str).str.replace(r"\(\d{4}\)", " ", regex=True)
    genres = movies["genres"].astype(str).str.split("|").map(
        lambda gs: " ".join("genre_" + "".join(c if c.isalnum() else "_" for c in g.lower())
                            for g in gs if g))
    docs = titles + " " + genres + " " + genres  # genres twice: taste outweighs title words
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    return vectorizer.fit_transform(docs).tocsr()


def content_scores(ctx: Catalog, liked: np.ndarray, disliked: np.ndarray = ()) -> np.ndarray:
    """Cosine of every item's TF-IDF row with the liked profile (minus half the disliked)."""
    x = content_matrix(ctx)
    profile = np.asarray(x[liked].mean(axis=0)).ravel()
    if len(disliked):
        profile -= 0.5 * np.asarray(x[np.asarray(disliked)].mean(axis=0)).ravel()
    norm = np.linalg.norm(profile)
    return np.asarray(x @ (profile / max(norm, 1e-12))).ravel()


# ---------------------------------------------------------------------------- helpers
def _indices(ctx: Catalog, liked: Sequence[int], disliked: Sequence[int]):
    liked_idx = np.unique([ctx.item_index(i) for i in liked]).astype(np.int64)
    disliked_idx = np.unique([ctx.item_index(i) for i in disliked]).astype(np.int64)
    both = np.intersect1d(liked_idx, disliked_idx)
    if len(both):
        raise ValueError(f"movies {ctx.run.item_ids[both].tolist()} are both liked and "
                         "disliked: keep each in one list")
    return liked_idx, disliked_idx


def _zscore(values: np.ndarray, banned: np.ndarray) -> np.ndarray:
    keep = np.ones(len(values), bool)
    keep[banned] = False
    mean, std = values[keep].mean(), values[keep].std()
    return (values - mean) / max(std, 1e-12)
