"""Load MovieLens ratings, movies and users from the first source that works.

Sources, in order: a directory the user points at (``data_dir`` / ``RECSYS_DATA_DIR``),
the local cache, the GroupLens ml-100k zip, and the ml-100k copy shipped inside the
``recbole==1.2.1`` wheel on PyPI. The returned :class:`MovieLens` says which one was used.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import stat
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.client import HTTPException
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recsys.errors import BadInputError, DataUnavailableError

__all__ = [
    "GENRES_100K",
    "GROUPLENS_URL",
    "DataUnavailableError",
    "cache_folders",
    "user_cache_dir",
    "MovieLens",
    "load_movielens",
    "read_grouplens_dir",
    "read_recbole_wheel",
    "validate_100k_counts",
]

GENRES_100K: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_CACHE_ENV = "RECSYS_CACHE_DIR"
_DATA_ENV = "RECSYS_DATA_DIR"
_DEFAULT_CACHE_STR = "~/.cache/movielens-embeddings"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"

RECBOLE_SPEC = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
_RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"
PIP_TIMEOUT = 120.0

N_RATINGS_100K, N_USERS_100K, N_ITEMS_100K = 100_000, 943, 1_682

# ML-1M README occupation codes.
OCCUPATIONS_1M: tuple[str, ...] = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip

# What a ratings file may hold; anything else is refused with its file and line.
RATING_SCALE = (0.5, 5.0)  # every GroupLens layout: 1-5 stars (ml-latest-small in half stars)
MAX_ID = 2**31 - 1  # GroupLens ids are positive 32-bit numbers; 0 is accepted too
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31 23:59:59 UTC, in Unix seconds
ENCODINGS = ("utf-8-sig", "latin-1")  # tried in order: UTF-8 (with or without BOM), then the
# Latin-1 of the older GroupLens files (which never fails, so it comes last)

# Layout name -> (ratings, movies, users-or-None) file names.
_LAYOUTS: dict[str, tuple[str, str, str | None]] = {
    "ml-100k": ("u.data", "u.item", "u.user"),
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
    "ml-latest-small": ("ratings.csv", "movies.csv", None),
}

# Failures that make a source "not available" rather than a bug worth crashing on.
_SOURCE_ERRORS = (
    OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, HTTPException,
    subprocess.SubprocessError, pd.errors.ParserError,
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class MovieLens:
    """One MovieLens dataset as three tables plus where it came from.

    ``notes`` lists what loading changed, one sentence each (e.g. repeated ratings dropped).
    """

    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame
    name: str
    source: str
    notes: tuple[str, ...] = ()

    @property
    def n_users(self) -> int:
        """Distinct users in the ratings (the users table may be empty)."""
        return self._once("_n_users", lambda: int(self.ratings["user_id"].nunique()))

    @property
    def n_items(self) -> int:
        """Distinct items in the ratings."""
        return self._once("_n_items", lambda: int(self.ratings["item_id"].nunique()))

    def fingerprint(self) -> str:
        """16-hex sha256 of the rating events plus name; independent of source and row order."""
        return self._once("_fingerprint", self._hash_events)

    def _once(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time, then the kept value: the app asks for the counts and
        the fingerprint (about 40 ms on ML-100K) on every page view. The tables are never
        changed in place after loading, so the values stay true."""
        if name not in self.__dict__:
            object.__setattr__(self, name, compute())  # frozen: kept outside the fields
        return self.__dict__[name]

    def _hash_events(self) -> str:
        r = self.ratings
        cols = [
            r["user_id"].to_numpy(np.int64),
            r["item_id"].to_numpy(np.int64),
            r["timestamp"].to_numpy(np.int64),
            r["rating"].to_numpy(np.float32),
        ]
        order = np.lexsort(cols[::-1])
        h = hashlib.sha256(self.name.encode())
        for col in cols:
            h.update(np.ascontiguousarray(col[order]).tobytes())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"MovieLens(name={self.name!r}, ratings={len(self.ratings)}, users={self.n_users}, "
            f"items={self.n_items}, source={self.source!r})"
        )


