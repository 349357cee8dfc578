"""2-D maps of item (or user) factors: PCA, t-SNE or UMAP, seeded and cached in the run dir.

A map is computed once per (run, vectors, method, parameters, seed) and saved as ``.npz``
(arrays only) under ``<run>/projections`` (or the user cache when the run is read-only); later
calls load it and do no work, unless the file is damaged, when it is recomputed. New points
(e.g. a folded-in user) are placed on an existing map without recomputing it: exactly for
PCA, by a neighbour-weighted average of 2-D positions for t-SNE and UMAP (see
:func:`place_point`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.loading import cache_folders
from recsys.errors import BadInputError
from recsys.evaluation.map_structure import DEFAULT_MAP, MapSettings, map_input
from recsys.linalg import unit_rows
from recsys.models import model_names
from recsys.storage.runs import Run

METHODS = ("pca", "tsne", "umap")
DEFAULTS: dict[str, dict[str, Any]] = {
    "pca": {},
    "tsne": {"perplexity": 30.0, "max_iter": 1000},  # sklearn defaults
    "umap": {"n_neighbors": 15, "min_dist": 0.1},  # umap-learn defaults
}
Progress = Callable[[float, str], Any]  # (fraction done, message), e.g. to a progress bar


@dataclass(frozen=True, eq=False)
class Projection:
    """A computed map: 2-D coordinates of ``vectors`` and what is needed to place new points.

    ``frame`` has one row per point: x, y, norm (of the original vector) and, from
    :func:`project_run`, popularity (items) or activity (users) plus movie metadata.
    """

    method: str
    params: dict[str, Any]
    seed: int
    vectors: np.ndarray  # (n, d) the vectors that were projected
    coords: np.ndarray  # (n, 2)
    explained_variance: np.ndarray | None  # PCA: share of variance on each axis
    pca_mean: np.ndarray | None
    pca_components: np.ndarray | None  # (2, d)
    from_cache: bool
    frame: pd.DataFrame


def project(
    vectors: np.ndarray,
    method: str = "pca",
    seed: int = 0,
    cache_dir: str | Path | None = None,
    name: str = "items",
    progress: Progress | None = None,
    **params: Any,
) -> Projection:
    """Projects ``vectors`` (n, d) to 2-D with ``method`` (cosine geometry for t-SNE / UMAP).

    ``params`` override :data:`DEFAULTS` (t-SNE: perplexity, max_iter; UMAP: n_neighbors,
    min_dist). With ``cache_dir`` the result is loaded from / saved to
    ``<cache_dir>/<name>-<method>-<params>-seed<seed>-<hash of vectors>.npz``, or to the user
    cache when ``cache_dir`` cannot be written (:func:`recsys.data.loading.cache_folders`). A cached
    map that is truncated or does not fit ``vectors`` is recomputed and replaced.
    """
    if method not in METHODS:
        raise BadInputError(f"unknown projection {method!r}: choose one of {', '.join(METHODS)}")
    unknown = set(params) - set(DEFAULTS[method])
    if unknown:
        raise BadInputError(f"{method} takes {sorted(DEFAULTS[method]) or 'no'} parameters, "
                         f"got {sorted(unknown)}")
    vectors = np.ascontiguousarray(vectors, np.float32)
    if vectors.ndim != 2 or len(vectors) < 3 or not np.isfinite(vectors).all():
        raise BadInputError(f"need at least 3 finite vectors to project, got shape {vectors.shape}")
    params = {**DEFAULTS[method], **params}
    report = progress or (lambda fraction, message: None)
    file_name = _cache_name(name, method, params, seed, vectors)
    folders = cache_folders(cache_dir, "projections") if cache_dir is not None else []
    for folder in folders:
        arrays = _load(folder / file_name, method, vectors)
        if arrays is not None:
            report(1.0, f"{method.upper()} map loaded from cache")
            return _projection(method, params, seed, vectors, arrays, from_cache=True)
    report(0.0, f"computing the {method.upper()} map of {len(vectors):,} points")
    start = time.perf_counter()
    arrays = _compute(vectors, method, params, seed)
    _save(folders, file_name, arrays)
    report(1.0, f"{method.upper()} map computed in {time.perf_counter() - start:.1f}s")
    return _projection(method, params, seed, vectors, arrays, from_cache=False)


def project_run(
    run: Run,
    method: str = "pca",
    what: str = "items",
    movies: pd.DataFrame | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    known: Any = None,
    **params: Any,
) -> Projection:
    """Map of a run's item (``what="items"``) or user factors, cached in the run directory.

    The frame gains the raw ``item_id`` / ``user_id``; ``popularity`` (known positives per
    item) or ``activity`` (known positives per user) when ``known`` (users x items csr, e.g.
    ``Catalog.seen``) is given; title, year and genres when ``movies`` (aligned with item
    indices, e.g. ``movies_for(ml, run.item_ids)``) is given.
    """
    if what not in ("items", "users"):
        raise BadInputError(f"what must be 'items' or 'users', got {what!r}")
    vectors = run.model.item_factors() if what == "items" else run.model.user_factors()
    if vectors is None:
        able = model_names(**{f"{what[:-1]}_vectors": True})
        raise BadInputError(f"{run.train_config.model} has no {what[:-1]} embeddings to map: "
                         f"pick a run of {', '.join(able)}")
    cache_dir = Path(run.path) / "projections" if run.path else None
    result = project(vectors, method, seed, cache_dir, what, progress, **params)
    frame = result.frame
    if what == "items":
        frame.insert(0, "item_id", run.item_ids)
        if known is not None:
            frame["popularity"] = np.asarray(known.sum(axis=0)).ravel().astype(np.int64)
        if movies is not None:
            for column in ("title", "year", "genres"):
                frame[column] = movies[column].reset_index(drop=True)
    else:
        frame.insert(0, "user_id", run.user_ids)
        if known is not None:
            frame["activity"] = np.diff(known.indptr).astype(np.int64)
    return result


def item_map_name(settings: MapSettings = DEFAULT_MAP) -> str:
    """The cache-file prefix of an item map, e.g. ``items-debiased-min5`` (the full maps of
    :func:`project_run` are ``items``)."""
    return f"items-{settings.vectors}-min{settings.min_positives}"


def project_item_map(run: Run, known: Any, settings: MapSettings = DEFAULT_MAP,
                     movies: pd.DataFrame | None = None, seed: int = 0,
                     progress: Progress | None = None) -> Projection:
    """The app's map of the movies (Home's picture, the Embedding map): ``settings.method`` of
    the ``settings.vectors`` of the movies with at least ``settings.min_positives`` known
    positives, cached in the run directory. The default (t-SNE of debiased unit vectors, >= 5
    known positives) keeps 87-95 % of the full space's genre structure on every model benched
    and has no island of unrated movies (bench/MAP_STRUCTURE.md).

    ``known`` (users x items csr) holds the positives the model was fitted on (e.g.
    ``Catalog.seen``). The frame has one row per mapped movie: ``item_index``, ``item_id``,
    x, y, ``norm`` (the length of its model vector, not of the projected unit vector),
    ``popularity`` (known positives) and, with ``movies`` (aligned with item indices), title,
    year and genres.
    """
    factors = run.model.item_factors()
    if factors is None:
        raise BadInputError(f"{run.train_config.model} has no item embeddings to map: pick a "
                            f"run of {', '.join(model_names(item_vectors=True))}")
    items, vectors = map_input(factors, known, settings)
    cache_dir = Path(run.path) / "projections" if run.path else None
    result = project(vectors, settings.method, seed, cache_dir, item_map_name(settings),
                     progress)
    frame = result.frame
    frame["norm"] = np.linalg.norm(np.asarray(factors, np.float64)[items], axis=1)
    frame.insert(0, "item_id", np.asarray(run.item_ids)[items])
    frame.insert(0, "item_index", items)
    frame["popularity"] = np.asarray(known.sum(axis=0)).ravel().astype(np.int64)[items]
    if movies is not None:
        for column in ("title", "year", "genres"):
            if column in movies:
                frame[column] = movies[column].iloc[items].reset_index(drop=True)
    return result


def project_app_map(run: Run, method: str, known: Any, movies: pd.DataFrame | None = None,
                    progress: Progress | None = None) -> Projection:
    """The item map the app opens on for ``method`` (:data:`DEFAULT_MAP`'s movies and vectors):
    what the training worker and the class set compute ahead of the pages."""
    return project_item_map(run, known, replace(DEFAULT_MAP, method=method), movies,
                            progress=progress)


def item_map_is_cached(run_path: str | Path, method: str,
                       settings: MapSettings = DEFAULT_MAP) -> bool:
    """Whether ``method``'s item map of the run at ``run_path`` is saved already (by the
    training worker, the class set or an earlier visit)."""
    folder = Path(run_path) / "projections"
    return folder.is_dir() and any(folder.glob(f"{item_map_name(settings)}-{method}-*.npz"))


def place_point(projection: Projection, vector: np.ndarray, k: int = 10) -> tuple[float, float]:
    """2-D position of a new ``vector`` (d,) on an existing map, without recomputing it.

    PCA: the exact linear transform. t-SNE / UMAP have no stored transform (and a cached map
    keeps no reducer), so the point goes to the average 2-D position of its ``k`` nearest
    projected vectors by cosine, weighted by squared positive similarity: a new user lands
    among the items (or users) most like them, which is what the map is read for.
    """
    vector = np.asarray(vector, np.float64).ravel()
    if vector.shape[0] != projection.vectors.shape[1]:
        raise BadInputError(f"vector has {vector.shape[0]} dimensions, the map's vectors "
                         f"{projection.vectors.shape[1]}")
    if projection.method == "pca":
        x, y = (vector - projection.pca_mean) @ projection.pca_components.T
        return float(x), float(y)
    unit = unit_rows(projection.vectors)
    sims = unit @ (vector / max(np.linalg.norm(vector), 1e-12))
    nearest = np.argsort(-sims, kind="stable")[:k]
    weights = np.clip(sims[nearest], 0, None) ** 2
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(nearest),
                                                                      1 / len(nearest))
    x, y = weights @ projection.coords[nearest]
    return float(x), float(y)


def place_user(projection: Projection, vector: np.ndarray, k: int = 10) -> tuple[float, float]:
    """A folded-in user on an item map: the user's direction at a typical item's length.

    Only a user vector's direction ranks movies; its length comes from the fold-in's ridge
    penalty (a few likes give a short vector). Projected as is, a short vector lands at the
    map's origin whatever the taste, so it is first scaled to the median item norm.
    """
    vector = np.asarray(vector, np.float64).ravel()
    typical = float(np.median(np.linalg.norm(projection.vectors, axis=1)))
    return place_point(projection, vector * typical / max(np.linalg.norm(vector), 1e-12), k)


# ---------------------------------------------------------------------------- computation
def _compute(vectors: np.ndarray, method: str, params: dict[str, Any],
             seed: int) -> dict[str, np.ndarray]:
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(vectors)
        return {"coords": pca.transform(vectors), "explained_variance":
                pca.explained_variance_ratio_, "pca_mean": pca.mean_,
                "pca_components": pca.components_}
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        perplexity = min(float(params["perplexity"]), (len(vectors) - 1) / 3)
        tsne = TSNE(2, perplexity=perplexity, max_iter=int(params["max_iter"]),
                    metric="cosine", init="pca", random_state=seed)
        # One OpenMP thread: on a shared 2-core machine the Barnes-Hut threads spin and made
        # the ML-100K map 4x slower (36 s vs 9 s); on small maps extra threads gain little.
        with threadpool_limits(1, user_api="openmp"):
            return {"coords": tsne.fit_transform(vectors)}
    use_numba_cache()
    import umap  # slow to import (numba): only when asked for

    reducer = umap.UMAP(n_components=2, n_neighbors=min(int(params["n_neighbors"]),
                                                         len(vectors) - 1),
                        min_dist=float(params["min_dist"]), metric="cosine", random_state=seed,
                        n_jobs=1)  # a seed forces one thread anyway; saying so avoids a warning
    return {"coords": reducer.fit_transform(vectors)}


def use_numba_cache() -> None:
    """Puts numba's on-disk cache (``NUMBA_CACHE_DIR``, unless already set) in
    ``$XDG_CACHE_HOME/movielens-embeddings/numba``, beside the project's other caches, where
    a deployment can keep or wipe it. Call it before ``umap`` is imported.

    Only functions marked ``cache=True`` are kept: pynndescent's, compiled when umap is
    imported (~17 s cold, ~1 s warm). umap's own kernels are not, so a fresh process still
    compiles for ~10 s on its first fit. Numba's default (``__pycache__`` beside the sources,
    else ``~/.cache/numba``) caches the same functions; this only fixes where."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ["NUMBA_CACHE_DIR"] = str(cache_home / "movielens-embeddings" / "numba")
    if "numba" in sys.modules:  # numba reads its settings on import: make it read them again
        from numba.core import config

        config.reload_config()


