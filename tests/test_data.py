"""Tests for recsys.data.loading: tiny hand-written MovieLens files, no network, no pip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest

from recsys.data import loading as data
from recsys.data.loading import (
    GENRES_100K,
    MovieLens,
    load_movielens,
    read_grouplens_dir,
    read_recbole_wheel,
)
from recsys.errors import DataUnavailableError

# Same tiny dataset in every layout: (user, item, rating, timestamp); last row duplicates row 0.
RATINGS = [(1, 1, 5, 881250949), (1, 2, 3, 881250950), (2, 1, 4, 891717742), (1, 1, 5, 881250949)]


def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in GENRES_100K)


def write_100k(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    toy = _flags("Animation", "Children's", "Comedy")
    items = [
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{toy}",
        f"2|Café (1995)|||http://x|{_flags('Drama', 'Film-Noir')}",
        f"267|unknown||||{_flags('unknown')}",
    ]
    (d / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (d / "u.user").write_text("2|53|F|other|94043\n1|24|M|technician|85711\n")
    return d


def write_wheel(path: Path, ratings=RATINGS) -> Path:
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings
    )
    item = (
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tToy Story\t1995\tAnimation Children's Comedy\n"
        "2\tCafé\t1995\tFilm-Noir Drama\n"
        "267\tunkonwn\tunkonwn\tunknown\n"
        "1412\tLand Before Time III (1995)\tV\tAnimation Children's\n"
    )
    user = (
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        "1\t24\tM\ttechnician\t85711\n2\t53\tF\tother\tT8H1N\n"
    )
    prefix = "recbole/dataset_example/ml-100k/ml-100k"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{prefix}.inter", inter)
        zf.writestr(f"{prefix}.item", item.encode("utf-8"))
        zf.writestr(f"{prefix}.user", user)
        zf.writestr("recbole/__init__.py", "")
    return path


def check_dtypes(ml: MovieLens) -> None:
    assert ml.ratings.dtypes.astype(str).to_dict() == {
        "user_id": "int64",
        "item_id": "int64",
        "rating": "float32",
        "timestamp": "int64",
    }
    assert list(ml.movies.columns) == ["item_id", "title", "year", "genres"]
    assert str(ml.movies["item_id"].dtype) == "int64"
    assert str(ml.movies["year"].dtype) == "Int64"
    assert ml.movies["item_id"].is_monotonic_increasing and ml.movies["item_id"].is_unique
    assert list(ml.users.columns) == ["user_id", "age", "gender", "occupation"]
    assert str(ml.users["user_id"].dtype) == "int64"
    assert str(ml.users["age"].dtype) == "Int64"


def test_read_100k_layout(tmp_path):
    ml = read_grouplens_dir(write_100k(tmp_path / "ml-100k"))
    check_dtypes(ml)
    assert ml.name == "ml-100k"
    assert "GroupLens layout" in ml.source and str(tmp_path) in ml.source
    assert len(ml.ratings) == 3  # the repeated (user 1, movie 1) rating kept once
    assert ml.notes == ("u.data: 1 repeated rating(s) of a movie by the same user dropped; "
                        "kept each pair's latest (by timestamp, then line)",)
    movies = ml.movies.set_index("item_id")
    assert movies.loc[1, "title"] == "Toy Story (1995)"
    assert movies.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert movies.loc[2, "title"] == "Café (1995)"
    assert movies.loc[2, "genres"] == "Drama|Film-Noir"  # GENRES_100K order
    assert movies.loc[2, "year"] == 1995  # no date: falls back to the title
    assert movies.loc[267, "title"] == "unknown" and pd.isna(movies.loc[267, "year"])
    assert movies.loc[267, "genres"] == "unknown"
    assert ml.users["user_id"].tolist() == [1, 2]
    assert ml.users["age"].tolist() == [24, 53]
    assert ml.users["occupation"].tolist() == ["technician", "other"]
    assert "ratings=3" in repr(ml) and "users=2" in repr(ml) and "items=2" in repr(ml)


def test_read_parent_of_unzipped_folder(tmp_path):
    write_100k(tmp_path / "ml-100k")
    assert read_grouplens_dir(tmp_path).name == "ml-100k"


def test_read_1m_layout(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n2::661::3::978302109\n")
    (tmp_path / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::Café Society: Part 1 (1996)::Animation|Children's|Musical\n".encode("latin-1")
    )
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ml = read_grouplens_dir(tmp_path)
    check_dtypes(ml)
    assert ml.name == "ml-1m"
    assert ml.ratings["timestamp"].tolist() == [978300760, 978302109]
    movies = ml.movies.set_index("item_id")
    assert movies.loc[661, "title"] == "Café Society: Part 1 (1996)"
    assert movies.loc[661, "year"] == 1996
    assert movies.loc[661, "genres"] == "Animation|Children's|Musical"
    assert ml.users["occupation"].tolist() == ["K-12 student", "self-employed"]
    assert ml.users["gender"].tolist() == ["F", "M"]
    assert ml.users["age"].tolist() == [1, 56]


def test_read_latest_small_layout(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n2,193609,0.5,1\n"
    )
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '3,"American President, The (1995)",Comedy|Drama|Romance\n'
        "193609,Babylon 5,(no genres listed)\n",
        encoding="utf-8",
    )
    ml = read_grouplens_dir(tmp_path)
    check_dtypes(ml)
    assert ml.name == "ml-latest-small"
    assert ml.ratings["rating"].tolist() == [4.0, 3.5, 0.5]
    movies = ml.movies.set_index("item_id")
    assert movies.loc[3, "title"] == "American President, The (1995)"
    assert movies.loc[193609, "genres"] == ""
    assert pd.isna(movies.loc[193609, "year"])
    assert movies.loc[1, "year"] == 1995
    assert len(ml.users) == 0


def test_unknown_directory_lists_expected_files(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(ValueError) as err:
        read_grouplens_dir(tmp_path)
    for name in ("u.data", "ratings.dat", "ratings.csv", "movies.csv"):
        assert name in str(err.value)


def test_read_recbole_wheel(tmp_path):
    ml = read_recbole_wheel(write_wheel(tmp_path / "recbole.whl"))
    check_dtypes(ml)
    assert ml.name == "ml-100k"
    # the repeat of line 1 on the last line is kept there (same time: the later line wins)
    assert ml.ratings["timestamp"].tolist() == [t for *_, t in RATINGS[1:]]
    assert len(ml.notes) == 1 and "1 repeated rating(s)" in ml.notes[0]
    movies = ml.movies.set_index("item_id")
    assert movies.loc[1, "title"] == "Toy Story (1995)"
    assert movies.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert movies.loc[1, "year"] == 1995
    assert movies.loc[2, "genres"] == "Drama|Film-Noir"  # re-ordered to GENRES_100K order
    assert movies.loc[267, "title"] == "unknown" and pd.isna(movies.loc[267, "year"])
    assert movies.loc[1412, "title"] == "Land Before Time III (1995) (V)"
    assert movies.loc[1412, "year"] == 1995
    assert ml.users.set_index("user_id").loc[2, "occupation"] == "other"


def test_fingerprint_same_across_sources(tmp_path):
    a = read_grouplens_dir(write_100k(tmp_path / "ml-100k"))
    b = read_recbole_wheel(write_wheel(tmp_path / "recbole.whl"))
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 16
    c = read_recbole_wheel(write_wheel(tmp_path / "other.whl", RATINGS[:1] + RATINGS[2:]))
    assert len(c.ratings) == 2  # no (1, 2); the repeat of (1, 1) dropped, as in ``a``
    assert c.fingerprint() != a.fingerprint()
    assert a.movies[["item_id", "title", "genres"]].equals(
        b.movies.loc[b.movies.item_id != 1412, ["item_id", "title", "genres"]].reset_index(
            drop=True
        )
    )


def test_validate_100k_counts_rejects_tiny(tmp_path):
    ml = read_grouplens_dir(write_100k(tmp_path / "ml-100k"))
    with pytest.raises(ValueError, match="100,000"):
        data.validate_100k_counts(ml)


# --------------------------------------------------------------------------- acquisition chain


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if a test would touch the network or pip."""

    def fetch(url, dest, timeout, progress):
        raise OSError("network disabled in tests")

    def pip(dest_dir):
        raise OSError("pip disabled in tests")

    monkeypatch.setattr(data, "_fetch_grouplens_zip", fetch)
    monkeypatch.setattr(data, "_pip_download_recbole", pip)
    monkeypatch.delenv("RECSYS_DATA_DIR", raising=False)


