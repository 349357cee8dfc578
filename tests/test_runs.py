import json

import numpy as np
import pytest

from recsys.config import SplitConfig, TrainConfig
from recsys.runs import RunError, list_runs, load_run, save_run, train_run
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
