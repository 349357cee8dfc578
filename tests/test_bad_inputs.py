"""Bad input of every kind ends in one clear line (exit 2) or works, and nothing is lost.

Three tables, each case run through the real CLI in-process (``recsys.cli.main``):

* ``FLAG_CASES``: bad flags, refused before any data is read;
* ``DATA_CASES``: small GroupLens folders written here with one thing wrong (never the real
  data), refused with the file and line, or accepted where the input is fine;
* ``RUN_CASES``: a tiny run trained once per module and copied per case, damaged or pointed
  at bad outputs; every file the user had is hashed before and after.

Concurrency (two processes saving one run) runs real processes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys.cli import main as cli
from recsys.cli import serving as cli_serving
from recsys.data.loading import GENRES_100K, read_grouplens_dir
from recsys.data.protocol import SplitConfig
from recsys.errors import RunError
from recsys.models.config import TrainConfig
from recsys.storage import runs
from recsys.storage.runs import load_run, save_run, train_run

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
INTERNALS = ("Traceback", "allow_pickle", "KeyError", "TypeError", "RuntimeError", "BadZip",
             "EOFError", "OverflowError", "ParserError", "Errno", "NoneType")


# ---------------------------------------------------------------------------- small data
def ratings_lines(n_users: int = 12, n_items: int = 10) -> list[str]:
    """Every user rates every movie: 4-5 stars on their own half, 1-2 on the other."""
    lines = []
    for u in range(1, n_users + 1):
        for i in range(1, n_items + 1):
            liked = (u <= n_users // 2) == (i <= n_items // 2)
            rating = 4 + (u + i) % 2 if liked else 1 + (u + i) % 2
            lines.append(f"{u}\t{i}\t{rating}\t{880000000 + 1000 * u + i}")
    return lines


def item_lines(n_items: int = 10) -> list[str]:
    flags = "|".join("1" if g == "Drama" else "0" for g in GENRES_100K)
    return [f"{i}|Movie {i} (199{i % 10})|01-Jan-199{i % 10}||http://x|{flags}"
            for i in range(1, n_items + 1)]


def write_grouplens(d: Path, data=None, item=None, user=None) -> Path:
    """An ml-100k folder; ``data`` / ``item`` / ``user`` replace a file's text (or bytes)."""
    d.mkdir(parents=True, exist_ok=True)
    files = {"u.data": "\n".join(ratings_lines()) + "\n" if data is None else data,
             "u.item": "\n".join(item_lines()) + "\n" if item is None else item,
             "u.user": "".join(f"{u}|30|F|writer|00000\n" for u in range(1, 13))
             if user is None else user}
    for name, content in files.items():
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return d


def with_line(line: str, at: int = 5) -> str:
    """The good u.data with ``line`` put in as line ``at`` (1-based)."""
    lines = ratings_lines()
    lines.insert(at - 1, line)
    return "\n".join(lines) + "\n"


def folder_hashes(*paths: Path) -> dict[str, str]:
    """sha256 of every file under ``paths`` (and their names), to prove nothing changed."""
    out = {}
    for root in paths:
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if root.is_dir() else []:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def run_cli(capsys, *args) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, out, err, *words):
    """Exit 2, exactly one error line naming every word, no Python internals anywhere."""
    assert code == 2, (code, out, err)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    for word in words:
        assert word in errors[0], (word, errors[0])
    for internal in INTERNALS:
        assert internal not in out + err, (internal, err)