def validate_100k_counts(ml: MovieLens) -> None:
    """Raise ValueError unless ``ml`` has exactly the ML-100K sizes (100,000 / 943 / 1,682)."""
    got = {
        "ratings": len(ml.ratings),
        "rated users": ml.n_users,
        "rated items": ml.n_items,
        "users table rows": len(ml.users),
        "movies table rows": len(ml.movies),
    }
    want = {
        "ratings": N_RATINGS_100K,
        "rated users": N_USERS_100K,
        "rated items": N_ITEMS_100K,
        "users table rows": N_USERS_100K,
        "movies table rows": N_ITEMS_100K,
    }
    bad = [f"{k} {got[k]:,} (expected {want[k]:,})" for k in want if got[k] != want[k]]
    if bad:
        raise BadInputError("not the full ML-100K dataset: " + "; ".join(bad))


# --------------------------------------------------------------------------- table helpers


def _movies_frame(item_id, title, year, genres) -> pd.DataFrame:
    """Build the movies table with canonical dtypes, one row per item sorted by item_id."""
    df = pd.DataFrame(
        {
            "item_id": pd.to_numeric(pd.Series(item_id)).astype("int64").to_numpy(),
            "title": pd.Series(title).astype(str).to_numpy(),
            "year": pd.to_numeric(pd.Series(year), errors="coerce").astype("Int64").array,
            "genres": pd.Series(genres).fillna("").astype(str).to_numpy(),
        }
    )
    df = df.drop_duplicates("item_id", keep="first").sort_values("item_id", kind="stable")
    return df.reset_index(drop=True)


def _users_frame(user_id=(), age=(), gender=(), occupation=()) -> pd.DataFrame:
    """Build the users table with canonical dtypes (empty when called without arguments)."""
    df = pd.DataFrame(
        {
            "user_id": pd.Series(pd.to_numeric(pd.Series(user_id, dtype=object))).astype("int64"),
            "age": pd.to_numeric(pd.Series(age, dtype=object), errors="coerce").astype("Int64"),
            "gender": pd.Series(gender, dtype=object).astype(str),
            "occupation": pd.Series(occupation, dtype=object).astype(str),
        }
    )
    return df.sort_values("user_id", kind="stable").reset_index(drop=True)


def _year_from_title(titles: pd.Series) -> pd.Series:
    """Year from the last "(YYYY)" in each title, e.g. "Foo (1995) (V)" -> 1995; else <NA>."""
    year = titles.astype(str).str.extract(r".*\((\d{4})\)", expand=False)
    return pd.to_numeric(year, errors="coerce").astype("Int64")


def _year_from_date(dates: pd.Series) -> pd.Series:
    """Year from a GroupLens release date like "01-Jan-1995"; <NA> when empty."""
    year = dates.astype(str).str.extract(r"(\d{4})\s*$", expand=False)
    return pd.to_numeric(year, errors="coerce").astype("Int64")


def _join_flags(flags: pd.DataFrame, names: tuple[str, ...]) -> pd.Series:
    """Pipe-join the names whose 0/1 flag column is set, in ``names`` order ("" when none)."""
    out = pd.Series("", index=flags.index, dtype=object)
    for name, col in zip(names, flags.columns, strict=True):
        out = out + np.where(flags[col].to_numpy().astype(bool), name + "|", "")
    return out.str.rstrip("|").astype(str)


def _canonical_100k_genres(genres: pd.Series, sep: str) -> pd.Series:
    """Re-order ``sep``-separated genre names into GENRES_100K order, pipe-joined."""
    dummies = genres.fillna("").str.get_dummies(sep=sep)
    unknown = sorted(set(dummies.columns) - set(GENRES_100K))
    if unknown:
        raise BadInputError(f"genre names not in GENRES_100K: {unknown}")
    flags = dummies.reindex(columns=list(GENRES_100K), fill_value=0)
    return _join_flags(flags, GENRES_100K)


