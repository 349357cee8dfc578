"""A new user from a handful of liked (and disliked) movies, without retraining.

Collaborative: the user's vector is *folded in* against the run's frozen item factors by
closed-form weighted ridge regression, the implicit-ALS user step (Hu, Koren & Volinsky 2008;
the model's ``fold_in``, :func:`recsys.linalg.ridge_fold_in`, shared with mf-als training):
liked items are targets 1 with confidence 1, disliked items targets 0 with confidence
``disliked_weight``, every other item a target 0 with small confidence ``unobserved_weight``.
Solving one d x d system takes well under a millisecond. Item-item models (itemknn, EASE)
score the liked items' rows directly.

Content: TF-IDF over title words and genres, cosine to the liked movies.

Both scores are z-scored over the rankable movies and blended, ``w * collaborative +
(1 - w) * content``; the weight ``w`` for a number of likes is the one measured best on users
held out of training (each model's ``blend_by_likes``, ``bench/COLDSTART.md``), or set by hand
(``ColdStartConfig.blend``). With no likes the list is the most popular movies. Every row says
which term placed it.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from recsys.checks import check_choice, check_k
from recsys.errors import BadInputError
from recsys.linalg import FoldInBasis, ridge_fold_in
from recsys.models import MODELS, model_names
from recsys.serving.catalog import Catalog
from recsys.settings import check_fields
from recsys.settings import option as _opt

_CONTENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Catalog -> TF-IDF matrix

# The collaborative weight w by number of likes is each model's own: its class's
# ``blend_by_likes`` (recsys.models.base.Recommender), measured by `python -m bench.coldstart`
# (bench/COLDSTART.md); linear in between, the last value beyond the last count.

# Test Recall@10 of the same protocol (bench/COLDSTART.md), for the page to plot, one value
# per count in CURVE_LIKES: per model its fold-in ("collaborative") and its chosen "blend";
# content and popularity use no model, so they are the same line for every model.
CURVE_LIKES = (1, 2, 3, 5, 10, 20)
CURVE: dict[str, dict[str, tuple[float, ...]]] = {
    "mf-bpr": {"collaborative": (0.0846, 0.0847, 0.0831, 0.0800, 0.0577, 0.0562),
              "blend": (0.0829, 0.0833, 0.0889, 0.0873, 0.0723, 0.0583)},
    "mf-als": {"collaborative": (0.0744, 0.0773, 0.0843, 0.0839, 0.0817, 0.0725),
              "blend": (0.0754, 0.0801, 0.0866, 0.0881, 0.0826, 0.0726)},
    "mf-bce": {"collaborative": (0.0963, 0.0929, 0.0959, 0.0936, 0.0830, 0.0671),
              "blend": (0.0963, 0.0929, 0.0948, 0.0949, 0.0843, 0.0663)},
    "mf-mse": {"collaborative": (0.0327, 0.0312, 0.0312, 0.0303, 0.0353, 0.0433),
              "blend": (0.0339, 0.0356, 0.0368, 0.0395, 0.0474, 0.0403)},
    "svd": {"collaborative": (0.0740, 0.0796, 0.0852, 0.0918, 0.0876, 0.0720),
           "blend": (0.0740, 0.0817, 0.0884, 0.0939, 0.0831, 0.0690)},
    "itemknn": {"collaborative": (0.0810, 0.0968, 0.1040, 0.1125, 0.1050, 0.0877),
               "blend": (0.0799, 0.0968, 0.1015, 0.1113, 0.1021, 0.0827)},
    "ease": {"collaborative": (0.0906, 0.0914, 0.0962, 0.1002, 0.0873, 0.0755),
            "blend": (0.0906, 0.0927, 0.0975, 0.0986, 0.0894, 0.0698)},
}
MODEL_FREE_CURVE: dict[str, tuple[float, ...]] = {
    "content": (0.0141, 0.0149, 0.0211, 0.0260, 0.0219, 0.0117),
    "popularity": (0.0738, 0.0696, 0.0700, 0.0685, 0.0620, 0.0556),
}


@dataclass(frozen=True)
class ColdStartConfig:
    """How a new user's list is made."""

    blend: float | None = _opt(None, "collaborative weight w of w * collaborative + (1 - w) * "
                               "content, 0 to 1; None: the measured weight for the number of "
                               "likes (the model's blend_by_likes)", bounds=(0.0, 1.0))
    reg: float = _opt(0.1, "ridge penalty, in units of the mean squared item-vector norm",
                      bounds=(1e-12, math.inf))
    unobserved_weight: float = _opt(0.05, "confidence that an unrated movie is not liked",
                                    bounds=(0.0, math.inf))
    disliked_weight: float = _opt(1.0, "confidence of a dislike (target 0)",
                                  bounds=(0.0, math.inf))

    def __post_init__(self) -> None:
        check_fields(self)

    def solver(self) -> dict[str, float]:
        """The fold-in options, as :meth:`recsys.models.base.Recommender.fold_in` takes them."""
        return {"reg": self.reg, "unobserved_weight": self.unobserved_weight,
                "disliked_weight": self.disliked_weight}


