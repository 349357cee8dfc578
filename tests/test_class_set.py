"""The class set (recsys.jobs.class_set): every run the lessons need, trained once, found again,
never overwriting a run that is in the way."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from recsys.data.protocol import SplitConfig
from recsys.jobs import class_set
from recsys.lessons import projection
from recsys.storage.runs import list_runs, load_run, pinned_run_name
from tests.synthetic import tiny_movielens


@pytest.fixture
def pca_only(monkeypatch):
    """The class set with only PCA maps (UMAP and t-SNE cost a minute; they go through the same
    call)."""
    runs = tuple(dataclasses.replace(e, maps=("pca",) if e.maps else ()) for e in
                 class_set.CLASS_RUNS)
    monkeypatch.setattr(class_set, "CLASS_RUNS", runs)
    return runs


def test_prepare_trains_pins_and_maps_every_class_run_once(tmp_path, pca_only):
    ml = tiny_movielens()
    steps = []
    status = class_set.prepare_class(ml, tmp_path, lambda f, m: steps.append((f, m)))
    assert status.complete
    assert sorted(p.name for p in list_runs(tmp_path)) == sorted(e.folder for e in pca_only)
    for entry in pca_only:
        run = load_run(tmp_path / entry.folder)
        assert run.train_config.model == entry.model
        assert run.split_config == SplitConfig()
        assert projection.item_map_is_cached(tmp_path / entry.folder, "pca") \
            == bool(entry.maps)
    assert pinned_run_name(tmp_path) == "default"
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert steps[-1][1] == "the class set is ready"

    before = {p.name: (p / "weights.npz").stat().st_mtime_ns for p in list_runs(tmp_path)}
    again = []
    class_set.prepare_class(ml, tmp_path, lambda f, m: again.append(m))
    assert not any(m.startswith("training") for m in again)  # skipped: already there
    assert {p.name: (p / "weights.npz").stat().st_mtime_ns for p in list_runs(tmp_path)} == before


def test_a_run_in_the_way_is_kept_and_the_class_run_trained_beside_it(tmp_path, pca_only):
    ml = tiny_movielens()
    (tmp_path / "class-ease").mkdir()
    (tmp_path / "class-ease" / "weights.npz").write_bytes(b"not a run")  # damaged
    status = class_set.prepare_class(ml, tmp_path, maps=False)
    assert status.complete
    assert (tmp_path / "class-ease" / "weights.npz").read_bytes() == b"not a run"
    assert status.found["class-ease"].name == "class-ease-2"
    assert class_set.class_status(tmp_path, ml).found["class-ease"].name == "class-ease-2"


def test_an_existing_pin_is_kept(tmp_path, pca_only):
    ml = tiny_movielens()
    class_set.prepare_class(ml, tmp_path, maps=False)
    (tmp_path / "pinned.json").unlink()
    from recsys.storage.runs import pin_run

    pin_run(tmp_path, "class-svd")
    class_set.prepare_class(ml, tmp_path, maps=False)
    assert pinned_run_name(tmp_path) == "class-svd"


def test_class_run_names_find_copies_in_the_order_they_were_made():
    names = ["class-mf-bpr-10", "x", "class-mf-bpr", "class-mf-bpr-2", "class-mf-bpr-x",
             "class-mf-bpr-2-3"]
    assert class_set.class_run_names(names, class_set.TRAINING) == [
        "class-mf-bpr", "class-mf-bpr-2", "class-mf-bpr-10"]


def test_a_second_preparation_waits_for_the_first(tmp_path):
    """The lock: while one process holds it the folder counts as being prepared, and another
    preparation says it waits."""
    (tmp_path / class_set.CLASS_LOCK).touch()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"f = open({str(tmp_path / class_set.CLASS_LOCK)!r})\n"
         "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert class_set.is_preparing(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert not class_set.is_preparing(tmp_path)


def test_the_log_of_a_preparation_reads_as_progress(tmp_path):
    assert class_set.preparation(tmp_path) is None
    log = tmp_path / class_set.CLASS_LOG
    log.write_text("data: ml-100k from tests\n[ 22%  13.5 s] training ease (a baseline)\n")
    now = class_set.preparation(tmp_path)
    assert now.running and now.fraction == pytest.approx(0.22)  # a fresh log: starting
    assert now.message == "training ease (a baseline)"
    log.write_text("[ 22%  13.5 s] x\n[100%  66.2 s] the class set is ready\n")
    assert not class_set.preparation(tmp_path).running


def test_the_cli_prepares_the_class(tmp_path, movielens, pca_only, capsys):
    """`recsys prepare-class` on the real data (the fixture skips without it), trained and
    pinned (--no-maps)."""
    from recsys.cli.main import main

    assert main(["prepare-class", "--runs-dir", str(tmp_path), "--no-maps",
                 "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "training mf-bpr" in out and "pinned default" in out
    assert "the class set is ready" in out
    assert sorted(p.name for p in list_runs(tmp_path)) == sorted(e.folder for e in pca_only)


def test_run_sh_knows_every_class_run():
    """scripts/prepare.sh checks the class set's folders before starting Python: the same
    list as CLASS_RUNS."""
    import re
    from pathlib import Path

    script = (Path(__file__).resolve().parents[1] / "scripts" / "prepare.sh").read_text()
    listed = re.search(r'^class_runs="([^"]*)"', script, re.M)[1].split()
    assert listed == [e.folder for e in class_set.CLASS_RUNS]


def test_the_decay_run_differs_from_the_training_run_in_weight_decay_only():
    decay = next(e for e in class_set.CLASS_RUNS if e.folder == "class-mf-bpr-decay")
    a, b = class_set.TRAINING.config(), decay.config()
    assert b.weight_decay == 10 * a.weight_decay
    assert {f for f in a.__dataclass_fields__ if getattr(a, f) != getattr(b, f)} == {
        "weight_decay"}