def _projection(method, params, seed, vectors, arrays, from_cache) -> Projection:
    coords = np.asarray(arrays["coords"], np.float64)
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1],
                          "norm": np.linalg.norm(vectors, axis=1).astype(np.float64)})
    return Projection(method, dict(params), seed, vectors, coords,
                      arrays.get("explained_variance"), arrays.get("pca_mean"),
                      arrays.get("pca_components"), from_cache, frame)


def _cache_name(name, method, params, seed, vectors) -> str:
    digest = hashlib.sha256(vectors.tobytes()).hexdigest()[:12]
    settings = "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}"
                        for k, v in sorted(params.items()))
    stem = "-".join(part for part in (name, method, settings, f"seed{seed}", digest) if part)
    return f"{stem}.npz"


def _load(path: Path, method: str, vectors: np.ndarray) -> dict[str, np.ndarray] | None:
    """The arrays of a cached map, or None when there is none or it is damaged (unreadable,
    truncated, pickled, or of the wrong shapes for ``vectors``), so the map is recomputed."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # never open a pipe or a device
            return None
        with np.load(path, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, AttributeError):
        return None  # AttributeError: a lone .npy array has no .files
    n, d = vectors.shape
    shapes = {"coords": (n, 2)}
    if method == "pca":
        shapes.update(explained_variance=(2,), pca_mean=(d,), pca_components=(2, d))
    for key, shape in shapes.items():
        value = arrays.get(key)
        if (value is None or value.shape != shape or value.dtype.kind != "f"
                or not np.isfinite(value).all()):
            return None
    return arrays


def _save(folders: list[Path], file_name: str, arrays: dict[str, np.ndarray]) -> Path | None:
    """Writes the map into the first folder that takes it; None if none does (a cache only
    saves time, so failing to write one never fails the map)."""
    for folder in folders:
        path = folder / file_name
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{time.time_ns()}.npz")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, **arrays)
            os.replace(tmp, path)  # atomic: another session never reads half a file
            return path
        except OSError:  # read-only folder, full disk
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return None


def norm_popularity_correlation(frame: pd.DataFrame) -> float:
    """Spearman rank correlation of vector length and popularity on a projection frame."""
    return float(frame[["popularity", "norm"]].corr(method="spearman").iloc[0, 1])


# ---------------------------------------------------------------------------- custom axes
def genre_mask(genres: pd.Series | list[str], genre: str) -> np.ndarray:
    """(n,) bool: which movies list ``genre`` among their pipe-joined ``genres`` (a movie with
    several genres belongs to each of them)."""
    lists = pd.Series(list(genres), dtype=object).fillna("").astype(str).str.split("|")
    return np.fromiter((genre in names for names in lists), bool, len(lists))


def semantic_axis(vectors: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Position of every vector along the direction from one set of items to another, like
    the Embedding Projector's custom projection.

    ``start`` and ``end`` are (n,) bool masks (e.g. Children's and Horror movies). The axis
    runs from the mean vector of ``start`` to the mean vector of ``end``; each vector is
    projected onto it and scaled so that 0 is the start set's mean and 1 the end set's mean.
    Returns (n,) float64; ValueError when a set is empty or both means coincide.
    """
    vectors = np.asarray(vectors, np.float64)
    start, end = np.asarray(start, bool), np.asarray(end, bool)
    if not start.any() or not end.any():
        raise BadInputError("each end of the axis needs at least one movie")
    origin = vectors[start].mean(axis=0)
    direction = vectors[end].mean(axis=0) - origin
    squared = float(direction @ direction)
    if squared <= 1e-12 * max(1.0, float((origin ** 2).sum())):
        raise BadInputError("both ends of the axis have the same mean vector: pick other sets")
    return (vectors - origin) @ direction / squared