# --------------------------------------------------------------------------- reading files


def _read_text(path: Path) -> str:
    """The text of the regular file ``path``, decoded with the first of :data:`ENCODINGS`
    that fits. Folders, pipes and devices (e.g. a link to /dev/zero) are refused before
    anything is read: a pipe would block and a device never end."""
    try:  # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise BadInputError(f"{path} cannot be read ({err.strerror}): check the file") from err
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BadInputError(f"{path} is not a regular file (a folder, pipe or device): put "
                         "the MovieLens file itself there")
    with os.fdopen(fd, "rb") as f:
        try:
            raw = f.read()
        except OSError as err:
            raise BadInputError(f"{path} cannot be read ({err.strerror}): check the file") from err
    for encoding in ENCODINGS:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _read_fields(path: Path, names: list[str], sep: str, header: bool = False) -> pd.DataFrame:
    """Every non-blank line of ``path`` split at ``sep`` into the ``names`` columns, as text
    ("" where a line is short), plus its 1-based ``line`` number for messages.

    With ``header`` the first line names the columns (CSV quoting allowed), and every name in
    ``names`` must be among them."""
    text = _read_text(path)
    if sep == "::":  # ML-1M: "::" becomes a tab, so the fast C parser can split it
        text, sep = text.replace("::", "\t"), "\t"
    numbers, lines = [], []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            numbers.append(number)
            lines.append(line)
    if not lines:
        raise BadInputError(f"{path} is empty: put the MovieLens file there")
    try:
        df = pd.read_csv(
            io.StringIO("\n".join(lines)), sep=sep, header=0 if header else None, dtype=str,
            quoting=csv.QUOTE_MINIMAL if header else csv.QUOTE_NONE, na_filter=False,
        )  # fmt: skip
    except pd.errors.ParserError as err:
        raise BadInputError(f"{path}: {_parser_problem(err, numbers)}") from None
    rows = numbers[1:] if header else numbers
    # One row per line, unless a quoted CSV field spans lines: then count rows instead.
    df.index = rows if len(rows) == len(df) else df.index + (2 if header else 1)
    if header:
        missing = [n for n in names if n not in df.columns]
        if missing:
            raise BadInputError(f"{path} line {numbers[0]}: the header lacks the column(s) "
                             f"{', '.join(missing)}; expected {','.join(names)}")
        df = df[names]
    elif df.shape[1] > len(names):
        extra = (df.iloc[:, len(names):].fillna("") != "").any(axis=1)
        raise BadInputError(f"{path} line {extra.idxmax()} has more than {len(names)} fields "
                         f"(separated by {sep!r}): fix or delete that line")
    else:
        df = df.reindex(columns=range(len(names)), fill_value="").set_axis(names, axis=1)
    return df.fillna("").rename_axis("line").reset_index()


