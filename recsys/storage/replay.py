"""Training replay: the item (and user) vectors after every epoch of the saved model's fit,
kept compact in the run's ``replay.npz`` so the map can show the space forming.

The recorder keeps the trajectory of the model that is saved: the refit phase when there is
one, else the validated epochs (a later phase restarts the recording). Snapshots are float16:
every epoch up to :data:`DENSE_EPOCHS`, then every ``every``-th, the best validated one and
the last one, with ``every`` doubled whenever the snapshots would pass :data:`MAX_BYTES`.
Epoch 0 holds the vectors the phase started from.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys.errors import RunError
from recsys.models.base import Recommender

FILE = "replay.npz"
MAX_BYTES = 20 * 2**20  # per run: ~60 epochs of ML-100K's 1,682 movies and 943 users at d=64
DENSE_EPOCHS = 20  # every epoch up to this one is kept: the space forms early
EVERY = 5  # later epochs: every EVERY-th (doubled while over budget) and the last


class ReplayError(RunError):
    """A replay.npz that cannot be used (damaged, or of another model's shape)."""


@dataclass(frozen=True, eq=False)
class Replay:
    """Snapshots of one fit. ``items`` (t, n_items, d) float16 after each of ``epochs`` (t,)
    (0 = the starting vectors); ``users`` (t_u, n_users, d) float16 for ``user_epochs``
    (ALS has no user vectors before its first sweep); ``phase`` "fit" or "refit"."""

    epochs: np.ndarray
    items: np.ndarray
    user_epochs: np.ndarray
    users: np.ndarray
    phase: str
    best_epoch: int

    @property
    def nbytes(self) -> int:
        return int(self.items.nbytes + self.users.nbytes)


class ReplayRecorder:
    """An ``on_epoch_end`` callback that snapshots ``model``'s vectors after every epoch.

    Epoch 0 of each phase (a fit, then the refit) is the vectors that phase started from,
    which the model kept when its training started (:meth:`Recommender.starting_vectors`).
    Models without item vectors or epochs record nothing.
    """

    def __init__(self, model: Recommender, every: int = EVERY, dense: int = DENSE_EPOCHS,
                 max_bytes: int = MAX_BYTES) -> None:
        self.model, self.every, self.dense, self.max_bytes = model, every, dense, max_bytes
        self.active = model.iterative and model.item_vectors
        self.phase, self.best_epoch = "fit", 0
        self.snapshots: dict[int, tuple[np.ndarray | None, np.ndarray]] = {}

    def __call__(self, epoch: int, stats: dict[str, Any]) -> None:
        if not self.active:
            return
        if epoch == 1:  # a new phase started from fresh vectors: record only this one
            self.snapshots = {0: _starting_vectors(self.model)}
        self.phase = stats.get("phase", "fit")
        self.best_epoch = int(stats.get("best_epoch", epoch))
        users = self.model.user_factors()
        self.snapshots[epoch] = (None if users is None else users.astype(np.float16),
                                 self.model.item_factors().astype(np.float16))
        last = max(self.snapshots)
        for kept in [e for e in self.snapshots if e != last and not self._keeps(e)]:
            del self.snapshots[kept]
        while self._nbytes() > self.max_bytes and len(self.snapshots) > 2:
            if self.every < last:
                self.every *= 2
            elif self.dense > 0:
                self.dense //= 2
            else:  # only epoch 0, the best and the last are left: keep the two ends
                for dropped in [e for e in self.snapshots if e not in (0, last)]:
                    del self.snapshots[dropped]
                break
            for kept in [e for e in self.snapshots if e != last and not self._keeps(e)]:
                del self.snapshots[kept]

    def _keeps(self, epoch: int) -> bool:
        """Epoch 0, the dense start, every ``every``-th and the best so far (the epoch the
        trainer restores when a later one is worse on validation)."""
        return (epoch == 0 or epoch <= self.dense or epoch % self.every == 0
                or epoch == self.best_epoch)

    def _nbytes(self) -> int:
        return sum(i.nbytes + (0 if u is None else u.nbytes) for u, i in self.snapshots.values())

    def replay(self) -> Replay | None:
        """What was recorded (None when nothing was: a model fitted in one go)."""
        if not self.active:
            return None
        epochs = sorted(self.snapshots)
        if self.phase == "fit" and self.best_epoch in self.snapshots:
            # the trainer restored the best epoch: the saved model ends the replay
            epochs = [e for e in epochs if e <= self.best_epoch]
        if len(epochs) < 2:
            return None
        epochs = np.array(epochs, np.int64)
        with_users = [e for e in epochs if self.snapshots[e][0] is not None]
        d = self.snapshots[epochs[-1]][1].shape[1]
        users = (np.stack([self.snapshots[e][0] for e in with_users]) if with_users
                 else np.zeros((0, 0, d), np.float16))
        return Replay(epochs, np.stack([self.snapshots[e][1] for e in epochs]),
                      np.array(with_users, np.int64), users, self.phase, self.best_epoch)



def _starting_vectors(model: Recommender) -> tuple[np.ndarray | None, np.ndarray]:
    """The vectors an epoch 1 starts from (:meth:`Recommender.starting_vectors`), float16."""
    users, items = model.starting_vectors()
    return (None if users is None else users.astype(np.float16), items.astype(np.float16))


# ---------------------------------------------------------------------------- the file
def save_replay(replay: Replay, folder: str | Path) -> Path | None:
    """Adds ``replay`` to a saved run's ``folder`` as ``replay.npz`` atomically; None if the
    folder refuses (a read-only or full disk: the run itself stays saved and usable)."""
    try:
        return write_replay(replay, folder)
    except OSError:
        return None


def write_replay(replay: Replay, folder: str | Path) -> Path:
    """Writes ``replay`` as ``folder/replay.npz`` through a temporary file; an OSError (a
    full disk) leaves no half file behind."""
    path = Path(folder) / FILE
    tmp = path.with_name(f".replay.tmp-{os.getpid()}-{time.time_ns()}.npz")
    try:
        np.savez(tmp, epochs=replay.epochs, items=replay.items, user_epochs=replay.user_epochs,
                 users=replay.users, phase=np.array(replay.phase),
                 best_epoch=np.array(replay.best_epoch, np.int64))
        os.replace(tmp, path)
        return path
    finally:  # also when the worker is cancelled mid-write: no half file stays behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def load_replay(folder: str | Path, n_items: int, dim: int) -> Replay | None:
    """The replay of the run in ``folder`` (whose model has ``n_items`` item vectors of
    ``dim``), None when the run has none, :class:`ReplayError` when it is damaged."""
    path = Path(folder) / FILE
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ReplayError(f"{FILE} cannot be read ({err.strerror})") from err
    if not stat.S_ISREG(info.st_mode):
        raise ReplayError(f"{FILE} is not a regular file")
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, AttributeError) as err:
        raise ReplayError(f"{FILE} is damaged ({type(err).__name__})") from err
    return _checked(arrays, n_items, dim)


