"""Nearest neighbours behind one wrapper over FAISS: exact (flat) or IVF, cosine or dot.

Cosine is inner product on L2-normalised vectors, so both metrics use inner-product indexes.
Built indexes can be cached on disk (``faiss.write_index``: FAISS's own format, not a pickle).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
from pathlib import Path

import faiss
import numpy as np
import scipy.sparse as sp

from recsys.checks import check_k
from recsys.data.loading import cache_folders
from recsys.errors import BadInputError
from recsys.linalg import unit_rows

METRICS = ("cosine", "dot")
KINDS = ("flat", "ivf")

# Per-query excluded ids: one csr row per query, one id array per query, or one array for all.
Exclude = sp.csr_matrix | list | tuple | np.ndarray | None


class VectorIndex:
    """Top-k inner-product search over ``vectors`` (n, d), exact or approximate.

    Parameters
    ----------
    vectors : float array, shape (n, d)
    metric : "cosine" (vectors and queries are L2-normalised) or "dot" (raw inner product)
    kind : "flat" (exact ``IndexFlatIP``) or "ivf" (``IndexIVFFlat``: k-means cells, only
        ``nprobe`` of them searched per query; for large catalogues)
    nlist : IVF cells (default ``round(sqrt(n))``); ignored for flat
    nprobe : IVF cells searched per query (``nprobe = nlist`` is exact); settable later
    seed : k-means seed of the IVF training
    """

    def __init__(
        self,
        vectors: np.ndarray,
        metric: str = "cosine",
        kind: str = "flat",
        nlist: int | None = None,
        nprobe: int = 8,
        seed: int = 0,
        _index: faiss.Index | None = None,
    ) -> None:
        if metric not in METRICS:
            raise BadInputError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
        if kind not in KINDS:
            raise BadInputError(f"unknown index kind {kind!r}: choose one of {', '.join(KINDS)}")
        vectors = _as_matrix(vectors, "vectors")
        self.metric, self.kind = metric, kind
        self.n, self.dim = vectors.shape
        self.nlist = _check_nlist(nlist, self.n) if kind == "ivf" else None
        self.index = _index if _index is not None else self._build(vectors, seed)
        if _index is not None:
            self._check_holds(vectors)
        self.nprobe = nprobe

    def _build(self, vectors: np.ndarray, seed: int) -> faiss.Index:
        data = self._prepare(vectors)
        if self.kind == "flat":
            index = faiss.IndexFlatIP(self.dim)
        else:
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = seed
            index.train(data)
        index.add(data)
        return index

    def _check_holds(self, vectors: np.ndarray) -> None:
        """Raises ValueError unless the (loaded) index is of this kind and holds exactly
        ``vectors``: a damaged or stale cache file must never answer queries."""
        index = self.index
        want = faiss.IndexFlatIP if self.kind == "flat" else faiss.IndexIVFFlat
        if (not isinstance(index, want) or index.metric_type != faiss.METRIC_INNER_PRODUCT
                or index.ntotal != self.n or index.d != self.dim
                or (self.kind == "ivf" and index.nlist != self.nlist)):
            raise ValueError(f"the cached index is not a {self.kind} index of {self.n} x "
                             f"{self.dim} vectors")
        try:
            if self.kind == "ivf":
                index.make_direct_map()
            stored = index.reconstruct_n(0, self.n)
        except RuntimeError as err:  # faiss: e.g. damaged ids in the inverted lists
            raise ValueError("the cached index is damaged") from err
        if not np.array_equal(stored, self._prepare(vectors)):
            raise ValueError("the cached index holds other vectors than the model's")

    @property
    def nprobe(self) -> int:
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self.kind == "ivf":
            value = int(value)
            if not 1 <= value <= self.nlist:
                raise BadInputError(f"nprobe must be between 1 and nlist={self.nlist}, got {value}")
            self.index.nprobe = value
        self._nprobe = int(value)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.metric == "cosine":
            x = unit_rows(x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def search(
        self, queries: np.ndarray, k: int, exclude: Exclude = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best ids per query, best first, skipping each query's ``exclude``.

        Parameters
        ----------
        queries : float array, shape (m, d) or (d,)
        k : neighbours per query
        exclude : ids never returned: a csr matrix with one row per query, a list of one id
            array per query, or a single 1-D id array applied to every query

        Returns
        -------
        ids : int64 array (m, k); -1 where fewer than ``k`` ids remain
        scores : float32 array (m, k); cosine or inner product, -inf where ids are -1
        """
        queries = _as_matrix(np.atleast_2d(queries), "queries")
        if queries.shape[1] != self.dim:
            raise BadInputError(f"queries have {queries.shape[1]} dimensions, the index {self.dim}")
        check_k(k)
        rows = _exclude_rows(exclude, len(queries))
        extra = max((len(r) for r in rows), default=0)
        fetch = min(self.n, k + extra)
        scores, ids = self.index.search(self._prepare(queries), fetch)
        if extra:
            for q, banned in enumerate(rows):
                if len(banned):
                    drop = np.isin(ids[q], banned)
                    ids[q, drop], scores[q, drop] = -1, -np.inf
        return _first_k_valid(ids.astype(np.int64), scores, k)

    def __repr__(self) -> str:
        extra = f", nlist={self.nlist}, nprobe={self.nprobe}" if self.kind == "ivf" else ""
        return f"VectorIndex({self.n} x {self.dim}, metric={self.metric}, kind={self.kind}{extra})"

    # ------------------------------------------------------------------ disk cache
    @classmethod
    def cached(
        cls,
        vectors: np.ndarray,
        cache_dir: str | Path | None,
        name: str = "items",
        metric: str = "cosine",
        kind: str = "flat",
        nlist: int | None = None,
        nprobe: int = 8,
        seed: int = 0,
    ) -> VectorIndex:
        """Loads the index from ``cache_dir`` if built before for these exact vectors and
        parameters, else builds and writes it there (``cache_dir=None``: just builds).

        The file name carries a hash of the vectors, so a retrained run never reuses a stale
        index. ``nprobe`` is a search-time setting and is not part of the key. A cached file
        is used only if it holds exactly these vectors; a truncated or damaged one is rebuilt
        and replaced. When ``cache_dir`` cannot be written (a read-only run) the user cache
        is used instead (:func:`recsys.data.loading.cache_folders`); when nothing can be written the
        index is just built.
        """
        vectors = _as_matrix(vectors, "vectors")
        if cache_dir is None:
            return cls(vectors, metric, kind, nlist, nprobe, seed)
        nlist = _check_nlist(nlist, len(vectors)) if kind == "ivf" else None
        key = f"{name}-{metric}-{kind}" + (f"-nlist{nlist}-seed{seed}" if nlist else "")
        file_name = f"{key}-{_fingerprint(vectors)}.faiss"
        folders = cache_folders(cache_dir, "index")
        for folder in folders:
            loaded = _read_index(folder / file_name)
            if loaded is not None:
                try:
                    return cls(vectors, metric, kind, nlist, nprobe, seed, _index=loaded)
                except ValueError:  # readable but not these vectors: rebuild below
                    continue
        built = cls(vectors, metric, kind, nlist, nprobe, seed)
        _write_index(built.index, folders, file_name)
        return built