def _parser_problem(err: pd.errors.ParserError, numbers: list[int]) -> str:
    """pandas' tokenizer error in words, e.g. "line 4 has 5 fields, expected 4"; ``numbers``
    maps the parsed (non-blank) lines back to the file's line numbers."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
    if found:
        want, line, got = (int(g) for g in found.groups())
        line = numbers[line - 1] if 0 < line <= len(numbers) else line
        return f"line {line} has {got} fields, expected {want}: fix or delete that line"
    return f"cannot be parsed ({str(err).strip().splitlines()[0]}): check the file"


def _fast_numbers(text: pd.Series) -> pd.Series | None:
    """``text`` as float64 through ``astype`` (9x faster than ``to_numeric`` on 100,000 lines),
    or None where the two could differ: Python's ``float`` also takes "1_000" and non-ASCII
    digits, which ``to_numeric`` rejects (and the loader reports)."""
    if text.dtype.kind in "iufb":
        return text.astype("float64")
    try:
        plain = text.str.isascii().all() and not text.str.contains("_", regex=False).any()
        return text.astype("float64") if plain else None
    except (AttributeError, TypeError, ValueError):
        return None


def _numbers(df: pd.DataFrame, column: str, path: Path | str, what: str,
             low: float, high: float, whole: bool = True) -> pd.Series:
    """``df[column]`` as numbers, each finite and in ``[low, high]`` (and whole if asked);
    else a ValueError naming the file, the first bad line and the value."""
    values = _fast_numbers(df[column])
    if values is None:
        values = pd.to_numeric(df[column], errors="coerce").astype("float64")
    ok = np.isfinite(values) & (values >= low) & (values <= high)
    if whole:
        ok &= values % 1 == 0
    if not ok.all():
        bad = np.flatnonzero(~ok.to_numpy())
        shown = repr(df[column].iloc[bad[0]]) if df[column].iloc[bad[0]] else "nothing"
        kind = "a whole number" if whole else "a number"
        more = f" ({len(bad) - 1:,} more lines like it)" if len(bad) > 1 else ""
        raise BadInputError(f"{path} line {df['line'].iloc[bad[0]]}: {what} is {shown}, not "
                         f"{kind} from {low:g} to {high:g}{more}: fix or delete that line")
    return values.astype("int64") if whole else values


def _parse_ratings(df: pd.DataFrame, path: Path | str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Validated ratings from text columns u, i, r, t (and ``line``), plus notes on repeats."""
    if df.empty:
        raise BadInputError(f"{path} holds no ratings: put the MovieLens ratings file there")
    ratings = pd.DataFrame({
        "user_id": _numbers(df, "u", path, "the user id", 0, MAX_ID),
        "item_id": _numbers(df, "i", path, "the movie id", 0, MAX_ID),
        "rating": _numbers(df, "r", path, "the rating", *RATING_SCALE, whole=False)
        .astype("float32"),
        "timestamp": _numbers(df, "t", path, "the timestamp (Unix seconds)", 0, MAX_TIMESTAMP),
    }).reset_index(drop=True)
    return _drop_repeats(ratings, path)


def _drop_repeats(ratings: pd.DataFrame, path: Path | str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """One rating per (user, movie): the latest by timestamp, ties going to the later line.

    A repeat would count twice in training and could land on both sides of the train/test
    split; a re-rating most likely replaces the old one, so the latest is kept and a note
    says how many were dropped."""
    pairs = ["user_id", "item_id"]
    if not ratings.duplicated(pairs).any():
        return ratings, ()
    latest = ratings.sort_values("timestamp", kind="stable").drop_duplicates(pairs, keep="last")
    kept = ratings.loc[np.sort(latest.index.to_numpy())].reset_index(drop=True)
    dropped = len(ratings) - len(kept)
    return kept, (f"{Path(str(path)).name}: {dropped:,} repeated rating(s) of a movie by the "
                  "same user dropped; kept each pair's latest (by timestamp, then line)",)


def _ids(df: pd.DataFrame, column: str, path: Path, what: str) -> pd.Series:
    return _numbers(df, column, path, what, 0, MAX_ID)


# --------------------------------------------------------------------------- directory layouts

Tables = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, tuple[str, ...]]