@pytest.fixture(autouse=True)
def sandbox(tmp_path, monkeypatch):
    """Caches, runs and the working folder inside tmp_path; never the real data."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setenv("RECSYS_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("RECSYS_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, run folder): a tiny mf-bpr run on a tiny GroupLens folder."""
    root = tmp_path_factory.mktemp("trained")
    data = write_grouplens(root / "ml-100k")
    config = TrainConfig(dim=4, epochs=1, batch_size=64, patience=0, refit=False)
    train_run(read_grouplens_dir(data), SplitConfig(), config, root / "run")
    return data, root / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A fresh copy of the tiny run for one case."""
    return Path(shutil.copytree(trained[1], tmp_path / "run"))


# ---------------------------------------------------------------------------- 1. flags
TRAIN = ["train", "--epochs", "1", "--dim", "4", "--quiet", "--no-refit"]
FLAG_CASES = [
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-3"], "--epochs"),
    (["--epochs", "1.5"], "--epochs"),
    (["--dim", "-1"], "--dim"),
    (["--dim", "0"], "--dim"),
    (["--dim", "100000"], "--dim"),
    (["--dim", "abc"], "--dim"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**40)], "--seed"),
    (["--split-seed", "-1"], "--split-seed"),
    (["--device", "cpufoo"], "--device"),
    (["--device", "tpu"], "--device"),
    (["--device", "cuda:x"], "--device"),
    (["--model", "nope"], "--model"),
    (["--split", "foo"], "--split"),
    (["--test-fraction", "0"], "--test-fraction"),
    (["--test-fraction", "2"], "--test-fraction"),
    (["--valid-fraction", "-0.1"], "--valid-fraction"),
    (["--threshold", "11"], "--threshold"),
    (["--negatives", "0"], "--negatives"),
    (["--batch-size", "0"], "--batch-size"),
    (["--threads", "0"], "--threads"),
    (["--ncf-layers", "a,b"], "--ncf-layers"),
    (["--ncf-layers", "64,-1"], "--ncf-layers"),
    (["--alpha", "5"], "--alpha"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--patience", "-1"], "--patience"),
    (["--neg-sampling", "hard"], "--neg-sampling"),
    (["--knn-neighbours", "0"], "--knn-neighbours"),
    (["--ease-lambda", "-1"], "--ease-lambda"),
    (["--als-alpha", "-1"], "--als-alpha"),
]


@pytest.mark.parametrize("flags, flag", FLAG_CASES, ids=[" ".join(c[0]) for c in FLAG_CASES])
def test_bad_train_flag_is_refused_before_any_data(flags, flag, capsys, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the flags were checked")

    monkeypatch.setattr(cli, "load_movielens", refuse)
    code, out, err = run_cli(capsys, *TRAIN, *flags, "--out", tmp_path / "new")
    assert_one_line_error(code, out, err, flag)
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:7"])
def test_missing_gpu_is_refused_before_any_data(device, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_movielens", lambda *a, **k: pytest.fail("data loaded"))
    code, out, err = run_cli(capsys, *TRAIN, "--device", device)
    assert_one_line_error(code, out, err, "--device", "not available", "--device cpu")


def test_device_auto_trains_on_what_there_is(trained, tmp_path, capsys):
    code, out, err = run_cli(capsys, *TRAIN, "--device", "auto", "--data-dir", trained[0],
                             "--out", tmp_path / "auto")
    assert code == 0, err
    saved = json.loads((tmp_path / "auto" / "config.json").read_text())["train"]["device"]
    assert saved in ("cpu", "cuda")  # resolved, never "auto"


# ---------------------------------------------------------------------------- 2. data files
def special(kind):
    def make(d: Path) -> None:
        target = d / "u.data"
        target.unlink()
        if kind == "dir":
            target.mkdir()
        elif kind == "fifo":
            os.mkfifo(target)
        elif kind == "devzero":
            target.symlink_to("/dev/zero")
        elif kind == "loop":
            target.symlink_to(d / "u.data")
        elif kind == "dangling":
            target.symlink_to(d / "nowhere")
    return make


DATA_CASES = [  # (id, u.data, u.item, u.user or a change of the folder, words in the error)
    ("rating 99", with_line("1\t1\t99\t880000000"), None, None, ["u.data line 5", "rating"]),
    ("rating -7", with_line("1\t1\t-7\t880000000"), None, None, ["u.data line 5", "'-7'"]),
    ("rating inf", with_line("1\t1\tinf\t880000000"), None, None, ["u.data line 5", "rating"]),
    ("rating nan", with_line("1\t1\tnan\t880000000"), None, None, ["u.data line 5", "rating"]),
    ("rating 0", with_line("1\t1\t0\t880000000"), None, None, ["line 5", "0.5 to 5"]),
    ("rating 5.5", with_line("1\t1\t5.5\t880000000"), None, None, ["line 5", "rating"]),
    ("rating text", with_line("1\t1\tfive\t880000000"), None, None, ["line 5", "'five'"]),
    ("timestamp past int64", with_line(f"1\t1\t3\t{2**64}"), None, None,
     ["u.data line 5", "timestamp"]),
    ("timestamp 1e300", with_line("1\t1\t3\t1e300"), None, None, ["line 5", "timestamp"]),
    ("timestamp negative", with_line("1\t1\t3\t-1"), None, None, ["line 5", "timestamp"]),
    ("timestamp missing", with_line("1\t1\t3"), None, None, ["line 5", "timestamp", "nothing"]),
    ("truncated line", with_line("1\t2"), None, None, ["u.data line 5", "rating"]),
    ("truncated file", "\n".join(ratings_lines())[:-12], None, None, ["u.data line 120"]),
    ("user id text", with_line("abc\t1\t3\t880000000"), None, None, ["line 5", "user id"]),
    ("item id text", with_line("1\tx\t3\t880000000"), None, None, ["line 5", "movie id"]),
    ("user id 1.5", with_line("1.5\t1\t3\t880000000"), None, None, ["line 5", "whole number"]),
    ("user id 1_000", with_line("1_000\t1\t3\t880000000"), None, None, ["line 5", "'1_000'"]),
    ("non-ASCII digit", with_line("1\t\u0663\t3\t880000000"), None, None,
     ["line 5", "movie id"]),
    ("negative user id", with_line("-3\t1\t3\t880000000"), None, None, ["line 5", "user id"]),
    ("negative item id", with_line("1\t-3\t3\t880000000"), None, None, ["line 5", "movie id"]),
    ("huge user id", with_line("99999999999999999999\t1\t3\t880000000"), None, None,
     ["line 5", "user id"]),
    ("too many fields", with_line("1\t1\t3\t880000000\textra"), None, None,
     ["u.data", "line 5", "fields"]),
    ("many bad lines counted", with_line("1\t1\t99\t1", 3) + "2\t2\t99\t1\n", None, None,
     ["line 3", "1 more line"]),
    ("blank lines keep line numbers", "\n\n" + with_line("1\t1\t99\t1", 2), None, None,
     ["u.data line 4"]),
    ("empty u.data", "", None, None, ["u.data is empty"]),
    ("blank u.data", "\n\n\n", None, None, ["u.data is empty"]),
    ("binary u.data", bytes(range(256)) * 4, None, None, ["u.data"]),
    ("u.data a folder", None, None, special("dir"), ["u.data is not a regular file"]),
    ("u.data a pipe", None, None, special("fifo"), ["u.data is not a regular file"]),
    ("u.data -> /dev/zero", None, None, special("devzero"), ["u.data is not a regular file"]),
    ("u.data symlink loop", None, None, special("loop"), ["u.data cannot be read"]),
    ("u.data dangling link", None, None, special("dangling"), ["u.data cannot be read"]),
    ("u.item missing", None, None, lambda d: (d / "u.item").unlink(), ["u.item is missing"]),
    ("u.item empty", None, "", None, ["u.item is empty"]),
    ("u.item id text", None, "x|Movie|||http://x|0\n", None, ["u.item line 1", "movie id"]),
    ("u.item a folder", None, None,
     lambda d: ((d / "u.item").unlink(), (d / "u.item").mkdir()), ["u.item is not a regular"]),
    ("u.user id text", None, None, lambda d: (d / "u.user").write_text("1|2|F|x|0\nu|3|M|x|0\n"),
     ["u.user line 2", "user id"]),
]


def _data_case_dir(tmp_path, data, item, change) -> Path:
    d = write_grouplens(tmp_path / "ml-100k", data=data, item=item)
    if callable(change):
        change(d)
    return d


@pytest.mark.parametrize("data, item, change, words", [c[1:] for c in DATA_CASES],
                         ids=[c[0] for c in DATA_CASES])
def test_bad_data_file_names_file_and_line(data, item, change, words, tmp_path, capsys):
    d = _data_case_dir(tmp_path, data, item, change)
    before = folder_hashes(d) if not isinstance(change, type(special("x"))) else None
    code, out, err = run_cli(capsys, "data", "--data-dir", d, "--no-download")
    assert_one_line_error(code, out, err, *words)
    if before is not None and all(Path(p).is_file() for p in before):
        assert folder_hashes(d) == before


@pytest.mark.skipif(ROOT, reason="root reads any file")
def test_unreadable_data_file(tmp_path, capsys):
    d = write_grouplens(tmp_path / "ml-100k")
    (d / "u.data").chmod(0)
    code, out, err = run_cli(capsys, "data", "--data-dir", d)
    assert_one_line_error(code, out, err, "u.data cannot be read", "ermission")


@pytest.mark.parametrize("make, words", [
    (lambda t: t / "nope", ["does not exist"]),
    (lambda t: ((t / "file").write_text("x"), t / "file")[1], ["not a directory"]),
    (lambda t: ((t / "empty").mkdir(), t / "empty")[1], ["no MovieLens files", "u.data"]),
], ids=["missing folder", "a file", "empty folder"])
def test_bad_data_dir(make, words, tmp_path, capsys):
    code, out, err = run_cli(capsys, "data", "--data-dir", make(tmp_path))
    assert_one_line_error(code, out, err, *words)


@pytest.mark.parametrize("ratings, words", [
    ("userId,movieId,rating,timestamp\n", ["ratings.csv holds no ratings"]),
    ("user,movie,rating,timestamp\n1,1,4,1\n", ["ratings.csv line 1", "userId"]),
    ("userId,movieId,rating,timestamp\n1,1,4,1\n1,2,5.5,2\n", ["ratings.csv line 3"]),
    ("", ["ratings.csv is empty"]),
], ids=["header only", "wrong header", "rating 5.5", "empty"])
def test_bad_latest_small_files(ratings, words, tmp_path, capsys):
    (tmp_path / "ratings.csv").write_text(ratings)
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A (1995),Drama\n")
    code, out, err = run_cli(capsys, "data", "--data-dir", tmp_path)
    assert_one_line_error(code, out, err, *words)


def test_bad_1m_line(tmp_path, capsys):
    (tmp_path / "ratings.dat").write_text("1::1::5::978300760\n1::2::9::978300761\n")
    (tmp_path / "movies.dat").write_text("1::A (1995)::Drama\n2::B (1996)::Drama\n")
    code, out, err = run_cli(capsys, "data", "--data-dir", tmp_path)
    assert_one_line_error(code, out, err, "ratings.dat line 2", "rating")


# Accepted: odd but meaningful input loads, and says what it did.
def test_repeated_ratings_keep_the_latest_and_say_so(tmp_path, capsys):
    extra = "1\t1\t1\t990000000\n1\t1\t2\t880000000\n"  # a later re-rating, an older one
    d = write_grouplens(tmp_path / "ml-100k", data="\n".join(ratings_lines()) + "\n" + extra)
    ml = read_grouplens_dir(d)
    assert len(ml.ratings) == 120
    row = ml.ratings[(ml.ratings.user_id == 1) & (ml.ratings.item_id == 1)]
    assert row["rating"].tolist() == [1.0]  # the latest (990000000)
    assert "2 repeated rating(s)" in ml.notes[0]
    code, out, err = run_cli(capsys, "data", "--data-dir", d)
    assert code == 0 and "note: u.data: 2 repeated rating(s)" in err


@pytest.mark.parametrize("encoding, title", [
    ("utf-8", "Amélie – 天使 🎬 (2001)"), ("latin-1", "Café Noir (1995)"),
    ("utf-8-sig", "Café Noir (1995)"),
])
def test_movie_titles_in_any_usual_encoding(encoding, title, tmp_path):
    items = item_lines()
    items[0] = items[0].replace("Movie 1 (1991)", title)
    d = write_grouplens(tmp_path / "ml-100k", item=("\n".join(items) + "\n").encode(encoding))
    assert read_grouplens_dir(d).movies.set_index("item_id").loc[1, "title"] == title


@pytest.mark.parametrize("text", [
    "\ufeff" + "\n".join(ratings_lines()) + "\n",  # a UTF-8 byte-order mark
    "\r\n".join(ratings_lines()) + "\r\n",  # Windows line ends
    "\n".join(ratings_lines()),  # no final newline
    "\n".join(ratings_lines()[:60]) + "\n\n\n" + "\n".join(ratings_lines()[60:]),
], ids=["BOM", "CRLF", "no final newline", "blank lines"])
def test_harmless_file_shapes_are_accepted(text, tmp_path):
    ml = read_grouplens_dir(write_grouplens(tmp_path / "ml-100k", data=text))
    assert len(ml.ratings) == 120 and ml.ratings["rating"].between(1, 5).all()


def test_id_zero_is_accepted(tmp_path):
    d = write_grouplens(tmp_path / "ml-100k", data=with_line("0\t1\t3\t880000000"))
    assert 0 in read_grouplens_dir(d).ratings["user_id"].tolist()


# ---------------------------------------------------------------------------- 3. runs, outputs
def serve(trained, *args):
    return [*args, "--data-dir", trained[0], "--no-download"]


def test_export_refuses_the_runs_own_weights(trained, run, capsys):
    before = folder_hashes(run)
    for out in (run / "weights.npz", run / "weights"):
        code, o, err = run_cli(capsys, "export", run, *serve(trained, "--out", out, "--force"))
        assert_one_line_error(code, o, err, "is a file of the run", "choose another")
    assert folder_hashes(run) == before


@pytest.mark.parametrize("name", ["e.npz", "e"])
def test_export_never_overwrites_without_force(name, trained, run, tmp_path, capsys):
    (tmp_path / "e.npz").write_bytes(b"precious")
    code, out, err = run_cli(capsys, "export", run, *serve(trained, "--out", tmp_path / name))
    assert_one_line_error(code, out, err, "e.npz already exists", "--force")
    assert (tmp_path / "e.npz").read_bytes() == b"precious"


def test_export_force_replaces_and_names_the_real_file(trained, run, tmp_path, capsys):
    (tmp_path / "e.npz").write_bytes(b"old")
    code, out, err = run_cli(capsys, "export", run,
                             *serve(trained, "--out", tmp_path / "e", "--force"))
    assert code == 0, err
    assert f"wrote {tmp_path / 'e.npz'} (" in out
    with np.load(tmp_path / "e.npz", allow_pickle=False) as z:
        assert z["item_factors"].shape == (10, 4)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("make, words", [
    (lambda t: ((t / "file").write_text("x"), t / "file" / "e.npz")[1], ["is a file, not a"]),
    (lambda t: ((t / "dir.npz").mkdir(), t / "dir.npz")[1], ["is a folder"]),
    (lambda t: ((t / "f").write_text("x"), t / "f" / "a" / "b.npz")[1], ["is a file"]),
], ids=["below a file", "a folder", "deep below a file"])
def test_export_bad_out_is_refused_before_loading(make, words, trained, run, tmp_path, capsys,
                                                  monkeypatch):
    out = make(tmp_path)
    before = folder_hashes(tmp_path)
    monkeypatch.setattr(cli, "load_run", lambda *a: pytest.fail("the run was loaded"))
    code, o, err = run_cli(capsys, "export", run, *serve(trained, "--out", out))
    assert_one_line_error(code, o, err, "--out", *words)
    assert folder_hashes(tmp_path) == before


@pytest.mark.skipif(ROOT, reason="root writes anywhere")
def test_export_into_a_read_only_folder(trained, run, tmp_path, capsys):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    code, out, err = run_cli(capsys, "export", run, *serve(trained, "--out", tmp_path / "ro/e"))
    assert_one_line_error(code, out, err, "no permission to write")


@pytest.mark.parametrize("code_", [errno.ENOSPC, errno.EACCES, errno.EIO])
def test_export_disk_errors_are_one_line_and_leave_nothing(code_, trained, run, tmp_path,
                                                            capsys, monkeypatch):
    def failing_savez(*args, **kwargs):
        raise OSError(code_, os.strerror(code_), str(tmp_path / "e.npz"))

    monkeypatch.setattr(np, "savez", failing_savez)
    code, out, err = run_cli(capsys, "export", run, *serve(trained, "--out", tmp_path / "e"))
    assert_one_line_error(code, out, err, "e.npz", os.strerror(code_))
    assert not (tmp_path / "e.npz").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_export_projector_keeps_existing_files(trained, run, tmp_path, capsys):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "metadata.tsv").write_text("mine")
    code, out, err = run_cli(capsys, "export", run, "--format", "projector",
                             *serve(trained, "--out", tmp_path / "proj"))
    assert_one_line_error(code, out, err, "metadata.tsv already exists")
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == ["metadata.tsv"]
    assert (tmp_path / "proj" / "metadata.tsv").read_text() == "mine"


def test_train_refuses_an_existing_run_and_a_file_parent(trained, run, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.setattr(cli, "load_movielens", lambda *a, **k: pytest.fail("data loaded"))
    before = folder_hashes(run)
    code, out, err = run_cli(capsys, *TRAIN, "--out", run)
    assert_one_line_error(code, out, err, "already exists")
    (tmp_path / "f").write_text("x")
    code, out, err = run_cli(capsys, *TRAIN, "--out", tmp_path / "f" / "run")
    assert_one_line_error(code, out, err, "is a file, not a folder")
    assert folder_hashes(run) == before


def test_default_run_names_never_collide(trained, tmp_path, capsys):
    for _ in range(2):  # the same second
        code, out, err = run_cli(capsys, *TRAIN, "--model", "popularity",
                                 "--data-dir", trained[0])
        assert code == 0, err
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_saved_json_is_standard_even_with_nan_metrics(trained, tmp_path):
    saved = load_run(trained[1])
    saved.metrics = {**saved.metrics, "rmse": float("inf"), "odd": np.float32("nan")}
    save_run(saved, tmp_path / "nan-run")
    text = (tmp_path / "nan-run" / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert metrics["rmse"] is None and metrics["odd"] is None


def test_evaluate_json_is_standard(trained, run, capsys):
    code, out, err = run_cli(capsys, "evaluate", run, "--json", *serve(trained))
    assert code == 0, err
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the output"))


def test_save_run_claims_the_name_atomically(trained, tmp_path, monkeypatch):
    """Another writer finishes first between the check and the rename: it keeps its run."""
    saved = load_run(trained[1])
    target = tmp_path / "race"
    write = runs._write_run_files

    def other_writer_wins(run_, folder):
        write(run_, folder)
        shutil.copytree(trained[1], target)

    monkeypatch.setattr(runs, "_write_run_files", other_writer_wins)
    with pytest.raises(RunError, match="already exists"):
        save_run(saved, target)
    names = {Path(k).name: v for k, v in folder_hashes(target).items()}
    assert names == {Path(k).name: v for k, v in folder_hashes(trained[1]).items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race"]  # no temporary left


SAVE = """
import sys, time
from recsys.storage.runs import load_run, save_run, RunError
run = load_run(sys.argv[1])
time.sleep(max(0.0, float(sys.argv[3]) - time.time()))
try:
    save_run(run, sys.argv[2])
