"""Map structure: how much of the genre structure of item vectors a 2-D map keeps, how evenly
it uses its frame, and what its regions hold.

A map is read by its neighbourhoods: a movie's neighbours on the picture should be movies like
it. :func:`map_structure` scores that with the genre measure of
:mod:`recsys.evaluation.neighbours` (IDF-weighted genre Jaccard over a random pair's, the
"genre lift"): once for the k nearest points on the map, once for the k nearest vectors by
cosine in the space that was projected (the ceiling a map can reach), and "kept" is the share
of the ceiling's lift above chance that the map holds. It also measures how the map fills its
frame, and whether a far island of rarely-rated movies stretches the frame (the UMAP of
mf-als did: a thin strip plus an island). :func:`region_labels` names the regions of a map by
their over-represented genres and their best-known titles. bench/MAP_STRUCTURE.md has the
numbers that chose the app's defaults. Pure numpy / scipy / scikit-learn: no UI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from recsys.errors import BadInputError
from recsys.evaluation import neighbours as nb
from recsys.evaluation.lenses import debiased_vectors
from recsys.linalg import unit_rows

K = 10  # neighbours per movie, as in the similar-movies measure (bench/NEIGHBOURS.md)
GRID = 20  # cells per side of the frame when measuring how evenly points fill it
FILL_MASS = 0.9  # `fill` = share of the frame's cells holding this share of the points
RARE_SHARE = 0.25  # "rare" = the least popular quarter of the mapped movies
# An island is flagged when the frame without the rare movies would be at most half as
# large, i.e. rare movies alone claim >= half the picture (UMAP of mf-als over all movies,
# whose 330 unseen movies sit at the zero vector: 0.69-0.71; maps whose rare movies lie among
# the others: < 0.15; bench/MAP_STRUCTURE.md).
ISLAND_FRAME = 0.5


# What a map can project: the item factors as they are, at unit length, or at unit length
# after removing their shared popularity direction (the "debiased" lens's space).
VECTOR_KINDS = ("raw", "unit", "debiased")


def map_vectors(item_factors: np.ndarray, known, kind: str = "debiased") -> np.ndarray:
    """The vectors a map of ``kind`` (:data:`VECTOR_KINDS`) projects, (n_items, d) float64.

    ``known`` (users x items csr) holds the positives the model was fitted on, over which
    "debiased" measures the popularity direction
    (:func:`~recsys.evaluation.lenses.debiased_vectors`).
    Unit rows matter for PCA (otherwise a vector's length, i.e. popularity, is the first axis);
    t-SNE and UMAP read cosine distances and so ignore length anyway.
    """
    if kind not in VECTOR_KINDS:
        raise BadInputError(f"unknown vectors {kind!r}: choose one of {', '.join(VECTOR_KINDS)}")
    v = np.asarray(item_factors, np.float64)
    if kind == "raw":
        return v
    return unit_rows(debiased_vectors(v, known) if kind == "debiased" else v)


@dataclass(frozen=True)
class MapSettings:
    """What an item map shows: a projection of which vectors of which movies."""

    method: str = "tsne"  # a recsys.lessons.projection.METHODS name
    vectors: str = "debiased"  # a VECTOR_KINDS name
    min_positives: int = nb.MIN_POSITIVES  # movies with fewer known positives are left out


# The app's item map (Home and the Embedding map), chosen in bench/MAP_STRUCTURE.md: it keeps
# 87-95 % of its vectors' genre lift on every model and training seed benched (mf-als, mf-bpr,
# mf-bce), fills the frame best and has no island; the similar-movies catalogue uses the
# same floor of 5 known positives.
DEFAULT_MAP = MapSettings()


def map_input(item_factors: np.ndarray, known,
              settings: MapSettings = DEFAULT_MAP) -> tuple[np.ndarray, np.ndarray]:
    """(item indices on the map, their vectors to project) for ``settings``.

    ``known``: users x items csr of the positives the model was fitted on (``Catalog.seen``).
    Pass the vectors to ``recsys.lessons.projection.project(vectors, settings.method, ...)``;
    row i of the map is item ``items[i]``.
    """
    items = nb.catalogue(known, settings.min_positives)
    return items, map_vectors(item_factors, known, settings.vectors)[items]


@dataclass(frozen=True)
class MapStructure:
    """How much genre structure a 2-D map keeps and how it uses its frame (one map)."""

    n: int  # points on the map
    k: int  # neighbours per point
    map_lift: float  # genre lift of each point's k nearest 2-D neighbours (1 = random pairs)
    space_lift: float  # the same for k nearest cosine neighbours of the projected vectors
    kept: float  # (map_lift - 1) / (space_lift - 1): share of the structure above chance kept
    fill: float  # share of the frame's GRID x GRID cells that hold 90 % of the points
    rare_frame: float  # share of the frame's area that only the rarest quarter reaches
    island: bool  # rare_frame >= ISLAND_FRAME: rare movies alone stretch the frame

    def as_dict(self) -> dict[str, float | int | bool]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def map_structure(coords: np.ndarray, vectors: np.ndarray, genres: np.ndarray,
                  popularity: np.ndarray, k: int = K) -> MapStructure:
    """Genre structure kept by a map and how evenly it fills its frame.

    Parameters
    ----------
    coords : (n, 2) float, the map (e.g. ``Projection.coords``).
    vectors : (n, d) float, the vectors that were projected, row i the point i; its cosine
        neighbours are the ceiling.
    genres : (n, n_genres) bool, e.g. ``neighbours.genre_matrix(movies["genres"])`` restricted
        to the mapped movies. The genre weights (-log share) and the random pairs are taken
        among the mapped movies, so a map of popular movies is judged against them.
    popularity : (n,) known positives (or ratings) per mapped movie: who counts as rare.
    k : neighbours per point, fewer than n.

    Returns
    -------
    :class:`MapStructure`. ``kept`` is NaN when the vectors themselves hold no genre structure
    (``space_lift <= 1``): there is nothing for a map to keep.
    """
    coords, vectors, genres, popularity = _checked(coords, vectors, genres, popularity, k)
    items = np.arange(len(coords))
    map_lift = genre_lift(map_neighbours(coords, k), genres)
    space_lift = genre_lift(nb.top_k_neighbours(nb.cosine_lens(vectors), items, k), genres)
    kept = (map_lift - 1) / (space_lift - 1) if space_lift > 1 else float("nan")
    rare = rare_frame(coords, popularity)
    return MapStructure(len(coords), k, map_lift, space_lift, float(kept), frame_fill(coords),
                        rare, bool(rare >= ISLAND_FRAME))


def genre_lift(neighbours: np.ndarray, genres: np.ndarray) -> float:
    """Mean IDF-weighted genre Jaccard of every point with its neighbours (rows of
    ``neighbours`` index ``genres``), over the exact mean for a uniformly random other point:
    1 = random pairs (:func:`recsys.evaluation.neighbours.genre_agreement`)."""
    items = np.arange(len(genres))
    agreement, chance = nb.genre_agreement(neighbours, items, genres, items)
    return agreement / chance if chance > 0 else float("nan")


def map_neighbours(coords: np.ndarray, k: int = K) -> np.ndarray:
    """(n, k) indices of each point's ``k`` nearest other points on the map (Euclidean),
    nearest first, by a k-d tree.

    A point is never its own neighbour, also when several points share its position (the
    tree may then list a twin before it): the query asks for ``k + 1`` and drops the point
    itself, or the farthest when the point itself was not among them.
    """
    coords = np.asarray(coords, np.float64)
    n = len(coords)
    _, idx = cKDTree(coords).query(coords, k + 1)
    own = idx == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True  # exactly one dropped per row
    return idx[~own].reshape(n, k)


def frame_fill(coords: np.ndarray, grid: int = GRID, mass: float = FILL_MASS) -> float:
    """Share of the frame that holds ``mass`` of the points: the frame (the points' bounding
    box, what a chart's autoscale shows) is cut into ``grid`` x ``grid`` cells and the
    fullest cells are counted until they hold ``mass`` of the points.

    A map spread over its frame scores high (uniform points in a square, 4 per cell: ~0.75;
    a round Gaussian blob: ~0.35), a thin strip or a small body beside a far island low (< 0.15).
    """
    counts = _cell_counts(np.asarray(coords, np.float64), grid)
    held = np.cumsum(np.sort(counts)[::-1])
    cells = int(np.searchsorted(held, mass * held[-1])) + 1
    return cells / counts.size


def rare_frame(coords: np.ndarray, popularity: np.ndarray,
               rare_share: float = RARE_SHARE) -> float:
    """Share of the frame's area that only rare movies reach: 1 - area of the bounding box of
    the others over the area of the whole frame.

    "Rare" is the least popular ``rare_share`` of the mapped movies (ties by popularity
    broken by position, so exactly that many). Where rare movies lie among the others this is
    small (a fringe at the frame's edge); where they form a far island, or straggle far out,
    they claim most of the frame and the map's body is squeezed into a corner.
    """
    coords = np.asarray(coords, np.float64)
    order = np.argsort(np.asarray(popularity), kind="stable")
    common = order[int(round(rare_share * len(coords))):]
    whole = np.ptp(coords, axis=0)
    body = np.ptp(coords[common], axis=0)
    area = float(np.prod(whole))
    return 1.0 - float(np.prod(body)) / area if area > 0 else 0.0


def _cell_counts(coords: np.ndarray, grid: int) -> np.ndarray:
    low, span = coords.min(axis=0), np.ptp(coords, axis=0)
    scaled = (coords - low) / np.where(span > 0, span, 1.0)
    cell = np.minimum((scaled * grid).astype(np.int64), grid - 1)
    return np.bincount(cell[:, 0] * grid + cell[:, 1], minlength=grid * grid)


def _checked(coords, vectors, genres, popularity, k):
    coords = np.asarray(coords, np.float64)
    vectors = np.asarray(vectors, np.float64)
    genres = np.asarray(genres, bool)
    popularity = np.asarray(popularity)
    n = len(coords)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise BadInputError(f"coords must be (n, 2), got {coords.shape}")
    if vectors.ndim != 2 or len(vectors) != n or len(genres) != n or len(popularity) != n:
        raise BadInputError(f"coords ({n}), vectors ({len(vectors)}), genres ({len(genres)}) "
                            f"and popularity ({len(popularity)}) need one row per point")
    if not 0 < k < n:
        raise BadInputError(f"k={k} needs more than {n} points on the map")
    if not (np.isfinite(coords).all() and np.isfinite(vectors).all()):
        raise BadInputError("coords and vectors must be finite")
    return coords, vectors, genres, popularity


# ---------------------------------------------------------------------------- regions
MIN_SHARE = 0.2  # a genre names a region only if at least this share of its movies have it
MIN_LIFT = 1.2  # ... and it is at least this much more common there than on the whole map
ERA_GAP = 10  # a region's age is named when its median year is this far from the map's


@dataclass(frozen=True)
class Region:
    """One region of a map: where it is, which genres it over-represents, what it holds."""

    centre: tuple[float, float]  # mean position of its points
    size: int  # movies in it
    genres: tuple[str, ...]  # dominant genres, highest lift first (empty: no genre stands out)
    lifts: tuple[float, ...]  # each genre's share in the region over its share on the map
    titles: tuple[str, ...]  # its most popular titles, most popular first
    year: float  # median release year (NaN when no years were given)
    era: str  # "older films (median 1957)" when >= ERA_GAP years off the map's median, else ""

    @property
    def label(self) -> str:
        """A caption for the map, e.g. "Horror · Thriller: Scream, Alien, Jaws" or
        "older films (median 1957): Casablanca, ..." for old films of mixed genres."""
        name = " · ".join((*self.genres, self.era) if self.era else self.genres) or "mixed"
        return f"{name}: {', '.join(self.titles)}" if self.titles else name


def region_labels(coords: np.ndarray, genres: Sequence[str], titles: Sequence[str],
                  popularity: np.ndarray, n_regions: int = 8, years: np.ndarray | None = None,
                  n_genres: int = 2, n_titles: int = 3, seed: int = 0) -> list[Region]:
    """Cuts a map into ``n_regions`` regions (k-means on the 2-D positions) and describes each.

    A region's dominant genres are the ``n_genres`` most over-represented in it: lift = the
    share of its movies with the genre over the share among all mapped movies. A genre must
    be held by at least :data:`MIN_SHARE` of the region (one documentary among ten movies does
    not name it) and have a lift of at least :data:`MIN_LIFT` (Drama is everywhere). On
    MovieLens the map also sorts movies by age, so with ``years`` a region whose median year
    is :data:`ERA_GAP` years off the map's is called older (or newer) films too. ``titles``
    are its ``n_titles`` most popular movies with one of its dominant genres (the most popular
    of all when it has none), the ones a reader recognises.

    Parameters
    ----------
    coords : (n, 2) float, the map.
    genres : n pipe-joined genre strings ("Action|Thriller"); "unknown" counts as none.
    titles : n titles.
    popularity : (n,) ratings or known positives per movie.
    n_regions : regions wanted (fewer when the map has fewer points).
    years : (n,) release years or None; NaN / missing years are ignored.

    Returns
    -------
    :class:`Region` s, largest first.
    """
    from sklearn.cluster import KMeans

    coords = np.asarray(coords, np.float64)
    n = len(coords)
    if not (n == len(genres) == len(titles) == len(popularity)) or (
            years is not None and len(years) != n):
        raise BadInputError("coords, genres, titles, popularity and years need one entry per "
                            "movie")
    if n_regions < 1 or n < 1:
        raise BadInputError("need at least one region and one movie")
    n_regions = min(n_regions, n)
    table = pd.Series(list(genres), dtype=str).str.get_dummies(sep="|")
    table = table.drop(columns=[g for g in ("unknown", "") if g in table])
    names, has = np.asarray(table.columns, str), table.to_numpy(np.float64)
    labels = KMeans(n_regions, n_init=10, random_state=seed).fit_predict(coords)
    sizes = np.bincount(labels, minlength=n_regions)
    share = (np.eye(n_regions)[labels].T @ has) / np.maximum(sizes, 1)[:, None]  # (R, G)
    overall = has.mean(axis=0)
    lift = share / np.where(overall > 0, overall, 1.0)
    popularity = np.asarray(popularity, np.float64)
    year = pd.Series(np.full(n, np.nan) if years is None else
                     pd.to_numeric(pd.Series(years), errors="coerce").to_numpy(np.float64))
    median_year = year.groupby(labels).median().reindex(range(n_regions)).to_numpy()
    titles = np.asarray(titles, object)
    regions = []
    for r in np.argsort(-sizes, kind="stable"):
        picked = _dominant(share[r], lift[r], n_genres)
        members = np.flatnonzero(labels == r)
        # Famous titles of the named genres first: a caption "Horror · Thriller" should not
        # show the region's most popular comedy.
        fits = has[members][:, picked].any(axis=1) if len(picked) else np.ones(len(members))
        top = members[np.lexsort((-popularity[members], ~fits.astype(bool)))[:n_titles]]
        regions.append(Region(tuple(float(c) for c in coords[members].mean(axis=0)),
                              int(sizes[r]), tuple(names[picked]),
                              tuple(float(x) for x in lift[r, picked]), tuple(titles[top]),
                              float(median_year[r]), _era(median_year[r], year.median())))
    return regions


def _dominant(share: np.ndarray, lift: np.ndarray, n_genres: int) -> np.ndarray:
    """Indices of the highest-lift genres with share >= MIN_SHARE and lift >= MIN_LIFT."""
    eligible = np.flatnonzero((share >= MIN_SHARE) & (lift >= MIN_LIFT))
    return eligible[np.argsort(-lift[eligible], kind="stable")[:n_genres]]


def _era(year: float, typical: float) -> str:
    if not (np.isfinite(year) and np.isfinite(typical)) or abs(year - typical) < ERA_GAP:
        return ""
    return f"{'older' if year < typical else 'newer'} films (median {year:.0f})"
