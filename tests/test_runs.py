import json
import os
import shutil

import numpy as np
import pytest

from recsys.data.protocol import SplitConfig
from recsys.errors import RunError
from recsys.models.config import TrainConfig
from recsys.storage.runs import (
    list_runs,
    load_run,
    pin_run,
    pinned_run_name,
    save_run,
    train_run,
    unpin_run,
)
from tests.synthetic import tiny_movielens

CFG = TrainConfig(model="mf-bpr", dim=8, epochs=3, batch_size=64, threads=1)


def test_train_save_load_roundtrip(tmp_path):
    ml = tiny_movielens()
    run = train_run(ml, SplitConfig(), CFG, tmp_path / "run")
    for name in ("config.json", "metrics.json", "history.json", "mappings.json", "dataset.json",
                 "weights.npz"):
        assert (tmp_path / "run" / name).exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"recall@10", "ndcg@10", "protocol", "fit_seconds"} <= set(metrics)
    assert metrics["protocol"]["split"] == "temporal"
    loaded = load_run(tmp_path / "run")
    assert loaded.train_config == CFG
    np.testing.assert_array_equal(loaded.item_ids, run.item_ids)
    np.testing.assert_allclose(loaded.model.score(np.arange(3)), run.model.score(np.arange(3)))
    loaded.check_dataset(ml)
    assert list_runs(tmp_path) == [tmp_path / "run"]


def test_an_older_mf_als_run_keeps_its_lambda(tmp_path):
    """Runs saved before mf-als had ``als_lambda`` kept its lambda in ``weight_decay``: it
    loads as ``als_lambda``, with the same factors and scores."""
    ml = tiny_movielens()
    cfg = TrainConfig.for_model("mf-als", dim=4, epochs=2, threads=1, als_lambda=3.0)
    run = train_run(ml, SplitConfig(), cfg, tmp_path / "run")
    config_file = tmp_path / "run" / "config.json"
    saved = json.loads(config_file.read_text())
    saved["train"]["weight_decay"] = saved["train"].pop("als_lambda")
    config_file.write_text(json.dumps(saved))
    loaded = load_run(tmp_path / "run")
    assert loaded.train_config.als_lambda == 3.0
    assert loaded.train_config.weight_decay == TrainConfig().weight_decay
    np.testing.assert_array_equal(loaded.model.score(np.arange(3)), run.model.score(np.arange(3)))


def test_existing_run_is_not_overwritten_and_failed_save_leaves_nothing(tmp_path, monkeypatch):
    ml = tiny_movielens()
    run = train_run(ml, SplitConfig(), CFG, tmp_path / "run")
    with pytest.raises(RunError, match="already exists"):
        save_run(run, tmp_path / "run")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        save_run(run, tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_load_rejects_missing_incomplete_and_foreign_runs(tmp_path):
    with pytest.raises(RunError, match="no run directory"):
        load_run(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(RunError, match="not a complete run"):
        load_run(tmp_path / "half")
    run = train_run(tiny_movielens(), SplitConfig(), CFG, tmp_path / "run")
    with pytest.raises(RunError, match="fingerprint"):
        run.check_dataset(tiny_movielens(seed=5))


def test_weights_load_without_pickle(tmp_path):
    train_run(tiny_movielens(), SplitConfig(), CFG, tmp_path / "run")
    with np.load(tmp_path / "run" / "weights.npz", allow_pickle=False) as arrays:
        assert all(arrays[k].dtype != object for k in arrays.files)


def test_pin_show_and_clear(tmp_path):
    train_run(tiny_movielens(), SplitConfig(), CFG, tmp_path / "run")
    assert pinned_run_name(tmp_path) is None
    assert pin_run(tmp_path, "run") == tmp_path / "run"
    pin = json.loads((tmp_path / "pinned.json").read_text())
    assert pin["run"] == "run" and pin["pinned_at"].endswith("+00:00")
    assert pinned_run_name(tmp_path) == "run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pinned.json", "run"]  # no temp file
    (tmp_path / ".jobs").mkdir()
    assert list_runs(tmp_path) == [tmp_path / "run"]  # neither pinned.json nor .jobs
    unpin_run(tmp_path)
    unpin_run(tmp_path)  # clearing twice is fine
    assert pinned_run_name(tmp_path) is None


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/tmp", "../run", ".jobs", "run/"])
def test_pin_refuses_names_outside_the_runs_folder(name, tmp_path):
    with pytest.raises(RunError, match="is not a run folder name"):
        pin_run(tmp_path, name)
    assert not (tmp_path / "pinned.json").exists()


def test_pin_refuses_a_missing_or_damaged_run_and_keeps_the_old_pin(tmp_path):
    train_run(tiny_movielens(), SplitConfig(), CFG, tmp_path / "run")
    pin_run(tmp_path, "run")
    with pytest.raises(RunError, match="no run directory"):
        pin_run(tmp_path, "nope")
    shutil.copytree(tmp_path / "run", tmp_path / "broken")
    (tmp_path / "broken" / "weights.npz").write_bytes(b"")
    with pytest.raises(RunError, match="run broken is damaged: weights.npz is empty"):
        pin_run(tmp_path, "broken")
    assert pinned_run_name(tmp_path) == "run"


@pytest.mark.parametrize("content", [
    "", "{", "null", "[]", '"run"', '{"run": 3}', '{"other": "run"}', '{"run": "../run"}',
    '{"run": "gone"}', b"\xff\xfe",
])
def test_pinned_name_is_none_for_a_bad_or_stale_pin(content, tmp_path):
    (tmp_path / "run").mkdir()
    pinned = tmp_path / "pinned.json"
    pinned.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert pinned_run_name(tmp_path) is None


def test_pinned_name_never_blocks_or_reads_without_limit(tmp_path):
    os.mkfifo(tmp_path / "pinned.json")
    assert pinned_run_name(tmp_path) is None  # a FIFO would block a plain open()
    (tmp_path / "pinned.json").unlink()
    (tmp_path / "pinned.json").symlink_to("/dev/zero")
    assert pinned_run_name(tmp_path) is None
    assert pinned_run_name(tmp_path / "no-such-folder") is None
