"""The training replay: what the recorder keeps, the replay.npz round trip, damaged files, and
the one fixed frame its snapshots are drawn in."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data.protocol import SplitConfig
from recsys.lessons.projection import project
from recsys.models.config import TrainConfig
from recsys.storage import replay
from recsys.storage.replay import ReplayError, ReplayRecorder, load_replay, procrustes_rotation
from recsys.storage.runs import load_run, train_run
from tests.synthetic import make_world

WORLD = make_world()


def config(model: str, **extra) -> TrainConfig:
    settings = dict(model=model, dim=4, epochs=30, refit=False, threads=1, patience=0,
                    batch_size=64, lr=0.05)
    return TrainConfig(**{**settings, **extra})


@pytest.fixture(scope="module")
def bpr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bpr"
    train_run(WORLD, SplitConfig(), config("mf-bpr"), out)
    return out


def test_run_keeps_float16_snapshots_from_the_start_thinned_past_epoch_20(bpr_run):
    run = load_run(bpr_run)
    recorded = load_replay(bpr_run, run.model.n_items, 4)
    best_epoch = run.history[-1]["best_epoch"]
    # every epoch to 20, then every 5th and the last, up to the best epoch: the trainer
    # restored it, so the saved model (the map's frame) ends the replay
    expected = [e for e in [*range(21), 25, 30] if e <= best_epoch]
    assert recorded.epochs.tolist() == expected
    assert recorded.items.dtype == recorded.users.dtype == np.float16
    assert recorded.items.shape == (len(expected), run.model.n_items, 4)
    assert recorded.user_epochs.tolist() == expected
    assert recorded.phase == "fit"
    # the saved model is the best validated epoch, which the trainer restored
    assert recorded.best_epoch == run.history[-1]["best_epoch"]
    best = recorded.epochs.tolist().index(recorded.best_epoch)
    np.testing.assert_allclose(recorded.items[best], run.model.item_factors(), atol=2e-3)
    # epoch 0 is the initialisation (std 0.1), far from the trained vectors
    assert np.abs(recorded.items[0]).mean() < np.abs(recorded.items[-1]).mean() / 2


def test_refit_phase_is_what_is_recorded(tmp_path):
    run = train_run(WORLD, SplitConfig(), config("mf-bpr", epochs=6, refit=True), tmp_path / "r")
    recorded = load_replay(tmp_path / "r", run.model.n_items, 4)
    assert recorded.phase == "refit"
    assert recorded.epochs.tolist() == list(range(run.model.refit_epochs + 1))
    np.testing.assert_allclose(recorded.items[-1], run.model.item_factors(), atol=2e-3)


def test_als_starts_from_random_items_and_has_no_users_before_its_first_sweep(tmp_path):
    run = train_run(WORLD, SplitConfig(), config("mf-als", epochs=3, weight_decay=1.0),
                    tmp_path / "als")
    recorded = load_replay(tmp_path / "als", run.model.n_items, 4)
    best = run.history[-1]["best_epoch"]
    assert recorded.epochs.tolist() == list(range(best + 1))
    assert recorded.user_epochs.tolist() == list(range(1, best + 1))
    assert np.abs(recorded.items[0]).max() < 0.1  # randn * 0.01


def test_models_fitted_in_one_go_write_no_replay_and_load_without_one(tmp_path):
    run = train_run(WORLD, SplitConfig(), TrainConfig(model="svd", dim=4), tmp_path / "svd")
    assert not (tmp_path / "svd" / replay.FILE).exists()
    assert load_replay(tmp_path / "svd", run.model.n_items, 4) is None
    assert load_run(tmp_path / "svd").model.n_items == run.model.n_items


class FakeModel:
    """A model whose item vectors after epoch e are all e (one float16 snapshot: 1,600 B)."""

    iterative = item_vectors = True
    items = start = np.zeros((100, 8), np.float32)

    def train_epoch(self, epoch):
        self.items = np.full((100, 8), epoch, np.float32)
        return 0.0

    def user_factors(self):
        return None

    def item_factors(self):
        return self.items

    def starting_vectors(self):
        return None, self.start


def record(recorder, model, epochs, best, phase):
    for epoch in range(1, epochs + 1):
        model.train_epoch(epoch)
        recorder(epoch, {"epoch": epoch, "best_epoch": min(epoch, best), "phase": phase})
    return recorder.replay()


def test_budget_doubles_the_stride_and_keeps_first_and_last():
    model = FakeModel()
    one = 100 * 8 * 2  # bytes of one float16 snapshot
    recorder = ReplayRecorder(model, every=5, dense=20, max_bytes=30 * one)
    recorded = record(recorder, model, 100, best=37, phase="refit")
    assert recorded.nbytes <= 30 * one
    epochs = recorded.epochs.tolist()
    assert epochs[0] == 0 and epochs[-1] == 100 and epochs[:21] == list(range(21))
    assert 37 in epochs  # the best epoch, which the trainer restores, is kept
    strided = [e for e in epochs[21:] if e not in (37, 100)]
    assert len(set(np.diff(strided))) == 1 and strided[0] % recorder.every == 0
    assert (recorded.items[:, 0, 0] == recorded.epochs).all()  # each snapshot is its epoch


def test_a_validated_fit_ends_on_the_best_epoch_the_trainer_restored():
    model = FakeModel()
    recorded = record(ReplayRecorder(model), model, 12, best=7, phase="fit")
    assert recorded.epochs.tolist() == list(range(8))  # 8-12 were worse and not saved


def test_a_budget_smaller_than_three_snapshots_keeps_the_ends_instead_of_hanging():
    model = FakeModel()
    one = 100 * 8 * 2
    recorded = record(ReplayRecorder(model, max_bytes=2 * one + 1), model, 30, best=10,
                      phase="refit")
    assert recorded.epochs.tolist() == [0, 30]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape", "pickled",
                                    "NaN", "folder"])
def test_damaged_replay_is_one_error_and_the_run_still_loads(bpr_run, tmp_path, damage):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(bpr_run, copy)
    path = copy / replay.FILE
    arrays = dict(np.load(path))
    if damage == "garbage":
        path.write_bytes(b"not a zip")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "wrong shape":
        np.savez(path, **{**arrays, "items": arrays["items"][:, :5]})
    elif damage == "pickled":
        np.savez(path, **{**arrays, "phase": np.array([{"x": 1}], dtype=object)})
    elif damage == "NaN":
        arrays["items"][3, 0, 0] = np.nan
        np.savez(path, **arrays)
    else:
        path.unlink()
        path.mkdir()
    run = load_run(copy)
    with pytest.raises(ReplayError):
        load_replay(copy, run.model.n_items, 4)


# ---------------------------------------------------------------------------- one frame
def test_procrustes_turns_a_rotated_copy_back():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 6))
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    found = procrustes_rotation(vectors @ rotation, vectors)
    np.testing.assert_allclose(vectors @ rotation @ found, vectors, atol=1e-10)
    np.testing.assert_allclose(found @ found.T, np.eye(6), atol=1e-10)


def test_replay_frames_ignore_rotation_and_end_on_the_pca_map():
    rng = np.random.default_rng(1)
    final = rng.normal(size=(40, 5)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    shrunk = 0.5 * final @ rotation  # an earlier epoch: shorter and arbitrarily rotated
    items = np.stack([shrunk, final]).astype(np.float16)
    recorded = replay.Replay(np.array([0, 1]), items, np.array([], np.int64),
                             np.zeros((0, 0, 5), np.float16), "fit", 1)
    pca = project(final, "pca")
    coords = replay.replay_coordinates(recorded, final, pca.pca_mean, pca.pca_components)
    np.testing.assert_allclose(coords[1], pca.coords, atol=0.02)  # float16 rounding
    # the rotated, shrunk epoch lands where the final vectors at half length would
    expected = (0.5 * final - pca.pca_mean) @ pca.pca_components.T
    np.testing.assert_allclose(coords[0], expected, atol=0.02)


def test_a_folder_that_refuses_the_replay_gives_none_and_no_stray_file(bpr_run, tmp_path):
    run = load_run(bpr_run)
    recorded = load_replay(bpr_run, run.model.n_items, 4)
    assert replay.save_replay(recorded, tmp_path / "gone") is None
    assert replay.save_replay(recorded, tmp_path) == tmp_path / replay.FILE
    assert [p.name for p in tmp_path.iterdir()] == [replay.FILE]
    np.testing.assert_array_equal(load_replay(tmp_path, run.model.n_items, 4).items,
                                  recorded.items)


def test_a_full_disk_saves_no_half_run(tmp_path, monkeypatch):
    """The replay is written inside the run's temporary folder: when the disk fills up there,
    the save fails with the OSError and leaves neither a run without its replay (which the
    map would call "trained before replays were recorded") nor a temporary folder."""
    import errno

    from recsys.storage import runs

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs, "write_replay", full)
    with pytest.raises(OSError, match="No space left"):
        train_run(WORLD, SplitConfig(), config("mf-bpr", epochs=2), tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_the_worker_says_the_disk_is_full_and_only_divergence_gets_the_lr_hint(tmp_path):
    import errno

    from recsys.jobs.manager import summarise
    from recsys.jobs.worker import _one_line

    full = _one_line(OSError(errno.ENOSPC, "No space left on device", "/runs/x/weights.npz"))
    assert full.startswith("the disk is full: nothing of the run was saved")
    job = {"id": "0123456789ab", "train": {"epochs": 3, "refit": False}, "maps": []}
    for kind, diverged in (("OSError", False), ("TrainingDivergedError", True)):
        events = [{"t": 1.0, "event": "failed", "error": "x", "kind": kind}]
        assert summarise(tmp_path, job, events, alive=False).diverged == diverged