def blend_weight(n_liked: int, model: str, config: ColdStartConfig | None = None) -> float:
    """Collaborative weight for ``n_liked`` likes: the hand-set ``config.blend``, else the
    schedule model ``model`` (a name) declares as its ``blend_by_likes``."""
    config = config or ColdStartConfig()
    if config.blend is not None:
        return float(config.blend)
    check_choice("model", model, tuple(MODELS))
    schedule = MODELS[model].blend_by_likes
    likes = sorted(schedule)
    return float(np.interp(n_liked, likes, [schedule[n] for n in likes]))


def coldstart_curve(model: str | None = None) -> pd.DataFrame:
    """The measured test Recall@10 by likes and method (long format: model, likes, method,
    recall@10), for plotting; ``model`` selects one model's rows."""
    rows = [(name, n, method, value) for name, methods in CURVE.items()
            for method, values in {**methods, **MODEL_FREE_CURVE}.items()
            for n, value in zip(CURVE_LIKES, values, strict=True)]
    frame = pd.DataFrame(rows, columns=["model", "likes", "method", "recall@10"])
    return frame if model is None else frame[frame["model"] == model].reset_index(drop=True)


def fold_in(catalog: Catalog, liked: Sequence[int], disliked: Sequence[int] = (),
            config: ColdStartConfig | None = None) -> np.ndarray:
    """The user vector (dim,) that best explains ``liked`` / ``disliked`` (raw movie ids)
    against the run's frozen item factors (models with ``folds_in``: the dot-product ones)."""
    config = config or ColdStartConfig()
    liked_idx, disliked_idx = _indices(catalog, liked, disliked)
    if not catalog.model.folds_in:
        raise BadInputError(f"fold-in needs a dot-product model (one of "
                         f"{', '.join(model_names(folds_in=True))}), this run is "
                         f"{catalog.model.name}")
    return catalog.model.fold_in(liked_idx[None], disliked_idx[None], catalog.fold_in_basis(),
                                 **config.solver())[0]


def fold_in_vectors(q: np.ndarray, liked: np.ndarray, disliked: np.ndarray | None = None,
                    config: ColdStartConfig | None = None) -> np.ndarray:
    """:func:`recsys.linalg.ridge_fold_in` with ``config``'s options: (B, d) float32 vectors
    of new users from (B, L) liked and (B, M) disliked item indices, against factors ``q``."""
    return ridge_fold_in(q, liked, disliked, **(config or ColdStartConfig()).solver())


def collaborative_scores(model, liked: np.ndarray, disliked: np.ndarray | None = None,
                         config: ColdStartConfig | None = None, basis: FoldInBasis | None = None):
    """Scores (B, n_items) of every item for a batch of new users (``liked`` (B, L) item
    indices), and their folded-in vectors (B, d) (None for item-item models). ``basis``: the
    model's :meth:`~recsys.models.base.Recommender.fold_in_basis`, when the caller keeps one."""
    liked = np.asarray(liked, np.int64)
    if model.folds_in:
        vectors = model.fold_in(liked, disliked, basis, **(config or ColdStartConfig()).solver())
        return model.score_vectors(vectors), vectors
    if model.score_kind == "item-item":
        rows = np.repeat(np.arange(len(liked)), liked.shape[1])
        x = sp.csr_matrix((np.ones(liked.size), (rows, liked.ravel())),
                          shape=(len(liked), model.n_items))
        scores = x @ model.item_item_weights()  # sparse or dense: sum of the liked items' rows
        return np.asarray(scores.toarray() if sp.issparse(scores) else scores, np.float64), None
    able = model_names(folds_in=True) + model_names(score_kind="item-item")
    raise BadInputError(f"{model.name} cannot score a new user from likes: use a run of "
                     f"{', '.join(able)} (its scores are {model.score_kind}, not a dot product "
                     "with a user vector or a sum of item rows)")