except RunError as err:
    print(err, file=sys.stderr)
    sys.exit(2)
"""


def test_two_processes_saving_one_run_exactly_one_wins(trained, tmp_path):
    import time

    start = time.time() + 8  # every process has imported torch and loaded the run by then
    procs = [subprocess.Popen([sys.executable, "-c", SAVE, str(trained[1]),
                               str(tmp_path / f"r{n}"), str(start)], stderr=subprocess.PIPE,
                              text=True) for n in range(3) for _ in range(2)]
    # six processes import torch at once: on a loaded 2-core machine that alone can take a minute
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for n in range(3):
        pair = results[2 * n: 2 * n + 2]
        assert sorted(code for code, _ in pair) == [0, 2], pair
        assert "already exists" in next(err for code, err in pair if code == 2)
        load_run(tmp_path / f"r{n}")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_stale_temporaries_of_dead_processes_are_removed(trained, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".old.tmp-{dead.pid}-1"
    stale.mkdir()
    (stale / "weights.npz").write_bytes(b"half")
    mine = tmp_path / f".mine.tmp-{os.getpid()}-1"
    mine.mkdir()
    other = tmp_path / ".not-a-temporary"
    other.mkdir()
    save_run(load_run(trained[1]), tmp_path / "new")
    assert not stale.exists() and mine.exists() and other.exists()


# Caches: damaged ones are rebuilt; a run that cannot be written still serves.
def faiss_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.faiss"))


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    lambda p: p.write_bytes(b""),
    lambda p: p.write_bytes(b"not an index at all"),
    lambda p: p.write_bytes(p.read_bytes()[:-30] + bytes(30)),
    lambda p: (p.unlink(), p.mkdir()),
], ids=["truncated", "empty", "garbage", "zeroed vectors", "a folder"])
def test_damaged_faiss_cache_is_rebuilt(damage, trained, run, capsys):
    args = ["similar", run, *serve(trained, "--movie", "1")]
    code, good, err = run_cli(capsys, *args)
    assert code == 0, err
    [cached] = faiss_files(run / "index")
    damage(cached)
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert out == good  # the same answer as from a sound index


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[:40]),
    lambda p: p.write_bytes(b""),
    lambda p: np.savez(p.with_suffix(""), coords=np.zeros((3, 2))),
    lambda p: np.savez(p.with_suffix(""), coords=np.array([None] * 20, object).reshape(10, 2),
                       explained_variance=np.ones(2), pca_mean=np.ones(4),
                       pca_components=np.ones((2, 4))),
    lambda p: np.savez(p.with_suffix(""), coords=np.full((10, 2), np.nan)),
], ids=["truncated", "empty", "wrong shape", "pickled objects", "NaN"])
def test_damaged_projection_cache_is_recomputed(damage, trained, run, capsys):
    args = ["project", run, *serve(trained)]
    code, good, err = run_cli(capsys, *args)
    assert code == 0, err
    [cached] = sorted((run / "projections").glob("*.npz"))
    damage(cached)
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert out == good
    with np.load(cached, allow_pickle=False) as z:  # rewritten sound
        assert z["coords"].shape == (10, 2)


@pytest.mark.parametrize("command", [["similar", "--movie", "1"], ["project"]])
def test_run_whose_cache_folder_cannot_be_made_still_serves(command, trained, run, tmp_path,
                                                            capsys):
    (run / "index").write_text("in the way")  # what a read-only run does, even for root
    (run / "projections").write_text("in the way")
    before = folder_hashes(run)
    code, out, err = run_cli(capsys, command[0], run, *serve(trained, *command[1:]))
    assert code == 0, err
    assert folder_hashes(run) == before
    assert list((tmp_path / "user-cache").rglob("*.faiss" if command[0] == "similar" else "*.npz"))


@pytest.mark.skipif(ROOT, reason="root writes anywhere")
@pytest.mark.parametrize("command", [["similar", "--movie", "1"], ["project"]])
def test_read_only_run_still_serves(command, trained, run, capsys):
    for p in [run, *run.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        code, out, err = run_cli(capsys, command[0], run, *serve(trained, *command[1:]))
        assert code == 0, err
    finally:
        run.chmod(0o755)


def test_xdg_cache_home_is_used_without_recsys_cache_dir(trained, run, tmp_path, capsys,
                                                         monkeypatch):
    monkeypatch.delenv("RECSYS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (run / "index").write_text("in the way")
    code, out, err = run_cli(capsys, "similar", run, *serve(trained, "--movie", "1"))
    assert code == 0, err
    assert faiss_files(tmp_path / "xdg" / "movielens-embeddings" / "index")


# Sizes and lookups.
@pytest.mark.parametrize("command, shown", [
    (["similar", "--movie", "1", "--k", str(10**12)], "9 other movies"),
    (["recommend", "--user", "1", "--k", str(10**12)], "10 movies"),
    (["similar-users", "--user", "1", "--k", str(10**12)], "11 other users"),
    (["evaluate", "--k", str(10**12)], "10 movies"),
], ids=["similar", "recommend", "similar-users", "evaluate"])
def test_huge_k_is_capped_at_the_catalogue(command, shown, trained, run, capsys):
    code, out, err = run_cli(capsys, command[0], run, *serve(trained, *command[1:]))
    assert code == 0, err
    assert "showing all of them" in err and shown in err


@pytest.mark.parametrize("command", [
    ["similar", "--movie", "1", "--k", "0"], ["recommend", "--user", "1", "--k", "-5"],
    ["similar-users", "--user", "1", "--k", "0"], ["evaluate", "--k", "0"],
], ids=["similar", "recommend", "similar-users", "evaluate"])
def test_k_below_one_is_refused_before_loading(command, trained, run, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_run", lambda *a: pytest.fail("the run was loaded"))
    monkeypatch.setattr(cli_serving, "load_run", lambda *a: pytest.fail("the run was loaded"))
    code, out, err = run_cli(capsys, command[0], run, *serve(trained, *command[1:]))
    assert_one_line_error(code, out, err, "--k must be at least 1")


@pytest.mark.parametrize("command, words", [
    (["recommend", "--user", "999999"], ["999999"]),
    (["recommend", "--user", "-1"], ["-1"]),
    (["similar", "--movie", "no such film at all"], ["no such film"]),
    (["similar-users", "--user", "424242"], ["424242"]),
    (["recommend", "--user", "abc"], ["--user", "invalid int"]),
], ids=["unknown user", "negative user", "unknown movie", "unknown neighbour user", "text"])
def test_unknown_ids_are_one_line(command, words, trained, run, capsys):
    code, out, err = run_cli(capsys, command[0], run, *serve(trained, *command[1:]))
    assert_one_line_error(code, out, err, *words)


@pytest.mark.parametrize("make, words", [
    (lambda t: ((t / "f").write_text("x"), t / "f")[1], ["no run directory"]),
    (lambda t: ((t / "loop").symlink_to(t / "loop"), t / "loop")[1], ["no run directory"]),
    (lambda t: t / "nope", ["no run directory"]),
], ids=["a file", "symlink loop", "missing"])
def test_run_dir_that_is_not_a_folder(make, words, trained, tmp_path, capsys):
    code, out, err = run_cli(capsys, "evaluate", make(tmp_path), *serve(trained))
    assert_one_line_error(code, out, err, *words)


def test_project_out_is_new_unless_forced(trained, run, tmp_path, capsys):
    (tmp_path / "map.csv").write_text("mine")
    code, out, err = run_cli(capsys, "project", run, *serve(trained, "--out",
                                                           tmp_path / "map.csv"))
    assert_one_line_error(code, out, err, "map.csv already exists", "--force")
    assert (tmp_path / "map.csv").read_text() == "mine"
    code, out, err = run_cli(capsys, "project", run, *serve(trained, "--out",
                                                           tmp_path / "map.csv", "--force"))
    assert code == 0 and (tmp_path / "map.csv").read_text().startswith("item_id,x,y")
