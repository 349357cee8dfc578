"""Background training jobs on a tiny synthetic dataset (no Streamlit, no MovieLens)."""

from __future__ import annotations

import threading

import pytest

from recsys.config import SplitConfig, TrainConfig
from recsys.jobs import CANCELLED, DONE, FAILED, JobManager
from recsys.runs import list_runs, load_run, train_run
from tests.synthetic import tiny_movielens

SPLIT = SplitConfig(test_fraction=0.25, valid_fraction=0.2)


def tiny_config(**overrides) -> TrainConfig:
    values = {"model": "mf-bpr", "dim": 8, "epochs": 3, "batch_size": 64, "patience": 0,
              "refit": False, "threads": 1, **overrides}
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def ml():
    return tiny_movielens()


def test_job_records_progress_and_saves_run(ml, tmp_path):
    manager = JobManager()
    job = manager.submit("session-a", ml, SPLIT, tiny_config(), tmp_path)
    assert job.join(timeout=60)
    snap = job.snapshot()
    assert snap.status == DONE, snap.error
    assert snap.epoch == 3 and snap.progress == 1.0
    assert [h["epoch"] for h in snap.history] == [1, 2, 3]
    assert all("loss" in h and "valid_recall@10" in h for h in snap.history)
    assert list_runs(tmp_path) == [snap.run_path]
    run = load_run(snap.run_path)
    assert run.train_config == tiny_config()
    assert "recall@10" in run.metrics


def test_jobs_of_two_owners_are_independent(ml, tmp_path):
    manager = JobManager()
    a = manager.submit("a", ml, SPLIT, tiny_config(epochs=2), tmp_path)
    b = manager.submit("b", ml, SPLIT, tiny_config(model="popularity"), tmp_path)
    assert a.join(60) and b.join(60)
    assert manager.jobs("a") == [a] and manager.jobs("b") == [b]
    assert manager.latest("nobody") is None
    assert a.snapshot().run_path != b.snapshot().run_path
    assert load_run(a.snapshot().run_path).train_config.model == "mf-bpr"
    assert load_run(b.snapshot().run_path).train_config.model == "popularity"
    assert len(list_runs(tmp_path)) == 2


def test_training_error_surfaces_as_job_error(ml, tmp_path):
    def broken(*args, **kwargs):
        raise ValueError("learning rate too spicy")

    job = JobManager(train_fn=broken).submit("a", ml, SPLIT, tiny_config(), tmp_path)
    assert job.join(30)
    snap = job.snapshot()
    assert snap.status == FAILED
    assert snap.error == "ValueError: learning rate too spicy"
    assert snap.run_path is None and list_runs(tmp_path) == []


def test_cancel_stops_after_current_epoch(ml, tmp_path):
    gate = threading.Event()

    def slow_train(*args, callbacks=(), **kwargs):
        def wait_then_report(epoch, stats):
            gate.wait(10)
            return any([cb(epoch, stats) for cb in callbacks])
        return train_run(*args, callbacks=[wait_then_report], **kwargs)

    manager = JobManager(train_fn=slow_train)
    job = manager.submit("a", ml, SPLIT, tiny_config(epochs=50), tmp_path)
    assert manager.active("a") is job
    job.cancel()
    gate.set()
    assert job.join(60)
    snap = job.snapshot()
    assert snap.status == CANCELLED and snap.epoch == 1
    assert snap.run_path is not None and manager.active("a") is None