def cold_start(catalog: Catalog, liked: Sequence[int], disliked: Sequence[int] = (), k: int = 10,
               config: ColdStartConfig | None = None) -> pd.DataFrame:
    """Top-``k`` movies for a new user (liked / disliked raw ids are never recommended).

    Returns
    -------
    DataFrame with rank, item_id, title, year, genres, score (the blended score),
    collaborative and content (each z-scored over the rankable movies; content NaN when its
    weight is 0), weight_collaborative and source: "collaborative" / "content" (the term that
    contributed more to the row's score), "both" (each gave at least a third of it) or
    "popularity" (nothing liked). ``attrs["vector"]`` holds the folded-in vector
    (dot-product models) for the map.
    """
    config = config or ColdStartConfig()
    check_k(k)
    liked_idx, disliked_idx = _indices(catalog, liked, disliked)
    banned = np.union1d(liked_idx, disliked_idx)
    n = catalog.model.n_items
    if len(banned) >= n:
        raise BadInputError(f"you liked or disliked all {n:,} movies this run knows, so none is "
                            "left to recommend: remove some from your lists")
    weight, vector = 0.0, None
    collab = content = np.full(n, np.nan)
    if len(liked_idx) == 0:
        score = catalog.item_counts.astype(np.float64)
        source = np.full(n, "popularity", dtype=object)
    else:
        weight = blend_weight(len(liked_idx), catalog.run.train_config.model, config)
        mask = np.zeros((1, n), bool)
        mask[0, banned] = True
        basis = catalog.fold_in_basis() if catalog.model.folds_in else None
        scores, vectors = collaborative_scores(catalog.model, liked_idx[None], disliked_idx[None],
                                               config, basis)
        collab, vector = zscore_rows(scores, mask)[0], None if vectors is None else vectors[0]
        if weight < 1:
            raw = profile_scores(content_matrix(catalog), liked_idx[None], disliked_idx[None])
            content = zscore_rows(raw, mask)[0]
        score, source = blend(collab, content, weight)
    score = score.copy()
    score[banned] = -np.inf
    top = np.argsort(-score, kind="stable")[:min(k, n - len(banned))]
    frame = catalog.rows(top)
    frame.insert(0, "rank", np.arange(1, len(top) + 1))
    frame["score"] = score[top]
    frame["collaborative"], frame["content"] = collab[top], content[top]
    frame["weight_collaborative"] = weight
    frame["source"] = source[top]
    frame.attrs["vector"] = vector
    return frame


def map_position(components: np.ndarray, vector: np.ndarray,
                 liked_coords: np.ndarray) -> tuple[float, float]:
    """Where a folded-in user goes on a PCA map of the item vectors: the user's direction
    through the map's linear part, at the depth of the movies they liked.

    A PCA map places item ``v`` at ``(v - mean) @ components.T``, so a movie's score
    ``u . v`` moves across the map as ``(u @ components.T) . (x, y)`` (plus a constant): the
    2-D shadow of ``u`` is the direction in which scores rise, the arrow the map can show.
    A user vector is not an item, though: its length comes from the fold-in's ridge penalty,
    and pushed through the affine map as a point it lands by the map's centre whatever the
    taste. So the point is put on that arrow at the distance that best matches the liked
    movies' positions (least squares along the ray, i.e. their mean projection on it).

    Parameters
    ----------
    components : (2, d) float array, the map's PCA axes (``Projection.pca_components``).
    vector : (d,) float array, the folded-in user vector.
    liked_coords : (n, 2) float array, map positions of the liked movies (n >= 1).

    Returns
    -------
    (x, y) on the map; the origin when the user's direction is orthogonal to both axes.
    """
    arrow = np.asarray(components, np.float64) @ np.asarray(vector, np.float64).ravel()
    length = float(np.linalg.norm(arrow))
    if length < 1e-12:
        return 0.0, 0.0
    unit = arrow / length
    # a liked movie behind the user's direction would pull the point through the centre
    depth = max(float(np.mean(np.asarray(liked_coords, np.float64) @ unit)), 0.0)
    x, y = depth * unit
    return float(x), float(y)


