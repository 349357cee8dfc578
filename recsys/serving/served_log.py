"""The served-list log: what each list the API served held, kept so it can be replayed.

Every list the API serves (``/recommend``, ``/similar``, ``/recommend/profile``) becomes one
JSON line::

    {"request_id": "3f2c...", "time": "2026-12-07T05:31:02.114Z", "endpoint": "recommend",
     "run": "default", "model": "mf-als", "fingerprint": "e09088f380a18d0f",
     "inputs": {"user": 1, "k": 10, "lens": "dot", "exclude_seen": true},
     "items": [{"movie_id": 50, "score": 1.21, "source": "retrieval"}, ...],
     "latency_ms": 2.4}

``inputs`` are the validated, normalised inputs the list was computed from (defaults filled
in, a title query resolved to its movie id), so :func:`recompute_items` can compute the same
list again from the same run: the training-serving consistency check of ``recsys
replay-log``. Each endpoint's list comes from one function here (:data:`LISTS`), which calls
the same :mod:`recsys.serving.catalog` / :mod:`recsys.serving.coldstart` functions as the CLI
and the app's pages: the API, the replay and the app cannot drift apart.

``source`` says what placed each item, honestly:

- ``/recommend``: ``"retrieval"`` for every item. The list is one stage, the exact top-k of the
  model's score (``lens="dot"``) or of the user-item cosine (``"cosine"``) over every movie;
  nothing re-ranks it.
- ``/similar``: ``"embedding"`` (the nearest neighbours through the lens) then
  ``"co-occurrence"`` (the damped co-occurrence list), both lists as served.
- ``/recommend/profile``: ``"fold-in"`` (the folded-in user vector's score placed it; for an
  item-item model ``"item-item"``, the liked items' rows), ``"content"`` (TF-IDF of titles
  and genres), ``"fold-in+content"`` (each gave at least a third) or ``"popularity"`` (nothing
  liked yet): :func:`recsys.serving.coldstart.blend`'s attribution.

Files and atomicity: records are appended to ``served.jsonl`` in the log folder. Each record
is serialised first and written by a single ``os.write`` on a descriptor opened with
``O_APPEND``, so the kernel places the whole line at the end of the file in one step; on top
of that a lock (a ``threading.Lock`` for the server's threads and an ``fcntl.flock`` on
``served.lock`` for other processes, e.g. several uvicorn workers) makes the size check,
rotation and write one critical section. PIPE_BUF does not bound this: it is a pipe's
guarantee, and a list of 100 items is larger; the lock is what makes a long line safe.
When the file would grow past ``max_bytes`` it is renamed to
``served-YYYYmmdd-HHMMSS-ffffff.jsonl`` (UTC, so names sort in time order) and the oldest
rotated files beyond ``keep`` are deleted. Every record is written by ``json.dumps`` with
``ensure_ascii``: a newline, quote or control character a client sends is escaped and can
never start a line of its own.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.errors import BadInputError
from recsys.serving.catalog import Catalog, recommend_items, similar_movies
from recsys.serving.coldstart import ColdStartConfig, cold_start

ACTIVE_NAME = "served.jsonl"
LOCK_NAME = "served.lock"
ROTATED_PREFIX = "served-"
ROTATED_SUFFIX = ".jsonl"
DEFAULT_MAX_BYTES = 64 * 2**20  # rotate at 64 MiB: ~50 000 lists of 10, a day of a busy class
DEFAULT_KEEP = 10  # rotated files kept besides the active one
SCORE_TOLERANCE = 1e-5  # replay: relative score difference still "the same" (float32 scores
# recomputed through another BLAS path differ in the last ~2 ulps, 1e-7 relative; 1e-5 leaves
# room for summation order and flags any real change of model, data or code)

# ---------------------------------------------------------------------------- the lists
# How /recommend/profile's attribution (coldstart.blend) names its terms in the log.
_PROFILE_SOURCES = {"collaborative": "fold-in", "content": "content", "both": "fold-in+content",
                    "popularity": "popularity"}


def recommend_list(catalog: Catalog, inputs: Mapping[str, Any]) -> tuple[None,
                                                                          list[dict]]:
    """``/recommend``: the ranking of :func:`recsys.serving.catalog.recommend` for ``inputs``
    (user, k, lens, exclude_seen), by :func:`~recsys.serving.catalog.recommend_items`, the
    function ``recommend`` itself ranks with; no table (None) and the logged items."""
    items, scores = recommend_items(catalog, inputs["user"], inputs["k"],
                                    exclude_seen=inputs["exclude_seen"], scoring=inputs["lens"])
    movie_ids = np.asarray(catalog.run.item_ids, np.int64)[np.asarray(items, np.int64)]
    return None, _items(movie_ids, np.asarray(scores, np.float64), "retrieval")


def similar_list(catalog: Catalog, inputs: Mapping[str, Any]) -> tuple[Any, list[dict]]:
    """``/similar``: :func:`recsys.serving.catalog.similar_movies` for ``inputs`` (movie id,
    k, lens), and its logged items: the embedding list, then the co-occurrence list."""
    result = similar_movies(catalog, inputs["movie"], inputs["k"], inputs["lens"])
    items = [] if result.embedding is None else _items(
        result.embedding["item_id"], result.embedding["score"], "embedding")
    items += _items(result.cooccurrence["item_id"], result.cooccurrence["score"],
                    "co-occurrence")
    return result, items


def profile_list(catalog: Catalog, inputs: Mapping[str, Any]) -> tuple[pd.DataFrame,
                                                                        list[dict]]:
    """``/recommend/profile``: :func:`recsys.serving.coldstart.cold_start` for ``inputs``
    (likes, dislikes, k, blend), as the Profile page calls it, and its logged items."""
    frame = cold_start(catalog, inputs["likes"], inputs["dislikes"], inputs["k"],
                       ColdStartConfig(blend=inputs.get("blend")))
    collaborative = "fold-in" if catalog.model.folds_in else "item-item"
    names = {**_PROFILE_SOURCES, "collaborative": collaborative,
             "both": f"{collaborative}+content"}
    return frame, _items(frame["item_id"], frame["score"], frame["source"].map(names))


LISTS: dict[str, Callable[[Catalog, Mapping[str, Any]], tuple[Any, list[dict]]]] = {
    "recommend": recommend_list,
    "similar": similar_list,
    "recommend/profile": profile_list,
}


def _items(movie_ids, scores, source) -> list[dict]:
    ids = np.asarray(movie_ids, np.int64).tolist()
    values = np.asarray(scores, np.float64).tolist()
    sources = [source] * len(ids) if isinstance(source, str) else [str(s) for s in source]
    return [{"movie_id": m, "score": s if math.isfinite(s) else None, "source": src}
            for m, s, src in zip(ids, values, sources, strict=True)]


# ---------------------------------------------------------------------------- records
def new_request_id() -> str:
    return uuid.uuid4().hex


def make_record(catalog: Catalog, endpoint: str, inputs: Mapping[str, Any], items: list[dict],
                latency_ms: float, request_id: str) -> dict[str, Any]:
    """One log record (see the module docstring for its fields)."""
    now = dt.datetime.now(dt.UTC)
    return {
        "request_id": request_id,
        "time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "endpoint": endpoint,
        "run": catalog.run.name,
        "model": catalog.run.train_config.model,
        "fingerprint": catalog.run.dataset.get("fingerprint"),
        "inputs": dict(inputs),
        "items": items,
        "latency_ms": round(float(latency_ms), 3),
    }


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One ASCII line: JSON with every non-ASCII and control character escaped, ending in a
    newline (the only newline byte in it)."""
    return (json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
            + "\n").encode("ascii")


