"""The served-list log (recsys.serving.served_log): one escaped JSON line per record, whole
lines under concurrent writers, rotation by size, reading in order, and `recsys replay-log`
catching every change."""

from __future__ import annotations

import json
import multiprocessing
import threading

import pytest

from recsys.cli import main as cli
from recsys.cli import serving as cli_serving
from recsys.errors import BadInputError
from recsys.serving import served_log
from recsys.serving.served_log import ServedLog, compare_items, read_records
from tests.synthetic import fit, make_world

NASTY = 'line\nbreak "quoted" \\ back\x00nul\x1b[31mred\r\u2028sep\u00e9 \U0001f3ac'


def record(number: int, padding: int = 0, text: str = "") -> dict:
    return {"request_id": f"{number:032x}", "endpoint": "recommend", "n": number,
            "inputs": {"query": text}, "items": [{"movie_id": 1, "score": 0.5,
                                                  "source": "retrieval"}],
            "pad": "x" * padding}


def test_a_record_is_one_escaped_ascii_line(tmp_path):
    log = ServedLog(tmp_path)
    for number in range(3):
        log.append(record(number, text=NASTY))
    raw = log.path.read_bytes()
    assert raw.count(b"\n") == 3
    assert all(32 <= b < 127 for line in raw.splitlines() for b in line)
    assert [r["inputs"]["query"] for r in read_records(tmp_path)] == [NASTY] * 3


def test_non_finite_numbers_never_reach_the_file(tmp_path):
    with pytest.raises(ValueError):
        ServedLog(tmp_path).append({"score": float("nan")})
    assert not (tmp_path / served_log.ACTIVE_NAME).exists() or not (
        tmp_path / served_log.ACTIVE_NAME).read_bytes()


def test_rotation_keeps_the_newest_files_in_order(tmp_path):
    line_bytes = len(served_log.encode_record(record(19, padding=200)))  # the longest
    log = ServedLog(tmp_path, max_bytes=3 * line_bytes, keep=2)  # three records per file
    for number in range(20):
        log.append(record(number, padding=200))
    rotated = served_log.rotated_files(tmp_path)
    assert len(rotated) == 2
    assert all(p.name.startswith("served-") and p.name.endswith(".jsonl") for p in rotated)
    assert all(p.stat().st_size <= 3 * line_bytes for p in [*rotated, log.path])
    numbers = [r["n"] for r in read_records(tmp_path)]
    assert numbers == list(range(20 - len(numbers), 20))  # the newest, oldest first
    assert len(numbers) >= 7  # two full rotated files and the active one
    assert [r["n"] for r in read_records(rotated[0])] == numbers[:3]


def test_a_record_larger_than_the_limit_still_goes_in_whole(tmp_path):
    log = ServedLog(tmp_path, max_bytes=100, keep=5)
    log.append(record(0, padding=500))
    log.append(record(1, padding=500))
    assert [r["n"] for r in read_records(tmp_path)] == [0, 1]


def _append_many(folder, writer: int, count: int, max_bytes: int) -> None:
    log = ServedLog(folder, max_bytes=max_bytes, keep=1000)
    for number in range(count):
        log.append(record(writer * 1000 + number, padding=6000))  # > PIPE_BUF (4096)
    log.close()


def test_concurrent_threads_and_processes_write_whole_lines(tmp_path):
    """Long lines (over PIPE_BUF) from 4 threads and 2 processes, with rotation under way:
    every line parses and none is lost."""
    max_bytes = 40_000  # rotates every ~6 records
    threads = [threading.Thread(target=_append_many, args=(tmp_path, w, 25, max_bytes))
               for w in range(4)]
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_append_many, args=(tmp_path, w, 25, max_bytes))
                 for w in (4, 5)]
    for worker in threads + processes:
        worker.start()
    for worker in threads + processes:
        worker.join(60)
    assert all(p.exitcode == 0 for p in processes)
    numbers = sorted(r["n"] for r in read_records(tmp_path))
    assert numbers == sorted(w * 1000 + n for w in range(6) for n in range(25))
    for path in served_log.log_files(tmp_path):
        assert path.stat().st_size <= max_bytes


def test_read_records_names_a_damaged_line(tmp_path):
    ServedLog(tmp_path).append(record(0))
    with open(tmp_path / served_log.ACTIVE_NAME, "a") as f:
        f.write('{"request_id": "cut off\n')
    with pytest.raises(BadInputError, match=r"served.jsonl line 2 is not JSON"):
        list(read_records(tmp_path))
    with pytest.raises(BadInputError, match="no served log"):
        list(read_records(tmp_path / "missing"))