def _read_100k(d: Path) -> Tables:
    """Read the GroupLens ML-100K files (u.data, u.item, u.user)."""
    ratings, notes = _parse_ratings(_read_fields(d / "u.data", list("uirt"), "\t"), d / "u.data")

    flag_cols = [f"g{k}" for k in range(len(GENRES_100K))]
    m = _read_fields(d / "u.item", ["item_id", "title", "date", "video_date", "url",
                                    *flag_cols], "|")
    flags = m[flag_cols].apply(pd.to_numeric, errors="coerce").fillna(0).astype("int8")
    year = _year_from_date(m["date"]).fillna(_year_from_title(m["title"]))
    movies = _movies_frame(_ids(m, "item_id", d / "u.item", "the movie id"), m["title"], year,
                           _join_flags(flags, GENRES_100K))

    users = _users_frame()
    if os.path.lexists(d / "u.user"):
        u = _read_fields(d / "u.user", ["user_id", "age", "gender", "occupation", "zip"], "|")
        users = _users_frame(_ids(u, "user_id", d / "u.user", "the user id"), u["age"],
                             u["gender"], u["occupation"])
    return ratings, movies, users, notes


def _read_1m(d: Path) -> Tables:
    """Read the GroupLens ML-1M files (ratings.dat, movies.dat, users.dat)."""
    path = d / "ratings.dat"
    ratings, notes = _parse_ratings(_read_fields(path, list("uirt"), "::"), path)

    m = _read_fields(d / "movies.dat", ["item_id", "title", "genres"], "::")
    movies = _movies_frame(_ids(m, "item_id", d / "movies.dat", "the movie id"), m["title"],
                           _year_from_title(m["title"]), m["genres"])

    users = _users_frame()
    if os.path.lexists(d / "users.dat"):
        u = _read_fields(d / "users.dat", ["user_id", "gender", "age", "occupation", "zip"], "::")
        codes = pd.to_numeric(u["occupation"], errors="coerce")
        occupation = codes.map(dict(enumerate(OCCUPATIONS_1M))).fillna(u["occupation"])
        users = _users_frame(_ids(u, "user_id", d / "users.dat", "the user id"), u["age"],
                             u["gender"], occupation)
    return ratings, movies, users, notes


def _read_latest_small(d: Path) -> Tables:
    """Read ml-latest-small CSVs (ratings.csv, movies.csv); it has no users table."""
    path = d / "ratings.csv"
    r = _read_fields(path, ["userId", "movieId", "rating", "timestamp"], ",", header=True)
    r.columns = ["line", *"uirt"]
    ratings, notes = _parse_ratings(r, path)
    m = _read_fields(d / "movies.csv", ["movieId", "title", "genres"], ",", header=True)
    genres = m["genres"].replace("(no genres listed)", "")
    movies = _movies_frame(_ids(m, "movieId", d / "movies.csv", "the movie id"), m["title"],
                           _year_from_title(m["title"]), genres)
    return ratings, movies, _users_frame(), notes


_READERS = {"ml-100k": _read_100k, "ml-1m": _read_1m, "ml-latest-small": _read_latest_small}


def _detect_layout(d: Path) -> str | None:
    """Name of the first layout whose ratings file exists in ``d``, else None."""
    for name, (ratings_file, _, _) in _LAYOUTS.items():
        if os.path.lexists(d / ratings_file):  # even a folder or a pipe: refused when read
            return name
    return None


def read_grouplens_dir(path: str | Path) -> MovieLens:
    """Detect the MovieLens layout (ml-100k, ml-1m, ml-latest-small) in a directory and read it.

    A parent directory holding exactly one such unzipped folder (e.g. ``ml-100k/``) also works.

    Every file is checked as it is read, and a ValueError names the file and line of the
    first problem: ids must be whole numbers from 0 to :data:`MAX_ID`, ratings finite and on
    the MovieLens scale :data:`RATING_SCALE`, timestamps Unix seconds from 0 to
    :data:`MAX_TIMESTAMP`; empty files, lines with too many fields, folders, pipes and devices
    are refused. Text is decoded as UTF-8, else Latin-1 (:data:`ENCODINGS`).

    Repeated ratings (one user rating one movie on several lines) are not an error: the
    latest by timestamp is kept (ties: the later line), and ``MovieLens.notes`` says how many
    were dropped.
    """
    d = Path(path).expanduser()
    if not d.is_dir():
        raise BadInputError(f"MovieLens data directory {d} does not exist or is not a directory")
    layout = _detect_layout(d)
    if layout is None:
        subdirs = [d / n for n in _LAYOUTS if (d / n).is_dir() and _detect_layout(d / n)]
        if len(subdirs) == 1:
            d = subdirs[0]
            layout = _detect_layout(d)
    if layout is None:
        expected = "; ".join(
            f"{name}: {', '.join(f for f in files if f)}" for name, files in _LAYOUTS.items()
        )
        raise BadInputError(
            f"no MovieLens files found in {d}. Looked for {expected}. "
            "Point at the unzipped GroupLens folder (e.g. .../ml-100k containing u.data)."
        )
    _, movies_file, _ = _LAYOUTS[layout]
    if not os.path.lexists(d / movies_file):
        raise BadInputError(f"{d} looks like {layout} but {movies_file} is missing: put it "
                         "beside the ratings file")
    ratings, movies, users, notes = _READERS[layout](d)
    return MovieLens(ratings, movies, users, layout, f"directory {d} (GroupLens layout)", notes)


