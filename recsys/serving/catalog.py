"""Serving one run: recommendations with explanations, similar movies and users, title search.

Everything takes a :class:`Catalog`, built once per (run, data) and then only read, so the app
can share one per run between visitors. Ids in and out are raw MovieLens ids; indices are
positions in ``run.item_ids`` / ``run.user_ids``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.checks import check_choice, check_k
from recsys.data.loading import MovieLens, movies_for
from recsys.data.splits import Split
from recsys.errors import BadInputError
from recsys.evaluation import lenses
from recsys.evaluation import neighbours as nb
from recsys.evaluation.lenses import (  # noqa: F401  (pages read them here)
    COOCCURRENCE_LENS,
    EMBEDDING_LENSES,
    LENS_DESCRIPTIONS,
)
from recsys.linalg import FoldInBasis, cosine_item_similarity, unit_rows
from recsys.models import model_names
from recsys.models.base import BIASED_SCORES
from recsys.serving.index import VectorIndex
from recsys.storage.runs import Run, prepare_split

SCORINGS = ("dot", "cosine")
MOVIE_COLUMNS = ["item_id", "title", "year", "genres"]
_ARTICLE = re.compile(r"^(?P<name>.*), (?P<article>the|a|an|les|la|le|il|das|der|die)$")
_YEAR = re.compile(r"^(?P<text>.*?)[\s,]*\(?(?P<year>(?:18|19|20)\d\d)\)?$")


class AmbiguousMovieError(BadInputError):
    """A title query matches several movies; ``candidates`` lists them (item_id, title)."""

    def __init__(self, query: str, candidates: pd.DataFrame) -> None:
        self.candidates = candidates
        shown = "; ".join(f"{t} [id {i}]" for i, t in
                          zip(candidates["item_id"][:10], candidates["title"][:10], strict=True))
        more = f" and {len(candidates) - 10} more" if len(candidates) > 10 else ""
        super().__init__(f"{query!r} matches {len(candidates)} movies: {shown}{more}; "
                         "add the year or pass the movie id")


@dataclass(eq=False)
class Catalog:
    """What serving needs from one run, computed once: the run, its split, the movies table
    aligned with item indices, the users' known positives and lazily built indexes.

    Treat it as read-only; the lazy caches only ever fill in values that never change.
    """

    run: Run
    split: Split
    movies: pd.DataFrame
    _indexes: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, run: Run, ml: MovieLens) -> Catalog:
        """Checks that ``ml`` is the run's data and rebuilds the run's split."""
        run.check_dataset(ml)
        split = prepare_split(ml, run.split_config)
        if not np.array_equal(split.train.item_ids, run.item_ids):
            raise BadInputError("the run's item mapping differs from the data's: retrain the run")
        return cls(run, split, movies_for(ml, run.item_ids))

    # ------------------------------------------------------------------ basics
    @property
    def model(self):
        return self.run.model

    @cached_property
    def seen(self) -> sp.csr_matrix:
        """Users x items known positives (train + validation, the split's
        ``seen_at_test``): what recommendations leave out and explanations draw on."""
        return self.known_positives.to_csr()

    @cached_property
    def known_positives(self):
        """The known positives (:attr:`seen`) as Interactions, with timestamps (for "most
        recent"); a model's ``history`` is its training curve, not this."""
        return self.split.seen_at_test

    @cached_property
    def positives_by_recency(self) -> tuple[np.ndarray, np.ndarray]:
        """The known positives' (user index, item index) sorted by user, newest first within a
        user: where the funnel finds a user's latest likes (a sort of every positive, ~4 ms
        on ML-100K, done once)."""
        h = self.known_positives
        order = np.lexsort((-h.timestamps, h.user_index))
        return h.user_index[order], h.item_index[order]

    @cached_property
    def item_counts(self) -> np.ndarray:
        """Known positives per item: popularity without peeking at the test period."""
        return np.asarray(self.seen.sum(axis=0)).ravel().astype(np.int64)

    @cached_property
    def cooccurrence(self) -> sp.csr_matrix:
        """Item x item cosine of the known-positive columns (item-kNN similarity, untruncated):
        explains recommendations of models without item vectors."""
        return cosine_item_similarity(self.seen.astype(np.float32))

    @cached_property
    def damped_cooccurrence(self) -> nb.Similarity:
        """The "cooc-damped" lens over the known positives: similar movies' reference list."""
        return nb.damped_cooccurrence(self.seen)

    @cached_property
    def debiased_item_factors(self) -> np.ndarray:
        """Item factors without their popularity direction (the "items-debiased" space of
        :class:`~recsys.evaluation.lenses.Lens`)."""
        return lenses.LENSES["debiased"].vectors(self.item_factors("the debiased lens"),
                                                 self.seen)

    @cached_property
    def search_keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lower-cased titles without year, the same with a trailing article moved to the
        front ("godfather, the" -> "the godfather"), and years (-1 when unknown)."""
        titles = self.movies["title"].astype(str).str.lower()
        bare = titles.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True).str.strip()
        fronted = bare.map(_article_first)
        years = self.movies["year"].astype("Float64").fillna(-1).to_numpy(np.int64)
        return bare.to_numpy(str), fronted.to_numpy(str), years

    @cached_property
    def titles_without_article(self) -> np.ndarray:
        """"godfather, the" -> "godfather": so "godfather" is an exact match for it."""
        bare = self.search_keys[0]
        return np.array([_ARTICLE.sub(r"\g<name>", t) for t in bare], dtype=str)

    def user_index(self, user_id: int) -> int:
        """Index of raw user id ``user_id``; ValueError if the run does not know it."""
        return _index_of(self.run.user_ids, user_id, "user")

    def item_index(self, item_id: int) -> int:
        """Index of raw movie id ``item_id``; ValueError if the run does not know it."""
        return _index_of(self.run.item_ids, item_id, "movie")

    def item_indices(self, item_ids) -> np.ndarray:
        """Indices (int64) of raw movie ids; ValueError for an id the run does not know."""
        return np.array([self.item_index(i) for i in item_ids], np.int64)

    def item_factors(self, purpose: str) -> np.ndarray:
        factors = self.model.item_factors()
        if factors is None:
            raise BadInputError(f"{self.run.train_config.model} has no item embeddings, which "
                             f"{purpose} needs: pick a run of "
                             f"{', '.join(model_names(item_vectors=True))}")
        return factors

    def user_factors(self, purpose: str) -> np.ndarray:
        factors = self.model.user_factors()
        if factors is None:
            raise BadInputError(f"{self.run.train_config.model} has no user embeddings, which "
                             f"{purpose} needs: pick a run of "
                             f"{', '.join(model_names(user_vectors=True))}")
        return factors

    def fold_in_basis(self) -> FoldInBasis:
        """The model's :meth:`~recsys.models.base.Recommender.fold_in_basis` (its item Gram
        matrix), built once: a new visitor's profile is folded in on every view of the page,
        against item factors that never change once a run is loaded. Kept with the model
        object it was built from and rebuilt for any other, so no model folds in against
        another's factors."""
        model = self.model
        cached = self._indexes.get("fold-in basis")
        if cached is None or cached[0] is not model:
            cached = self._indexes["fold-in basis"] = (model, model.fold_in_basis())
        return cached[1]

    def lens_index(self, lens: lenses.Lens) -> tuple[VectorIndex, np.ndarray]:
        """The exact FAISS index that ``lens`` searches, and the vectors it holds."""
        vectors = (self.debiased_item_factors if lens.space == "items-debiased"
                   else self.item_factors("similar movies"))
        return self.index(lens.metric, of=lens.space), vectors

    def lens_scores(self, lens: lenses.Lens, items: np.ndarray) -> np.ndarray:
        """``(len(items), n_items)`` similarities through ``lens`` as the neighbour-quality
        measure computes them (:meth:`Lens.similarity`, built once per catalogue): how a lens
        that is not one vector space (``co_likes``) is served."""
        key = ("similarity", lens.name)
        if key not in self._indexes:
            self._indexes[key] = lens.similarity(self.item_factors("similar movies"), self.seen,
                                                 nb.relative_co_likes(self.seen))
        return self._indexes[key](np.asarray(items, np.int64))

    def index(self, metric: str = "cosine", kind: str = "flat", of: str = "items",
              **params) -> VectorIndex:
        """The FAISS index of item, debiased item (``of="items-debiased"``) or user factors,
        cached in memory and in the run dir."""
        key = (of, metric, kind, tuple(sorted(params.items())))
        if key not in self._indexes:
            check_choice("index of", of, ("items", "items-debiased", "users"))
            vectors = (self.item_factors("a similarity index") if of == "items"
                       else self.debiased_item_factors if of == "items-debiased"
                       else self.user_factors("a user similarity index"))
            cache_dir = Path(self.run.path) / "index" if self.run.path else None
            self._indexes[key] = VectorIndex.cached(vectors, cache_dir, of, metric, kind,
                                                    **params)
        return self._indexes[key]

    def rows(self, items: np.ndarray) -> pd.DataFrame:
        """Movie columns for item indices, in that order."""
        return self.movies.iloc[np.asarray(items, np.int64)][MOVIE_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------- recommendations
def recommend(
    catalog: Catalog,
    user_id: int,
    k: int = 10,
    exclude_seen: bool = True,
    scoring: str = "dot",
    explain: bool = False,
) -> pd.DataFrame:
    """Top-``k`` movies for raw user ``user_id``, best first.

    ``scoring="dot"`` is the model's own score (any model); ``"cosine"`` ranks by the cosine of
    user and item vectors (factor models only), which ignores vector length and biases.

    Returns
    -------
    DataFrame with rank, item_id, title, year, genres, score; with ``explain`` also
    ``because`` (the 1-3 liked movies most similar to each one, "title (similarity)"),
    ``because_items`` (list of (item_id, title, similarity)) and, for MF models, the score
    parts ``dot``, ``item_bias``, ``user_bias`` (and ``global_mean`` for mf-mse).
    """
    items, scores = recommend_items(catalog, user_id, k, exclude_seen, scoring)
    frame = catalog.rows(items)
    frame.insert(0, "rank", np.arange(1, len(items) + 1))
    frame["score"] = scores.astype(np.float64)
    if explain:
        frame = pd.concat([frame, explain_items(catalog, user_id, items)], axis=1)
    return frame


def recommend_items(catalog: Catalog, user_id: int, k: int = 10, exclude_seen: bool = True,
                    scoring: str = "dot") -> tuple[np.ndarray, np.ndarray]:
    """:func:`recommend`'s ranking alone: (item indices, scores), best first, without the
    table around it. The serving API logs and returns these (a table costs ~2 ms a list)."""
    check_k(k)
    check_choice("scoring", scoring, SCORINGS)
    user = catalog.user_index(user_id)
    if scoring == "dot":
        return catalog.model.recommend(user, k, catalog.seen if exclude_seen else None)
    query = catalog.user_factors("cosine scoring")[user]
    exclude = catalog.seen[user].indices if exclude_seen else None
    items, scores = catalog.index("cosine").search(query, k, exclude)
    keep = items[0] >= 0
    return items[0][keep], scores[0][keep]


def explain_items(catalog: Catalog, user_id: int, items: np.ndarray, n_reasons: int = 3):
    """Why each of ``items`` (indices) suits the user: the liked movies most like it.

    Similarity is the cosine of item factors, or for models without them the co-occurrence
    cosine of the known-positive matrix. MF models also get their score decomposition. A
    model whose scores ignore what the user liked (popularity) gets no reasons at all.
    """
    user = catalog.user_index(user_id)
    items = np.asarray(items, np.int64)
    known = catalog.seen[user].indices
    if catalog.model.score_kind == "popularity":  # the same list for all: it owes the user nothing
        known = known[:0]
    sims = _item_similarity(catalog, items, known)  # (len(items), len(known))
    sims[items[:, None] == known[None, :]] = -np.inf  # a movie never explains itself
    top = np.argsort(-sims, axis=1, kind="stable")[:, :n_reasons]
    top = [row[np.isfinite(sims[r, row])] for r, row in enumerate(top)]
    titles = catalog.movies["title"].to_numpy()
    because_items = [
        [(int(catalog.run.item_ids[known[j]]), titles[known[j]], float(sims[r, j]))
         for j in row]
        for r, row in enumerate(top)
    ]
    out = pd.DataFrame({
        "because": ["; ".join(f"{t} ({s:.2f})" for _, t, s in reasons)
                    for reasons in because_items],
        "because_items": because_items,
    })
    return pd.concat([out, score_parts(catalog, user, items)], axis=1)


def score_parts(catalog: Catalog, user: int, items: np.ndarray) -> pd.DataFrame:
    """MF score = user . item + item bias + user bias (+ global mean); empty for other models."""
    model = catalog.model
    if model.score_kind not in BIASED_SCORES:
        return pd.DataFrame(index=range(len(items)))
    parts = {
        "dot": model.item_factors()[items] @ model.user_factors()[user],
        "item_bias": model.item_biases()[items],
        "user_bias": np.full(len(items), model.user_biases()[user]),
    }
    mean = model.global_mean()
    if mean:
        parts["global_mean"] = np.full(len(items), mean)
    return pd.DataFrame({k: np.asarray(v, np.float64) for k, v in parts.items()})


def _item_similarity(catalog: Catalog, items: np.ndarray, others: np.ndarray) -> np.ndarray:
    factors = catalog.model.item_factors()
    if factors is None:
        return catalog.cooccurrence[items][:, others].toarray()
    unit = unit_rows(factors)
    return unit[items] @ unit[others].T


# ---------------------------------------------------------------------------- similar movies
@dataclass(frozen=True, eq=False)
class SimilarMovies:
    """Neighbours of one movie in embedding space (through ``lens``) and by damped
    co-occurrence, and their overlap."""

    movie: pd.Series  # the query movie's row
    embedding: pd.DataFrame | None  # None when the model has no item embeddings
    cooccurrence: pd.DataFrame
    overlap: list[int]  # raw ids in both lists
    note: str = ""
    lens: str | None = None  # the embedding list's lens; None when there is no such list

    @property
    def overlap_share(self) -> float:
        n = len(self.cooccurrence)
        return len(self.overlap) / n if n else 0.0

    def to_dict(self) -> dict:
        """Plain JSON-ready form (for ``--json``): the movie, both lists and their overlap."""
        return {
            "movie": as_records(self.movie.to_frame().T[[*MOVIE_COLUMNS, "popularity"]])[0],
            "lens": self.lens,
            "embedding": None if self.embedding is None else as_records(self.embedding),
            "cooccurrence": as_records(self.cooccurrence),
            "overlap": self.overlap,
            "note": self.note,
        }


def similar_movies(
    catalog: Catalog, movie: int | str, k: int = 10, lens: str = "cosine",
    scoring: str | None = None, min_positives: int = nb.MIN_POSITIVES,
) -> SimilarMovies:
    """The ``k`` movies nearest to ``movie`` (raw id or title query) in item-factor space
    through ``lens`` (one of :data:`EMBEDDING_LENSES`, FAISS), the ``k`` nearest by damped
    co-occurrence on the known positives (:data:`COOCCURRENCE_LENS`), and which movies both
    lists share. ``scoring`` is the old name of ``lens`` (cosine or dot) and overrides it.

    Neighbours come only from movies with at least ``min_positives`` known positives: rarer
    ones have barely trained vectors that otherwise surface as noise (the query may be any).

    Every list has rank, item_id, title, year, genres, score, popularity (number of ratings),
    lens and ``also_cooccurrence`` / ``also_embedding`` (in the other list too).
    """
    check_k(k)
    lens = scoring or lens
    check_choice("lens", lens, EMBEDDING_LENSES)
    item = resolve_movie(catalog, movie)
    rare = np.flatnonzero(catalog.item_counts < min_positives)
    banned = np.union1d(rare, [item])
    cooc = _neighbour_frame(catalog, *_cooccurrence_neighbours(catalog, item, k, banned),
                            COOCCURRENCE_LENS)
    embedding, note = None, ""
    if catalog.model.item_factors() is None:
        note = f"{catalog.run.train_config.model} has no item embeddings: co-occurrence only"
    else:
        found = _embedding_neighbours(catalog, item, k, lens, banned)
        embedding = _neighbour_frame(catalog, *found, lens)
    shared = set() if embedding is None else set(embedding["item_id"]) & set(cooc["item_id"])
    if embedding is not None:
        embedding["also_cooccurrence"] = embedding["item_id"].isin(shared)
        cooc["also_embedding"] = cooc["item_id"].isin(shared)
    overlap = [] if embedding is None else [int(i) for i in embedding["item_id"] if i in shared]
    return SimilarMovies(catalog.movies.iloc[item], embedding, cooc, overlap, note,
                         None if embedding is None else lens)


def default_lens(catalog: Catalog) -> str:
    """The lens similar-movie lists of this run read best through: its model's own
    (``default_lens``, measured in bench/NEIGHBOURS.md); cosine for a model without item
    embeddings, whose lists are co-occurrence only."""
    return type(catalog.model).default_lens or "cosine"


def _embedding_neighbours(catalog: Catalog, item: int, k: int, lens: str, banned: np.ndarray):
    chosen = lenses.lens(lens)
    if chosen.co_likes:  # not a pure vector space: every movie scored exactly (~1 ms)
        scores = catalog.lens_scores(chosen, np.array([item]))[0]
        scores[banned] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]
        return top, scores[top]
    index, vectors = catalog.lens_index(chosen)
    ids, scores = index.search(vectors[item], k, exclude=banned)
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