def test_compare_items():
    logged = [{"movie_id": 1, "score": 1.0, "source": "retrieval"},
              {"movie_id": 2, "score": 0.5, "source": "retrieval"}]
    assert compare_items(logged, [dict(i) for i in logged]) == []
    nudged = [dict(logged[0], score=1.0 + 1e-7), logged[1]]
    assert compare_items(logged, nudged) == []  # float noise of another BLAS path
    assert compare_items(logged, [dict(logged[0], score=1.01), logged[1]]) == [
        "#1: movie 1 scored 1.0 logged, 1.01 recomputed"]
    assert compare_items(logged, logged[::-1])[0].startswith("#1: logged movie 1")
    assert compare_items(logged, logged[:1]) == ["2 items logged, 1 recomputed"]
    assert compare_items(logged, [logged[0], dict(logged[1], source="content")])
    assert compare_items([dict(logged[0], score="1.0")], logged[:1])  # a string is no score


# ---------------------------------------------------------------------------- replay-log
@pytest.fixture(scope="module")
def world():
    return make_world()


@pytest.fixture(scope="module")
def catalog(world, tmp_path_factory):
    return fit(world, tmp_path_factory.mktemp("runs"), "mf-bpr")


@pytest.fixture(autouse=True)
def synthetic_data(monkeypatch, world):
    monkeypatch.setattr(cli_serving, "load_movielens", lambda data_dir, download: world)


REQUESTS = [("recommend", {"user": 3, "k": 5, "lens": "dot", "exclude_seen": True}),
            ("recommend", {"user": 30, "k": 4, "lens": "cosine", "exclude_seen": False}),
            ("similar", {"movie": 4, "k": 3, "lens": "hybrid"}),
            ("recommend/profile", {"likes": [1, 2], "dislikes": [15], "k": 5, "blend": None})]


@pytest.fixture
def log_dir(catalog, tmp_path):
    """A log of four lists served from the run, as the API writes it."""
    log = ServedLog(tmp_path / "log")
    for endpoint, inputs in REQUESTS:
        items = served_log.LISTS[endpoint](catalog, inputs)[1]
        log.append(served_log.make_record(catalog, endpoint, inputs, items, 1.0,
                                          served_log.new_request_id()))
    return log.folder


def replay(capsys, *args) -> tuple[int, str]:
    code = cli.main(["replay-log", *map(str, args)])
    return code, capsys.readouterr().out


def rewrite_line(folder, number: int, change) -> None:
    path = folder / served_log.ACTIVE_NAME
    lines = path.read_text().splitlines()
    row = json.loads(lines[number])
    change(row)
    lines[number] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")


def test_replay_of_an_untouched_log_matches(catalog, log_dir, capsys):
    code, out = replay(capsys, log_dir, "--runs-dir", catalog.run.path.parent)
    assert code == 0, out
    assert out.strip() == "replayed 4 records from 1 file(s): 4 matched, 0 mismatched"
    code, out = replay(capsys, log_dir / served_log.ACTIVE_NAME, "--run", catalog.run.path)
    assert code == 0 and "4 matched" in out


@pytest.mark.parametrize("number,change,words", [
    (0, lambda r: r["items"][0].update(score=r["items"][0]["score"] + 0.01), "scored"),
    (2, lambda r: r["items"].reverse(), "logged movie"),
    (3, lambda r: r["items"].pop(), "items logged"),
    (1, lambda r: r.update(fingerprint="0123456789abcdef"), "other data"),
    (0, lambda r: r["inputs"].update(user="3"), "not an integer"),
    (2, lambda r: r.update(run="no-such-run"), "pass --runs-dir or --run"),
])
def test_replay_reports_a_tampered_line(catalog, log_dir, capsys, number, change, words):
    rewrite_line(log_dir, number, change)
    code, out = replay(capsys, log_dir, "--runs-dir", catalog.run.path.parent)
    assert code == 1
    assert f"mismatch: record {number + 1} " in out and words in out
    assert out.splitlines()[-1] == "replayed 4 records from 1 file(s): 3 matched, 1 mismatched"


def test_replay_against_another_run_shows_the_differences(world, catalog, log_dir, capsys,
                                                           tmp_path):
    other = fit(world, tmp_path / "other", "itemknn")
    code, out = replay(capsys, log_dir, "--run", other.run.path)
    assert code == 1 and "0 matched, 4 mismatched" in out


def test_replay_of_a_missing_log_is_a_clean_error(tmp_path, capsys):
    assert cli.main(["replay-log", str(tmp_path / "nothing")]) == 2
    assert "no served log at" in capsys.readouterr().err