# --------------------------------------------------------------------------- recbole wheel


def _read_recbole_table(zf: zipfile.ZipFile, ext: str, encoding: str = "utf-8") -> pd.DataFrame:
    """Read one RecBole atomic file from the wheel, dropping the ":type" suffix of each column."""
    with zf.open(f"{_RECBOLE_PREFIX}.{ext}") as fh:
        df = pd.read_csv(
            fh, sep="\t", dtype=str, encoding=encoding, quoting=csv.QUOTE_NONE,
            keep_default_na=False,
        )  # fmt: skip
    return df.rename(columns=lambda c: c.split(":", 1)[0])


def read_recbole_wheel(wheel_path: str | Path) -> MovieLens:
    """Read the ml-100k copy shipped inside the recbole 1.2.1 wheel (a zip) without extracting it.

    Movies are converted to GroupLens conventions: "Title (year)" titles, pipe-joined genres in
    GENRES_100K order, and RecBole's "unkonwn" placeholder for item 267 mapped back to "unknown".
    """
    wheel_path = Path(wheel_path)
    with zipfile.ZipFile(wheel_path) as zf:
        inter = _read_recbole_table(zf, "inter")
        item = _read_recbole_table(zf, "item")
        user = _read_recbole_table(zf, "user")

    where = f"{wheel_path.name}:{_RECBOLE_PREFIX}.inter"
    fields = inter[["user_id", "item_id", "rating", "timestamp"]].set_axis(list("uirt"), axis=1)
    ratings, notes = _parse_ratings(fields.assign(line=fields.index + 2), where)

    # RecBole split "Title (1995)" into title + release_year; item 267 reads "unkonwn" (sic).
    placeholder = item["movie_title"].str.strip().str.lower().isin(["unkonwn", "unknown"])
    base = item["movie_title"].mask(placeholder, "unknown")
    tag = item["release_year"].str.strip().mask(placeholder, "")
    # Non-year tags (e.g. "V" for "... (1995) (V)") are re-appended the same way.
    title = base.where(tag == "", base + " (" + tag + ")")
    year = pd.to_numeric(tag.where(tag.str.fullmatch(r"\d{4}")), errors="coerce").astype("Int64")
    year = year.fillna(_year_from_title(title))
    genres = _canonical_100k_genres(item["class"].str.strip(), sep=" ")
    movies = _movies_frame(item["item_id"], title, year, genres)

    users = _users_frame(user["user_id"], user["age"], user["gender"], user["occupation"])
    return MovieLens(ratings, movies, users, "ml-100k", f"{RECBOLE_SPEC} wheel {wheel_path}",
                     notes)


# --------------------------------------------------------------------------- acquisition chain


def _default_cache_dir() -> Path:
    """Cache directory from RECSYS_CACHE_DIR, read at call time so it can be changed at runtime."""
    return Path(os.environ.get(_CACHE_ENV, _DEFAULT_CACHE_STR)).expanduser()