@dataclass(eq=False)
class ServedLog:
    """Appends records to ``folder/served.jsonl``, rotating it by size (module docstring)."""

    folder: Path
    max_bytes: int = DEFAULT_MAX_BYTES
    keep: int = DEFAULT_KEEP
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _fd: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.keep < 0:
            raise BadInputError(f"served log: max_bytes must be at least 1 and keep at least 0, "
                                f"got {self.max_bytes} and {self.keep}")
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path:
        return self.folder / ACTIVE_NAME

    def append(self, record: Mapping[str, Any]) -> None:
        """Writes ``record`` as one line, atomically (see the module docstring)."""
        line = encode_record(record)
        with self._lock, _file_lock(self.folder / LOCK_NAME):
            fd = self._current_fd()
            size = os.fstat(fd).st_size
            if size and size + len(line) > self.max_bytes:
                self._rotate()
                fd = self._current_fd()
            written = os.write(fd, line)
            if written != len(line):  # a full disk: say so rather than leave half a line
                raise OSError(f"served log {self.path}: wrote {written} of {len(line)} bytes")

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _current_fd(self) -> int:
        """The descriptor of the active file, reopened when another process rotated it."""
        if self._fd is not None:
            try:
                same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return self._fd
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self._fd

    def _rotate(self) -> None:
        stamp = dt.datetime.now(dt.UTC)
        while True:  # names carry microseconds; a clash only if the clock stood still
            target = self.folder / f"{ROTATED_PREFIX}{stamp:%Y%m%d-%H%M%S-%f}{ROTATED_SUFFIX}"
            if not target.exists():
                break
            stamp += dt.timedelta(microseconds=1)
        os.rename(self.path, target)
        for old in rotated_files(self.folder)[:-self.keep or None]:
            old.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