def _checked(arrays: dict[str, np.ndarray], n_items: int, dim: int) -> Replay:
    missing = {"epochs", "items", "user_epochs", "users", "phase", "best_epoch"} - set(arrays)
    if missing:
        raise ReplayError(f"{FILE} lacks {', '.join(sorted(missing))}")
    epochs, items, users = arrays["epochs"], arrays["items"], arrays["users"]
    user_epochs = arrays["user_epochs"]
    problems = [
        (epochs.ndim != 1 or epochs.dtype.kind != "i" or len(epochs) < 2
         or (np.diff(epochs) <= 0).any() or epochs[0] < 0, "epochs must rise from 0"),
        (items.dtype != np.float16 or items.shape != (len(epochs), n_items, dim),
         f"items should be float16 of shape ({len(epochs)}, {n_items}, {dim})"),
        (user_epochs.ndim != 1 or not np.isin(user_epochs, epochs).all()
         or users.dtype != np.float16 or users.ndim != 3 or len(users) != len(user_epochs),
         "users do not fit the epochs"),
        (arrays["phase"].shape != () or str(arrays["phase"]) not in ("fit", "refit")
         or arrays["best_epoch"].shape != (), "phase or best_epoch is malformed"),
        (not np.isfinite(items).all(), "items hold NaN/inf"),
    ]
    for failed, problem in problems:
        if failed:
            raise ReplayError(f"{FILE} is damaged: {problem}")
    return Replay(epochs.astype(np.int64), items, user_epochs.astype(np.int64), users,
                  str(arrays["phase"]), int(arrays["best_epoch"]))


# ---------------------------------------------------------------------------- one frame
def replay_coordinates(replay: Replay, final: np.ndarray, pca_mean: np.ndarray,
                       pca_components: np.ndarray) -> np.ndarray:
    """(t, n_items, 2) map positions of every snapshot in one fixed frame.

    The frame is the saved model's PCA map (``pca_mean`` (d,), ``pca_components`` (2, d), as
    :func:`recsys.lessons.projection.project` fits them on ``final``, the saved item vectors
    (n, d)).
    Each snapshot is first rotated onto ``final`` by orthogonal Procrustes, which removes only
    the rotation a dot-product score cannot see, then placed with the same linear map. Points
    therefore move only as the vectors really change, and the last frame is the Embedding
    map's PCA.
    """
    from threadpoolctl import threadpool_limits

    final = np.asarray(final, np.float64)
    out = np.empty((len(replay.epochs), final.shape[0], 2))
    components = np.asarray(pca_components, np.float64)
    # One BLAS thread: on the shared 2-core machine the threads of 21 tiny (d x d) SVDs spun
    # against each other: 1.5-6 s for the ML-100K replay (21 snapshots) at load 9, 0.06-0.13 s
    # with one thread.
    with threadpool_limits(1, user_api="blas"):
        for t, snapshot in enumerate(replay.items):
            vectors = snapshot.astype(np.float64)
            aligned = vectors @ procrustes_rotation(vectors, final)
            out[t] = (aligned - pca_mean) @ components.T
    return out


def procrustes_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The orthogonal (d, d) matrix R minimising ||source @ R - target|| (Frobenius).

    A dot-product score u . v is unchanged when every user and item vector is rotated by the
    same R, so training may end anywhere in that family of rotations; aligning by R removes
    only that arbitrary part of two snapshots' difference (no shift, no scaling).
    """
    u, _, vt = np.linalg.svd(np.asarray(source, np.float64).T @ np.asarray(target, np.float64))
    return u @ vt