def user_cache_dir(*parts: str) -> Path:
    """The project's per-user cache folder joined with ``parts``: ``$RECSYS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/movielens-embeddings``, else ``~/.cache/movielens-embeddings``.

    Derived files (FAISS indexes, 2-D maps) go here when the run that owns them is read-only.
    """
    root = os.environ.get(_CACHE_ENV) or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "movielens-embeddings")
    return Path(root).expanduser().joinpath(*parts)


def cache_folders(preferred: str | Path, kind: str) -> list[Path]:
    """Where a derived file of ``kind`` ("index", "projections") is looked for and written, in
    order: ``preferred`` (inside the run) and then the user cache, which is always writable
    when the run is not (a read-only copy, another user's run)."""
    return [Path(preferred), user_cache_dir(kind)]


def _fetch_grouplens_zip(url: str, dest: Path, timeout: float, progress: bool) -> None:
    """Download ``url`` to ``dest`` with a per-socket-operation timeout and optional tqdm bar."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="ml-100k.zip", disable=not progress
        ) as bar:
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                bar.update(len(chunk))


def _download_grouplens(cache_dir: Path, timeout: float, progress: bool) -> MovieLens:
    """Fetch and validate the GroupLens ml-100k zip, then move it into ``cache_dir/ml-100k``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / "ml-100k"
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".ml-100k-download-") as tmp:
        zip_path = Path(tmp) / "ml-100k.zip"
        _fetch_grouplens_zip(GROUPLENS_URL, zip_path, timeout, progress)
        extract_root = Path(tmp) / "extracted"
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(extract_root)
        found = [p.parent for p in extract_root.rglob("u.data")]
        if len(found) != 1:
            raise BadInputError(f"downloaded zip has {len(found)} u.data files (expected 1)")
        ml = read_grouplens_dir(found[0])
        validate_100k_counts(ml)
        try:
            if target.exists() and not any(target.iterdir()):
                target.rmdir()
            os.replace(found[0], target)  # atomic on one filesystem
        except OSError as exc:
            return replace(ml, source=f"GroupLens download (not cached: {exc})")
    return replace(ml, source=f"GroupLens download (cached at {target})")


def _pip_download_recbole(dest_dir: Path) -> None:
    """Run ``pip download --no-deps recbole==1.2.1`` into ``dest_dir``; raise OSError on failure."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", RECBOLE_SPEC,
           "-d", str(dest_dir)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise OSError(f"pip download exited {proc.returncode}: {lines[-1] if lines else '?'}")


def _one_line(exc: BaseException) -> str:
    """Exception as a single line: "Type: first line of message"."""
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def _unavailable_message(cache_dir: Path, attempts: list[str]) -> str:
    """Actionable DataUnavailableError text listing every attempt's failure."""
    tried = "\n".join(f"  - {a}" for a in attempts)
    return (
        "Could not load MovieLens from any source. Tried:\n"
        f"{tried}\n"
        "To fix, do ONE of:\n"
        f"  1. On a machine with internet access download {GROUPLENS_URL}, unzip it and put\n"
        f"     the ml-100k folder (containing u.data, u.item, u.user) at {cache_dir / 'ml-100k'}/\n"
        "     (default ~/.cache/movielens-embeddings/ml-100k/), or anywhere and pass\n"
        f"     --data-dir PATH or set {_DATA_ENV}=PATH (ml-1m and ml-latest-small also work).\n"
        f"  2. With PyPI access, run `pip download --no-deps {RECBOLE_SPEC} -d "
        f"{cache_dir / 'wheels'}`\n"
        "     (the wheel ships a copy of ml-100k), then re-run.\n"
        "  3. If only a proxy/firewall blocked the download, re-run with network access."
    )