def _cooccurrence_neighbours(catalog: Catalog, item: int, k: int, banned: np.ndarray):
    """Top ``k`` by damped co-occurrence among movies co-liked at least once."""
    row = catalog.damped_cooccurrence(np.array([item]))[0]
    row[banned] = 0.0
    candidates = np.flatnonzero(row > 0)
    top = candidates[np.argsort(-row[candidates], kind="stable")[:k]]
    return top, row[top]


def _neighbour_frame(catalog: Catalog, items: np.ndarray, scores: np.ndarray,
                     lens: str) -> pd.DataFrame:
    frame = catalog.rows(items)
    frame.insert(0, "rank", np.arange(1, len(items) + 1))
    frame["score"] = np.asarray(scores, np.float64)
    frame["popularity"] = catalog.movies["popularity"].to_numpy()[np.asarray(items, np.int64)]
    frame["lens"] = lens
    return frame


def as_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain-Python dicts (int, float, str, bool, list, None) for JSON: numpy scalars
    unwrapped, missing values and non-finite floats as None."""
    return [{key: json_value(value) for key, value in row.items()}
            for row in frame.to_dict(orient="records")]


def json_value(value):
    """One value as plain JSON: numpy scalars unwrapped, sequences as lists, missing values
    (None, pd.NA, NaT) and non-finite floats as None (shared with the serving API)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_value(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------- similar users
def similar_users(catalog: Catalog, user_id: int, k: int = 10, n_shared: int = 5) -> pd.DataFrame:
    """The ``k`` users nearest to ``user_id`` and the movies both liked.

    Nearest by cosine of user factors; for models without them, by cosine of the users' known
    positives (rows of :attr:`Catalog.seen`). ``df.attrs["space"]`` says which.

    Returns
    -------
    DataFrame with rank, user_id, similarity, n_shared, shared (up to ``n_shared`` titles of
    shared movies, most popular first)
    """
    check_k(k)
    user = catalog.user_index(user_id)
    if catalog.model.user_factors() is not None:
        space = "user embeddings (cosine)"
        vectors = catalog.user_factors("similar users")
        ids, scores = catalog.index("cosine", of="users").search(vectors[user], k, np.array([user]))
        ids, scores = ids[0][ids[0] >= 0], scores[0][ids[0] >= 0]
    else:
        space = "known positives (cosine)"
        ids, scores = _co_liking_users(catalog.seen, user, k)
    shared_counts = np.asarray(catalog.seen[ids].multiply(catalog.seen[user]).sum(axis=1)).ravel()
    titles = catalog.movies["title"].to_numpy()
    shared = []
    for other in ids:
        both = np.intersect1d(catalog.seen[user].indices, catalog.seen[other].indices)
        both = both[np.argsort(-catalog.item_counts[both], kind="stable")][:n_shared]
        shared.append(list(titles[both]))
    frame = pd.DataFrame({
        "rank": np.arange(1, len(ids) + 1),
        "user_id": catalog.run.user_ids[ids],
        "similarity": scores.astype(np.float64),
        "n_shared": shared_counts.astype(np.int64),
        "shared": shared,
    })
    frame.attrs["space"] = space
    return frame


def _co_liking_users(seen: sp.csr_matrix, user: int, k: int):
    norms = np.sqrt(np.asarray(seen.sum(axis=1)).ravel())
    overlap = np.asarray((seen @ seen[user].T).todense()).ravel()
    sims = overlap / np.maximum(norms * norms[user], 1e-12)
    sims[user] = -np.inf
    top = np.argsort(-sims, kind="stable")[:k]
    return top, sims[top]


# ---------------------------------------------------------------------------- title search
def find_movies(catalog: Catalog, query: str, limit: int | None = 20) -> pd.DataFrame:
    """Movies whose title contains ``query`` (case-insensitive; a trailing year such as
    "star wars 1977" or "(1977)" must match; "the godfather" finds "Godfather, The").

    Exact title matches come first, then the most popular. Returns item_id, title, year,
    genres, popularity (empty when nothing matches).
    """
    text, year = _parse_query(query)
    bare, fronted, years = catalog.search_keys
    hit = np.char.find(bare, text) >= 0
    hit |= np.char.find(fronted, text) >= 0
    if year is not None:
        hit &= years == year
    exact = (bare == text) | (fronted == text) | (catalog.titles_without_article == text)
    found = np.flatnonzero(hit)
    order = np.lexsort((-catalog.movies["popularity"].to_numpy()[found], ~exact[found]))
    found = found[order][:limit]
    frame = catalog.movies.iloc[found][[*MOVIE_COLUMNS, "popularity"]].reset_index(drop=True)
    frame.attrs["exact"] = exact[found]
    return frame


def resolve_movie(catalog: Catalog, movie: int | str) -> int:
    """Item index of ``movie``: a raw id (int or digits) or a title query.

    A query matching several titles resolves only if exactly one title matches exactly;
    otherwise :class:`AmbiguousMovieError` lists the candidates. No match raises ValueError.
    """
    if isinstance(movie, (int, np.integer)) or str(movie).strip().isdigit():
        return catalog.item_index(int(movie))
    if not str(movie).strip():
        raise BadInputError("empty movie query: give a title or a movie id")
    found = find_movies(catalog, str(movie), limit=None)
    if found.empty:
        raise BadInputError(f"no movie title contains {movie!r}: try fewer words or another "
                         "spelling (find_movies lists matches)")
    exact = found.attrs["exact"]
    if len(found) == 1 or exact.sum() == 1:
        chosen = found["item_id"].iloc[int(np.argmax(exact)) if exact.sum() == 1 else 0]
        return catalog.item_index(int(chosen))
    raise AmbiguousMovieError(str(movie), found)


def _parse_query(query: str) -> tuple[str, int | None]:
    text = " ".join(str(query).lower().split())
    match = _YEAR.match(text)
    if match and match["text"]:
        return match["text"].strip(), int(match["year"])
    return text, None


def _article_first(title: str) -> str:
    match = _ARTICLE.match(title)
    return f"{match['article']} {match['name']}" if match else title


# ---------------------------------------------------------------------------- helpers
def _index_of(ids: np.ndarray, raw: int, kind: str) -> int:
    try:
        raw = int(raw)
    except (TypeError, ValueError):
        raise BadInputError(f"{kind} id must be an integer, got {raw!r}") from None
    pos = int(np.searchsorted(ids, raw))
    if pos >= len(ids) or ids[pos] != raw:
        raise BadInputError(f"unknown {kind} id {raw}: this run knows {len(ids)} {kind}s with ids "
                         f"{ids.min()}..{ids.max()}")
    return pos