def test_load_explicit_data_dir(tmp_path, no_network):
    d = write_100k(tmp_path / "mine")
    ml = load_movielens(d, cache_dir=tmp_path / "cache")
    assert str(d) in ml.source and len(ml.ratings) == 3


def test_load_data_dir_from_env(tmp_path, no_network, monkeypatch):
    d = write_100k(tmp_path / "mine")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(d))
    assert str(d) in load_movielens(cache_dir=tmp_path / "cache").source


def test_load_explicit_bad_dir_raises(tmp_path, no_network):
    with pytest.raises(ValueError):
        load_movielens(tmp_path, cache_dir=tmp_path / "cache")


def test_load_uses_cache(tmp_path, no_network, monkeypatch):
    cache = tmp_path / "cache"
    write_100k(cache / "ml-100k")
    ml = load_movielens(cache_dir=cache)
    assert str(cache / "ml-100k") in ml.source
    # Default cache dir comes from RECSYS_CACHE_DIR at call time.
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(cache))
    assert str(cache / "ml-100k") in load_movielens().source


def test_load_no_download_empty_cache(tmp_path, no_network):
    with pytest.raises(DataUnavailableError) as err:
        load_movielens(cache_dir=tmp_path / "cache", download=False)
    msg = str(err.value)
    assert "ml-100k" in msg and "RECSYS_DATA_DIR" in msg and "--data-dir" in msg
    assert "pip download --no-deps recbole==1.2.1" in msg
    assert len(err.value.attempts) == 3


