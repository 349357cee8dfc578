"""Background training jobs: a thread runs :func:`recsys.runs.train_run` and writes progress
into a :class:`TrainingJob` that a UI (or a test) polls.

Nothing here imports Streamlit. A job never touches UI state; the app reads
:meth:`TrainingJob.snapshot` on a timer. Jobs are kept per *owner* (one browser session), so
one visitor's training never replaces what another visitor sees.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from recsys.config import SplitConfig, TrainConfig
from recsys.data import MovieLens
from recsys.runs import Run, train_run

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)

TrainFn = Callable[..., Run]


def new_run_dir(root: str | Path, model: str) -> Path:
    """A fresh, sortable, collision-free run directory name under ``root``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{model}-{stamp}-{uuid.uuid4().hex[:4]}"


@dataclass(frozen=True)
class JobSnapshot:
    """A consistent copy of a job's state, safe to render while the thread keeps running."""

    id: str
    status: str
    model: str
    epoch: int
    epochs: int
    phase: str
    history: tuple[dict[str, Any], ...]
    error: str | None
    run_path: Path | None
    started: float
    finished: float | None

    @property
    def progress(self) -> float:
        """0..1; training epochs fill 90 %, the refit and test evaluation the rest."""
        if self.status == DONE:
            return 1.0
        return min(0.9 * self.epoch / max(self.epochs, 1), 0.9)

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


@dataclass(eq=False)
class TrainingJob:
    """One training run in a background thread; all fields are guarded by ``_lock``."""

    ml: MovieLens
    split_config: SplitConfig
    train_config: TrainConfig
    out_dir: Path
    train_fn: TrainFn = train_run
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    status: str = QUEUED
    epoch: int = 0
    phase: str = "waiting to start"
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    details: str | None = None
    run_path: Path | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> TrainingJob:
        self._thread = threading.Thread(target=self._run, name=f"train-{self.id}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Asks training to stop after the current epoch (the best epoch so far is kept)."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the thread; True when the job has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.snapshot().is_finished

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(
                id=self.id, status=self.status, model=self.train_config.model,
                epoch=self.epoch, epochs=self.train_config.epochs, phase=self.phase,
                history=tuple(dict(h) for h in self.history), error=self.error,
                run_path=self.run_path, started=self.started, finished=self.finished,
            )

    # ------------------------------------------------------------------ thread side
    def _on_epoch_end(self, epoch: int, stats: dict[str, Any]) -> bool:
        with self._lock:
            self.epoch = epoch
            self.history.append(dict(stats))
            self.phase = f"epoch {epoch} of at most {self.train_config.epochs}"
        return self._cancel.is_set()

    def _run(self) -> None:
        self._set(status=RUNNING, phase="preparing the split")
        try:
            run = self.train_fn(self.ml, self.split_config, self.train_config, self.out_dir,
                                callbacks=[self._on_epoch_end])
        except Exception as err:  # surfaced to the UI as the job's error, never swallowed
            self._set(status=FAILED, error=f"{type(err).__name__}: {err}",
                      details=traceback.format_exc(), phase="failed", finished=time.time())
            return
        status = CANCELLED if self._cancel.is_set() else DONE
        phase = "stopped early on request (saved)" if status == CANCELLED else "finished"
        self._set(status=status, run_path=run.path, phase=phase, finished=time.time(),
                  history=list(run.history) or self.history)

    def _set(self, **values: Any) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)


class JobManager:
    """Jobs per owner (a browser session id). Thread-safe; one shared instance per process."""

    def __init__(self, train_fn: TrainFn = train_run) -> None:
        self._train_fn = train_fn
        self._jobs: dict[str, list[TrainingJob]] = {}
        self._lock = threading.Lock()

    def submit(self, owner: str, ml: MovieLens, split_config: SplitConfig,
               train_config: TrainConfig, runs_dir: str | Path) -> TrainingJob:
        """Starts training in a background thread and returns the job at once."""
        job = TrainingJob(ml, split_config, train_config,
                          new_run_dir(runs_dir, train_config.model), self._train_fn)
        with self._lock:
            self._jobs.setdefault(owner, []).append(job)
        return job.start()

    def jobs(self, owner: str) -> list[TrainingJob]:
        """This owner's jobs, oldest first (other owners' jobs are never returned)."""
        with self._lock:
            return list(self._jobs.get(owner, ()))

    def latest(self, owner: str) -> TrainingJob | None:
        jobs = self.jobs(owner)
        return jobs[-1] if jobs else None

    def active(self, owner: str) -> TrainingJob | None:
        """The owner's unfinished job, if any (the UI allows one at a time per session)."""
        for job in reversed(self.jobs(owner)):
            if not job.snapshot().is_finished:
                return job
        return None
