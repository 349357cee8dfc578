"""Score anatomy: one movie's score for one user taken apart into the terms the model adds up
(u·v, item bias, user bias, global mean), and u·v into its per-dimension products u_d·v_d.

Only models whose score *is* such a sum can be taken apart (:func:`has_anatomy`); for the
others :func:`score_sentence` says in one sentence what their score is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.errors import BadInputError
from recsys.models.base import BIASED_SCORES, SCORE_KINDS
from recsys.serving import catalog as serving

DOT = "u·v"
# serving.score_parts columns -> the names the anatomy shows, in the order of the sum.
BIAS_PARTS = {"item_bias": "item bias", "user_bias": "user bias", "global_mean": "global mean"}
_SENTENCES = {
    "popularity": "{model} gives every user the same list: a movie's score is how many users "
                  "liked it in training, so there is no user part to take apart.",
    "item-item": "{model} scores a movie as {kind}: the sum of its weights to the movies the "
                 "user liked. There is no user vector, so no dot product to split.",
    "mlp": "{model} feeds the user's and the movie's vectors through a neural network: its "
           "score is not a sum over dimensions, so it cannot be split into u·v and biases.",
}


@dataclass(frozen=True, eq=False)
class ScoreAnatomy:
    """One (user, movie) score and its parts; ``parts`` sum to ``score`` and
    ``contributions`` (u_d·v_d per dimension, float64 (d,)) sum to ``parts[DOT]``."""

    user: int  # user index
    item: int  # item index
    score: float  # the model's own score, from model.score
    parts: dict[str, float]  # DOT, then the bias terms the model has
    contributions: np.ndarray
    user_vector: np.ndarray
    item_vector: np.ndarray

    def parts_frame(self) -> pd.DataFrame:
        """part, value: the terms of the sum, then ``score`` (their total as the model gives it)."""
        rows = [*self.parts.items(), ("score", self.score)]
        return pd.DataFrame(rows, columns=["part", "value"])

    def dot_by_sign(self) -> tuple[float, float]:
        """u·v as (sum of the positive u_d·v_d, sum of the negative ones)."""
        c = self.contributions
        return float(c[c > 0].sum()), float(c[c < 0].sum())

    def top_dimensions(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` dimensions that raise the score most and the ``n`` that lower it most:
        dimension, contribution (u_d·v_d), user (u_d), movie (v_d); largest first."""
        order = np.argsort(-self.contributions, kind="stable")
        up = [d for d in order[:n] if self.contributions[d] > 0]
        down = [d for d in order[::-1][:n] if self.contributions[d] < 0][::-1]
        dims = np.array(up + down, np.int64)
        return pd.DataFrame({
            "dimension": dims,
            "contribution": self.contributions[dims],
            "user": self.user_vector[dims],
            "movie": self.item_vector[dims],
        })


def has_anatomy(model) -> bool:
    """Whether the model's score is user vector · item vector (+ biases), so it splits."""
    return bool(model.user_vectors and model.item_vectors
                and model.score_kind in ("dot", *BIASED_SCORES))


def score_sentence(model) -> str:
    """One plain sentence on what the score of a model without an anatomy is."""
    kind = model.score_kind
    template = _SENTENCES.get(kind, "{model}'s score is {kind}.")
    return template.format(model=model.name, kind=SCORE_KINDS.get(kind, kind))


def score_anatomy(ctx: serving.Catalog, user_id: int, item_id: int) -> ScoreAnatomy:
    """The anatomy of raw movie ``item_id``'s score for raw user ``user_id``.

    ValueError for unknown ids or a model whose score does not split (:func:`has_anatomy`).
    """
    model = ctx.model
    if not has_anatomy(model):
        raise BadInputError(score_sentence(model))
    user, item = ctx.user_index(user_id), ctx.item_index(item_id)
    u = np.asarray(model.user_factors()[user], np.float64)
    v = np.asarray(model.item_factors()[item], np.float64)
    contributions = u * v
    parts = {DOT: float(contributions.sum())}
    biases = serving.score_parts(ctx, user, np.array([item], np.int64))
    for column, label in BIAS_PARTS.items():
        if column in biases:
            parts[label] = float(biases[column].iloc[0])
    score = float(model.score(np.array([user], np.int64))[0, item])
    return ScoreAnatomy(user, item, score, parts, contributions, u, v)


@dataclass(frozen=True, eq=False)
class ScoreScale:
    """Where one (user, movie) score falls among the user's other scores: a score alone (0.55)
    says nothing until it is ranked against every movie the model could recommend them."""

    score: float  # the model's score for the movie
    rank: int  # 1-based, among ``candidates`` (ties count against the movie)
    candidates: int  # the movies ranked: those the user has not liked yet (+ the movie itself)
    percentile: float  # share of the other candidates scoring strictly lower
    scores: np.ndarray  # every candidate's score (float64): the distribution to draw


def score_scale(ctx: serving.Catalog, user_id: int, item_id: int) -> ScoreScale:
    """Movie ``item_id``'s score for user ``user_id`` on the scale of that user's scores over
    the movies they have not liked yet: the ones a recommendation list is drawn from (the
    movie itself is ranked among them even when the user liked it already). Any model."""
    user, item = ctx.user_index(user_id), ctx.item_index(item_id)
    scores = np.asarray(ctx.model.score(np.array([user], np.int64))[0], np.float64)
    candidates = np.ones(len(scores), bool)
    candidates[ctx.seen[user].indices] = False
    candidates[item] = True
    pool = scores[candidates]
    score = float(scores[item])
    others = len(pool) - 1
    return ScoreScale(score=score, rank=int((pool > score).sum()) + 1, candidates=len(pool),
                      percentile=float((pool < score).sum()) / others if others else 1.0,
                      scores=pool)


def vector_heatmap(ctx: serving.Catalog, user_id: int, item_ids, n_dims: int | None = None
                   ) -> pd.DataFrame:
    """The user's vector (first row) beside the movies' vectors (rows ``item_ids``, raw ids),
    columns = dimensions "d<k>" ordered by their mean |u_d·v_d| over the movies, largest first,
    cut to ``n_dims``: the dimensions that decide these scores come first. The index is
    "user", then the movie ids."""
    model = ctx.model
    if not has_anatomy(model):
        raise BadInputError(score_sentence(model))
    u = model.user_factors()[ctx.user_index(user_id)]
    v = model.item_factors()[ctx.item_indices(item_ids)]
    weight = np.abs(v * u[None, :]).mean(axis=0)
    dims = np.argsort(-weight, kind="stable")[:n_dims]
    matrix = np.vstack([u[None, :], v])[:, dims].astype(np.float64)
    return pd.DataFrame(matrix, columns=[f"d{d}" for d in dims],
                        index=pd.Index(["user", *(int(i) for i in item_ids)], dtype=object))