def test_load_falls_through_download_and_bad_wheel(tmp_path, no_network):
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    write_wheel(cache / "wheels" / data.RECBOLE_WHEEL)
    with pytest.raises(DataUnavailableError) as err:
        load_movielens(cache_dir=cache, progress=False)
    msg = str(err.value)
    assert "network disabled in tests" in msg  # GroupLens attempt's reason
    assert "100,000" in msg  # wheel rejected by the count check
    assert not (cache / "ml-100k").exists()


def test_load_pip_failure_reported(tmp_path, no_network):
    with pytest.raises(DataUnavailableError, match="pip disabled in tests"):
        load_movielens(cache_dir=tmp_path / "cache", progress=False)


def test_load_uses_wheel_when_counts_relaxed(tmp_path, no_network, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    wheel = write_wheel(cache / "wheels" / data.RECBOLE_WHEEL)
    monkeypatch.setattr(data, "validate_100k_counts", lambda ml: None)
    ml = load_movielens(cache_dir=cache, progress=False)
    assert "recbole==1.2.1 wheel" in ml.source and str(wheel) in ml.source
    assert len(ml.ratings) == 3


def test_load_pip_download_path(tmp_path, no_network, monkeypatch):
    cache = tmp_path / "cache"

    def fake_pip(dest_dir):
        Path(dest_dir).mkdir(parents=True, exist_ok=True)
        write_wheel(Path(dest_dir) / data.RECBOLE_WHEEL)

    monkeypatch.setattr(data, "_pip_download_recbole", fake_pip)
    monkeypatch.setattr(data, "validate_100k_counts", lambda ml: None)
    ml = load_movielens(cache_dir=cache, progress=False)
    assert "from PyPI" in ml.source


def test_load_grouplens_download_extracts_to_cache(tmp_path, no_network, monkeypatch):
    cache = tmp_path / "cache"
    src = write_100k(tmp_path / "src" / "ml-100k")

    def fake_fetch(url, dest, timeout, progress):
        assert url == data.GROUPLENS_URL
        with zipfile.ZipFile(dest, "w") as zf:
            for f in src.iterdir():
                zf.write(f, f"ml-100k/{f.name}")

    monkeypatch.setattr(data, "_fetch_grouplens_zip", fake_fetch)
    monkeypatch.setattr(data, "validate_100k_counts", lambda ml: None)
    ml = load_movielens(cache_dir=cache, progress=False)
    assert "GroupLens download (cached at" in ml.source
    assert (cache / "ml-100k" / "u.data").is_file()
    assert [p.name for p in cache.iterdir()] == ["ml-100k"]  # temp dir cleaned up
    # Next call reads the cache without downloading.
    monkeypatch.setattr(data, "_fetch_grouplens_zip", None)
    assert "directory" in load_movielens(cache_dir=cache).source


def test_cached_wheel_is_read_before_any_network_attempt(tmp_path, no_network, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    write_wheel(cache / "wheels" / data.RECBOLE_WHEEL)

    def must_not_fetch(*args, **kwargs):
        raise AssertionError("a cached wheel must not trigger a download")

    monkeypatch.setattr(data, "_fetch_grouplens_zip", must_not_fetch)
    monkeypatch.setattr(data, "validate_100k_counts", lambda ml: None)
    ml = load_movielens(cache_dir=cache, progress=False)
    assert ml.source.startswith("recbole==1.2.1 wheel (cached at")