class _file_lock:
    """``fcntl.flock`` on ``path`` for the duration of a ``with``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# ---------------------------------------------------------------------------- reading
def rotated_files(folder: Path) -> list[Path]:
    """The rotated files of a log folder, oldest first (their names sort in time order)."""
    return sorted(p for p in Path(folder).glob(f"{ROTATED_PREFIX}*{ROTATED_SUFFIX}")
                  if p.is_file())


def log_files(path_or_dir: str | Path) -> list[Path]:
    """``[path]`` for a file; for a log folder its rotated files, oldest first, then the
    active one."""
    path = Path(path_or_dir)
    if path.is_dir():
        active = path / ACTIVE_NAME
        return rotated_files(path) + ([active] if active.is_file() else [])
    if not path.is_file():
        raise BadInputError(f"no served log at {path}: give a log file or the folder "
                            "`recsys serve --log-dir` wrote")
    return [path]


def read_records(path_or_dir: str | Path) -> Iterator[dict]:
    """Every record of a log file, or of a log folder with its rotated files, in the order
    they were written. A line that is not a JSON object raises :class:`BadInputError` naming
    the file and line."""
    for path in log_files(path_or_dir):
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as err:
                    raise BadInputError(f"{path} line {number} is not JSON ({err}): the log "
                                        "was edited or cut") from None
                if not isinstance(record, dict):
                    raise BadInputError(f"{path} line {number} is not a JSON object")
                yield record


# ---------------------------------------------------------------------------- replay
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The inputs each endpoint logs and a check of each one's JSON type: a replayed record is
# checked first, so that a hand-edited log gives a clear message, never a stray TypeError.
_KINDS: dict[str, Callable[[Any], bool]] = {
    "an integer": _is_int,
    "true or false": lambda value: isinstance(value, bool),
    "a string": lambda value: isinstance(value, str),
    "a list of integers": lambda value: isinstance(value, list) and all(map(_is_int, value)),
    "a number or null": lambda value: value is None or _is_int(value) or isinstance(value, float),
}
INPUTS: dict[str, dict[str, str]] = {
    "recommend": {"user": "an integer", "k": "an integer", "lens": "a string",
                  "exclude_seen": "true or false"},
    "similar": {"movie": "an integer", "k": "an integer", "lens": "a string"},
    "recommend/profile": {"likes": "a list of integers", "dislikes": "a list of integers",
                          "k": "an integer", "blend": "a number or null"},
}


def recompute_items(catalog: Catalog, record: Mapping[str, Any]) -> list[dict]:
    """The items the record's endpoint serves now for the record's inputs, from ``catalog``."""
    endpoint = record.get("endpoint")
    if endpoint not in LISTS:
        raise BadInputError(f"unknown endpoint {endpoint!r}: one of {', '.join(LISTS)}")
    inputs = record.get("inputs")
    if not isinstance(inputs, dict):
        raise BadInputError("the record has no inputs object")
    for name, kind in INPUTS[endpoint].items():
        if not _KINDS[kind](inputs.get(name)):
            raise BadInputError(f"input {name} is {inputs.get(name)!r}, not {kind}")
    return LISTS[endpoint](catalog, inputs)[1]


def compare_items(logged: list[dict], recomputed: list[dict],
                  tolerance: float = SCORE_TOLERANCE) -> list[str]:
    """Every difference between a logged and a recomputed list, in words (empty: the same
    movies, in the same order, with the same sources and scores within ``tolerance``,
    relative to the larger magnitude, and absolute near zero)."""
    problems = []
    if len(logged) != len(recomputed):
        problems.append(f"{len(logged)} items logged, {len(recomputed)} recomputed")
    for rank, (old, new) in enumerate(zip(logged, recomputed, strict=False), 1):
        if old.get("movie_id") != new["movie_id"] or old.get("source") != new["source"]:
            problems.append(f"#{rank}: logged movie {old.get('movie_id')} ({old.get('source')}),"
                            f" recomputed {new['movie_id']} ({new['source']})")
        elif not _close(old.get("score"), new["score"], tolerance):
            problems.append(f"#{rank}: movie {new['movie_id']} scored {old.get('score')!r} "
                            f"logged, {new['score']!r} recomputed")
    return problems


def _close(a: Any, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        return False
    return bool(np.isclose(a, b, rtol=tolerance, atol=tolerance))