def load_movielens(
    data_dir: str | Path | None = None,
    *,
    cache_dir: Path | None = None,
    download: bool = True,
    progress: bool = True,
    timeout: float = 5.0,
) -> MovieLens:
    """Acquisition chain: explicit dir, cache, GroupLens download, recbole wheel; first wins.

    An explicit ``data_dir`` (or ``RECSYS_DATA_DIR``) is read directly and its errors raised.
    Raises DataUnavailableError, with instructions, when every other source fails.
    """
    explicit = data_dir if data_dir not in (None, "") else os.environ.get(_DATA_ENV) or None
    if explicit is not None:
        return read_grouplens_dir(explicit)

    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
    attempts: list[str] = []

    cached = cache_dir / "ml-100k"
    if (cached / "u.data").is_file():
        try:
            return read_grouplens_dir(cached)
        except _SOURCE_ERRORS as exc:
            attempts.append(f"cache {cached}: {_one_line(exc)}")
    else:
        attempts.append(f"cache: no {cached / 'u.data'}")

    wheel = cache_dir / "wheels" / RECBOLE_WHEEL
    if wheel.is_file():  # fetched by an earlier run: part of the cache, no network needed
        try:
            ml = read_recbole_wheel(wheel)
            validate_100k_counts(ml)
            return replace(ml, source=f"{RECBOLE_SPEC} wheel (cached at {wheel})")
        except _SOURCE_ERRORS as exc:
            attempts.append(f"cached {RECBOLE_SPEC} wheel {wheel}: {_one_line(exc)}")

    if download:
        try:
            return _download_grouplens(cache_dir, timeout, progress)
        except _SOURCE_ERRORS as exc:
            attempts.append(f"GroupLens download {GROUPLENS_URL}: {_one_line(exc)}")
    else:
        attempts.append("GroupLens download: skipped (download=False)")

    origin = f"{RECBOLE_SPEC} wheel from PyPI (cached at {wheel})"
    if not download:
        attempts.append(f"{RECBOLE_SPEC} wheel: no {wheel} and download=False")
    elif not wheel.is_file():
        try:
            _pip_download_recbole(wheel.parent)
        except _SOURCE_ERRORS as exc:
            attempts.append(f"{RECBOLE_SPEC} wheel via pip: {_one_line(exc)}")
        else:
            if not wheel.is_file():
                attempts.append(f"{RECBOLE_SPEC} wheel: pip succeeded but {wheel} is missing")
    if download and wheel.is_file():
        try:
            ml = read_recbole_wheel(wheel)
            validate_100k_counts(ml)
            return replace(ml, source=origin)
        except _SOURCE_ERRORS as exc:
            attempts.append(f"{RECBOLE_SPEC} wheel {wheel}: {_one_line(exc)}")

    raise DataUnavailableError(_unavailable_message(cache_dir, attempts), attempts)


def movies_for(ml: MovieLens, item_ids: np.ndarray) -> pd.DataFrame:
    """Movie rows aligned with ``item_ids`` (row ``i`` describes item index ``i``), with the
    number of ratings as ``popularity``; items missing from the movies table get their id as
    title rather than silently shifting rows, and titles listed under two ids get the id."""
    movies = ml.movies.set_index("item_id")
    table = movies.reindex(np.asarray(item_ids, np.int64))
    table["title"] = table["title"].fillna(pd.Series(
        [f"movie {i}" for i in item_ids], index=table.index))
    table["genres"] = table["genres"].fillna("")
    # MovieLens lists some films twice under two ids ("Chasing Amy (1997)"): tell them apart.
    twice = table["title"].duplicated(keep=False)
    table.loc[twice, "title"] = [f"{t} · id {i}" for t, i in
                                 zip(table.loc[twice, "title"], table.index[twice], strict=True)]
    counts = ml.ratings["item_id"].value_counts()
    table["popularity"] = counts.reindex(table.index, fill_value=0).to_numpy(np.int64)
    return table.reset_index().rename(columns={"index": "item_id"})