def blend(collab: np.ndarray, content: np.ndarray, weight: float):
    """``weight * collab + (1 - weight) * content`` and, per entry, which term placed it:
    "both" when each gave at least a third of a positive score, else the larger term."""
    if weight >= 1:
        return collab.copy(), np.full(collab.shape, "collaborative", dtype=object)
    if weight <= 0:
        return content.copy(), np.full(content.shape, "content", dtype=object)
    a, b = weight * collab, (1 - weight) * content
    small = np.minimum(a, b)
    both = (small > 0) & (2 * small >= np.maximum(a, b))
    larger = np.where(a >= b, "collaborative", "content")
    return a + b, np.where(both, "both", larger).astype(object)


def zscore_rows(values: np.ndarray, banned: np.ndarray) -> np.ndarray:
    """Each row minus its mean over the unbanned entries, over their standard deviation: puts
    scores of different kinds on one scale before blending."""
    keep = ~np.asarray(banned, bool)
    count = np.maximum(keep.sum(axis=1, keepdims=True), 1)
    mean = (values * keep).sum(axis=1, keepdims=True) / count
    std = np.sqrt((((values - mean) ** 2) * keep).sum(axis=1, keepdims=True) / count)
    return (values - mean) / np.maximum(std, 1e-12)


# ---------------------------------------------------------------------------- content
def content_matrix(catalog: Catalog) -> sp.csr_matrix:
    """TF-IDF rows (L2-normalised) over title words and genre tokens, one per item index;
    computed once per catalogue."""
    if catalog not in _CONTENT:
        _CONTENT[catalog] = tfidf(catalog.movies)
    return _CONTENT[catalog]


def tfidf(movies: pd.DataFrame) -> sp.csr_matrix:
    """TF-IDF rows of a movies table (title, genres), in its row order."""
    titles = movies["title"].astype(str).str.replace(r"\(\d{4}\)", " ", regex=True)
    genres = movies["genres"].astype(str).str.split("|").map(
        lambda gs: " ".join("genre_" + "".join(c if c.isalnum() else "_" for c in g.lower())
                            for g in gs if g))
    docs = titles + " " + genres + " " + genres  # genres twice: taste outweighs title words
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    return vectorizer.fit_transform(docs).tocsr()


def content_scores(catalog: Catalog, liked: np.ndarray, disliked: np.ndarray = ()) -> np.ndarray:
    """Cosine of every item's TF-IDF row with the liked profile (minus half the disliked)."""
    liked = np.asarray(liked, np.int64)[None]
    return profile_scores(content_matrix(catalog), liked, np.asarray(disliked, np.int64)[None])[0]


def profile_scores(x: sp.csr_matrix, liked: np.ndarray,
                   disliked: np.ndarray | None = None) -> np.ndarray:
    """(B, n_items) cosines of TF-IDF rows ``x`` with each user's profile: the mean of the
    liked rows minus half the mean of the disliked, for ``liked`` (B, L) item indices."""
    profile = _mean_rows(x, liked)
    if disliked is not None and np.size(disliked):
        profile = profile - 0.5 * _mean_rows(x, disliked)
    norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=1)).ravel())
    profile = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ profile
    return np.asarray((profile @ x.T).toarray(), np.float64)


def _mean_rows(x: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    rows = np.asarray(rows, np.int64)
    users = np.repeat(np.arange(len(rows)), rows.shape[1])
    average = sp.csr_matrix((np.full(rows.size, 1.0 / rows.shape[1]), (users, rows.ravel())),
                            shape=(len(rows), x.shape[0]))
    return (average @ x).tocsr()


# ---------------------------------------------------------------------------- helpers
def _indices(catalog: Catalog, liked: Sequence[int], disliked: Sequence[int]):
    liked_idx = np.unique([catalog.item_index(i) for i in liked]).astype(np.int64)
    disliked_idx = np.unique([catalog.item_index(i) for i in disliked]).astype(np.int64)
    both = np.intersect1d(liked_idx, disliked_idx)
    if len(both):
        raise BadInputError(f"movies {catalog.run.item_ids[both].tolist()} are both liked and "
                         "disliked: keep each in one list")
    return liked_idx, disliked_idx