def _read_index(path: Path) -> faiss.Index | None:
    """The index stored at ``path``, or None when there is none or it cannot be read."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # never open a pipe or a device
            return None
        return faiss.read_index(str(path))
    except (OSError, RuntimeError, MemoryError):  # faiss: RuntimeError on a damaged file
        return None


def _write_index(index: faiss.Index, folders: list[Path], file_name: str) -> Path | None:
    """Writes ``index`` into the first folder that takes it; None if none does (a cache is
    only a shortcut, so failing to write one never fails the caller)."""
    for folder in folders:
        path = folder / file_name
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.time_ns()}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            faiss.write_index(index, str(tmp))
            os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
            return path
        except (OSError, RuntimeError):  # read-only, full disk; faiss raises RuntimeError
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return None


def ann_recall_report(
    vectors: np.ndarray,
    nlist: int,
    nprobe: int,
    k: int = 10,
    n_queries: int = 200,
    metric: str = "cosine",
    seed: int = 0,
) -> dict[str, float]:
    """How much IVF loses against exact search, and how much faster it is.

    Queries are ``n_queries`` of the indexed vectors themselves (the "similar items" use), each
    searched alone to time single-query latency.

    Returns
    -------
    dict with ``recall@k`` (share of the exact top-k that IVF finds, averaged over queries),
    ``exact_ms`` / ``ivf_ms`` (median per-query latency), ``nlist``, ``nprobe``, ``k``,
    ``n_queries``, ``n_vectors``
    """
    vectors = _as_matrix(vectors, "vectors")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(vectors), size=min(n_queries, len(vectors)), replace=False)
    queries = vectors[picked]
    exact = VectorIndex(vectors, metric, "flat")
    ivf = VectorIndex(vectors, metric, "ivf", nlist=nlist, nprobe=nprobe, seed=seed)
    truth, exact_ms = _timed_single_queries(exact, queries, k)
    found, ivf_ms = _timed_single_queries(ivf, queries, k)
    hits = [len(np.intersect1d(t[t >= 0], f[f >= 0])) / max(1, np.sum(t >= 0))
            for t, f in zip(truth, found, strict=True)]
    return {
        f"recall@{k}": float(np.mean(hits)),
        "exact_ms": exact_ms,
        "ivf_ms": ivf_ms,
        "nlist": int(ivf.nlist),
        "nprobe": int(nprobe),
        "k": int(k),
        "n_queries": int(len(queries)),
        "n_vectors": int(len(vectors)),
    }


def _timed_single_queries(index: VectorIndex, queries: np.ndarray, k: int):
    ids, times = [], []
    for q in queries:
        start = time.perf_counter()
        found, _ = index.search(q[None], k)
        times.append(time.perf_counter() - start)
        ids.append(found[0])
    return np.array(ids), float(np.median(times) * 1000)


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise BadInputError(f"{name} must be a non-empty 2-D array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise BadInputError(f"{name} contain NaN or inf: the model is broken, retrain it")
    return x


def _check_nlist(nlist: int | None, n: int) -> int:
    nlist = max(1, round(np.sqrt(n))) if nlist is None else int(nlist)
    if not 1 <= nlist <= n:
        raise BadInputError(f"nlist must be between 1 and the number of vectors ({n}), got {nlist}")
    return nlist


def _exclude_rows(exclude: Exclude, n_queries: int) -> list[np.ndarray]:
    if exclude is None:
        return [np.zeros(0, np.int64)] * n_queries
    if sp.issparse(exclude):
        exclude = sp.csr_matrix(exclude)
        if exclude.shape[0] != n_queries:
            raise BadInputError(f"exclude has {exclude.shape[0]} rows for {n_queries} queries")
        return [exclude.indices[exclude.indptr[q]:exclude.indptr[q + 1]] for q in range(n_queries)]
    if isinstance(exclude, np.ndarray) and exclude.ndim == 1:
        return [exclude.astype(np.int64)] * n_queries
    if len(exclude) != n_queries:
        raise BadInputError(f"exclude has {len(exclude)} id lists for {n_queries} queries")
    return [np.asarray(r, np.int64).ravel() for r in exclude]


def _first_k_valid(ids: np.ndarray, scores: np.ndarray, k: int):
    """Moves the valid (id >= 0) entries of each row to the front, keeping their order."""
    order = np.argsort(ids < 0, axis=1, kind="stable")[:, :k]
    ids, scores = np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)
    if ids.shape[1] < k:  # fewer vectors than k
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
    return ids, scores


def _fingerprint(vectors: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vectors, np.float32).tobytes()).hexdigest()[:12]
