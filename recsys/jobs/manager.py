"""Training jobs in their own process: :class:`JobManager` starts one
``python -m recsys.jobs.worker JOB_DIR`` per job and reads back what the worker writes; a
job the manager's warm standby worker fits (:mod:`recsys.jobs.standby`) is handed to that
already-started process instead, so its first epoch follows the click at once.

Everything about a job lives in ``jobs_dir/<id>/``: ``job.json`` (what to train and for whom),
``progress.jsonl`` (one event per line, appended by the worker), ``worker.log`` (the worker's
output, tracebacks included) and ``stop`` (a request to finish early). A job's state is derived
from these files and from whether its worker is alive, never held only in memory, so a
reloaded page, a second manager or a restarted server finds every job again. Training never
shares an interpreter with the app, and nothing here imports Streamlit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from recsys.data.protocol import SplitConfig
from recsys.errors import BadInputError
from recsys.jobs.standby import STANDBY_LOG, STANDBY_THREADS, Standby, warm_by_default
from recsys.models.config import TrainConfig
from recsys.settings import to_dict

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
KEEP_FINISHED_SECONDS = 7 * 24 * 3600  # a finished job's folder is kept a week (its run: always)

JOB_FILE, PROGRESS_FILE, LOG_FILE, STOP_FILE = "job.json", "progress.jsonl", "worker.log", "stop"
WORKER_LOCK = "worker.lock"  # held by the job's worker while it lives (a standby's proof)
MAP_METHODS = ("pca", "tsne", "umap")  # recsys.lessons.projection.METHODS, without importing torch
MAP_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
# Shares of the progress bar, in the order a job goes through them. A job without a refit
# gives its share to the validated fit, a job without maps drops theirs.
SHARES = {"load": 0.05, "fit": 0.55, "refit": 0.25, "test": 0.05, "save": 0.02, "maps": 0.08}
PHASE_STAGE = {"waiting": ("load", 0.0), "load": ("load", 0.0), "split": ("load", 0.6),
               "fit": ("fit", 0.0), "test": ("test", 0.0), "save": ("save", 0.0)}
PHASE_TEXT = {"load": "loading MovieLens", "split": "preparing the split", "fit": "training",
              "test": "evaluating on test", "save": "saving the run"}
CANCEL_GRACE = 10.0  # seconds a worker gets to clean up after SIGTERM before SIGKILL
MAX_WAITING = 8  # training jobs running or queued at once on one server, all visitors together
START_GRACE = 30.0  # a job without a recorded pid counts as starting for this long
SUBMIT_LOCK = "submit.lock"  # held while a job is admitted: the caps hold across processes
# After a job saves its run, the next standby waits this long before warming up (2-3 s of a
# core: importing torch, reading the data): the page that shows the result redraws first.
# Measured (Dec 2026, 2 cores): warming at once stretched the Train page's redraw after the
# save from ~0.4 s to ~1.4 s, so "Done" showed ~1 s later.
STANDBY_GRACE = 3.0
FIRST_EPOCH_WAIT = 1.0  # at most this long, a warm job's submit waits for its first epoch
FINISH_WAIT = 0.3  # at most this long, a look at a job in its last steps waits for its end
MAPS_LOCK = "maps.lock"  # held by the one worker computing maps (jobs/worker.py)
_JOB_ID = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class VisitorLimits:
    """What one visitor of a shared server may ask of it, so that nobody holds the machine for
    a whole lesson (the lecturer, and the server's own jobs, pass none)."""

    jobs: int = 1  # of their own jobs running or waiting at once
    # dimension x epochs of an iterative model: 64 x 200 = 12,800 (the default models use
    # 960-1,280; a 1,024-dimensional mf-als for 1,000 sweeps, 1,024,000, held a 2-core server
    # for 40 minutes)
    work: int = 12_800

    def check(self, train_config: TrainConfig, iterative: bool) -> None:
        """BadInputError, saying what fits, when ``train_config`` asks for more work."""
        work = train_config.dim * train_config.epochs
        if iterative and work > self.work:
            raise BadInputError(
                f"dimension x epochs is {train_config.dim:,} x {train_config.epochs:,} = "
                f"{work:,}, above this server's limit of {self.work:,} per visitor (e.g. "
                f"dimension 128 for {self.work // 128} epochs): lower one, or ask the lecturer")


def new_run_dir(root: str | Path, model: str) -> Path:
    """A fresh, sortable, collision-free run directory name under ``root``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{model}-{stamp}-{uuid.uuid4().hex[:4]}"


@dataclass(frozen=True)
class JobSnapshot:
    """A job's state as derived from its files at one moment; safe to render and keep."""

    id: str
    owner: str
    status: str
    model: str
    phase: str  # plain words: "epoch 3 of at most 20", "computing maps: UMAP", "finished"
    progress: float  # 0..1 over every phase (load, epochs, refit, test, save, maps); monotone
    history: tuple[dict[str, Any], ...]  # stats of each validated epoch, as callbacks got them
    refit: tuple[dict[str, Any], ...]  # stats of each refit epoch
    error: str | None  # one line a user can act on; the traceback stays in worker.log
    run_path: Path | None  # set once the run is saved (DONE from then on, maps or not)
    maps_done: tuple[str, ...]  # projection methods cached in the run so far
    maps_pending: tuple[str, ...]  # still to compute (the worker keeps going after DONE)
    queue_position: int | None  # place in the waiting line while QUEUED (1 = next)
    started: float  # unix time training began (the submit time while still queued)
    finished: float | None  # when the run was saved, or the job failed or was cancelled
    worker_alive: bool = False  # whether the worker process was running at the snapshot
    stop_requested: bool = False  # stop() was asked: the current epoch is the last
    diverged: bool = False  # it failed because training diverged (NaN/inf): lower the lr
    pid: int | None = None
    # The settings as submitted: {"split": SplitConfig fields, "train": TrainConfig fields}.
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.finished or time.time()) - self.started

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class _Record:
    """What is on disk about one job, plus whether its worker is alive."""

    id: str
    dir: Path
    job: dict[str, Any]
    events: list[dict[str, Any]]
    alive: bool

    @property
    def order(self) -> tuple[float, int, str]:
        return (float(self.job.get("submitted", 0.0)), int(self.job.get("seq", 0)), self.id)


class JobManager:
    """Starts, lists, stops and cancels training jobs kept under ``jobs_dir``.

    At most ``max_running`` workers train at once (each holds a lock on
    ``jobs_dir/slot-<i>.lock``, released by the OS when it dies); the others wait in line.
    Any number of managers, in any process, may look at the same ``jobs_dir``.

    ``warm`` keeps one standby worker ready (None: unless ``RECSYS_WARM_WORKER=0``), loaded
    with ``warm_data_dir`` (None: the default MovieLens). A manager with a standby must be
    closed (:meth:`close`, or ``with JobManager(…) as manager``); the standby also ends by
    itself when this process dies.
    """

    def __init__(self, jobs_dir: str | Path, max_running: int = 1,
                 python: str = sys.executable, warm: bool | None = None,
                 warm_data_dir: str | Path | None = None) -> None:
        if max_running < 1:
            raise BadInputError(f"max_running must be at least 1, got {max_running}")
        self.jobs_dir = Path(jobs_dir).expanduser().resolve()
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.max_running = max_running
        self.python = python
        self._workers: dict[str, subprocess.Popen] = {}  # children we started, to reap them
        self._recent: set[str] = set()  # jobs we started that may still hold the standby back
        # A finished job whose worker has exited never changes again: keep it, unread.
        self._final: dict[str, tuple[_Record, JobSnapshot]] = {}
        self._lock = threading.Lock()
        self._admitting = threading.Lock()  # this process's side of SUBMIT_LOCK
        self.prune()
        self.standby: Standby | None = None
        if warm_by_default() if warm is None else warm:
            data = str(Path(warm_data_dir).expanduser().resolve()) if warm_data_dir else None
            self.standby = Standby(self._launch_worker, self._standby_must_wait, data)

    def close(self) -> None:
        """Ends the waiting standby worker, if any (running jobs go on)."""
        if self.standby is not None:
            self.standby.close()

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prune(self, older_than: float = KEEP_FINISHED_SECONDS) -> list[str]:
        """Removes the folders of jobs that finished more than ``older_than`` seconds ago and
        whose worker is gone (their runs stay in the runs folder): every page that lists jobs
        reads each folder, so a server's old jobs would slow it down for good. Returns the
        removed ids."""
        now, removed = time.time(), []
        for record in self._records():
            if record.alive or _status(record) not in FINISHED:
                continue
            last = max([float(e.get("t", 0.0)) for e in record.events]
                       + [float(record.job.get("submitted", 0.0))])  # its last sign of life
            if now - last < older_than:
                continue
            shutil.rmtree(record.dir, ignore_errors=True)
            removed.append(record.id)
        return removed

    # ------------------------------------------------------------------ starting
    def submit(self, owner: str, split_config: SplitConfig, train_config: TrainConfig,
               runs_dir: str | Path, out_dir: Path | None = None, data_dir: str | None = None,
               fingerprint: str | None = None,
               maps: Sequence[str] = ("pca", "tsne", "umap"),
               limits: VisitorLimits | None = None) -> JobSnapshot:
        """Starts a worker process for this job and returns its first snapshot at once.

        ``fingerprint`` (of the data the caller shows) makes the worker refuse other data;
        ``maps`` are computed and cached in the run after it is saved;
        ``limits`` are the visitor's (None: the lecturer's or the server's own job).

        Refuses (BadInputError) more CPU threads than the machine has cores, a job over the
        visitor's ``limits``, and any job once :data:`MAX_WAITING` wait or train. Admission
        holds a lock on ``jobs_dir/submit.lock``: the caps hold for simultaneous presses in
        any number of server processes, and jobs queue in the order they were admitted."""
        cores = os.cpu_count() or 1
        if train_config.threads > cores:
            raise BadInputError(f"threads is {train_config.threads}, but this server has "
                                f"{cores} CPU cores: use at most {cores}")
        if limits is not None:
            from recsys.models import MODELS

            limits.check(train_config, MODELS[train_config.model].iterative)
        unknown = [m for m in maps if m not in MAP_METHODS]
        if unknown:
            raise BadInputError(f"unknown map method {unknown[0]!r}: choose from "
                             f"{', '.join(MAP_METHODS)}")
        out = Path(out_dir or new_run_dir(runs_dir, train_config.model)).expanduser().resolve()
        if out.exists():
            raise BadInputError(f"{out} already exists: choose another run directory")
        with self._admission():
            records = self._records()
            waiting = [r for r in records if _status(r) not in FINISHED]
            if len(waiting) >= MAX_WAITING:
                raise BadInputError(f"{MAX_WAITING} training jobs are already running or "
                                    "waiting on this server: try again when one has finished")
            own = sum(r.job.get("owner") == owner for r in waiting)
            if limits is not None and own >= limits.jobs:
                raise BadInputError("you already have a training job running or waiting: "
                                    "stop or cancel it first (one at a time per visitor)")
            job_id = uuid.uuid4().hex[:12]
            job_dir = self.jobs_dir / job_id
            job_dir.mkdir()
            job = {
                "id": job_id, "owner": owner, "split": to_dict(split_config),
                "train": to_dict(train_config), "out_dir": str(out),
                "data_dir": str(Path(data_dir).expanduser().resolve()) if data_dir else None,
                "fingerprint": fingerprint, "maps": list(maps),
                "max_running": self.max_running, "submitted": time.time(), "pid": None,
                # admission order: ties of the clock never give two jobs the same place
                "seq": 1 + max((int(r.job.get("seq", 0)) for r in records), default=0),
            }
            _write_json(job_dir / JOB_FILE, job)
            with self._lock:
                worker = self.standby and self.standby.take(job_dir, job["data_dir"],
                                                            train_config.threads)
                self._workers[job_id] = worker or self._launch(job_dir, train_config.threads)
                self._recent.add(job_id)
                _write_json(job_dir / JOB_FILE, {**job, "pid": self._workers[job_id].pid,
                                                 "warm": worker is not None})
        return self.snapshot(job_id)

    @contextlib.contextmanager
    def _admission(self) -> Iterator[None]:
        """One admission at a time: threads of this process, and other server processes
        sharing ``jobs_dir`` (an exclusive lock the OS drops if the holder dies)."""
        with self._admitting, open(self.jobs_dir / SUBMIT_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _launch(self, job_dir: Path, threads: int) -> subprocess.Popen:
        """A cold worker for the job: a fresh interpreter that imports torch after the click."""
        with open(job_dir / LOG_FILE, "ab") as log:
            return self._launch_worker([str(job_dir)], threads, stdin=subprocess.DEVNULL,
                                       stdout=log, module="recsys.jobs.worker")

    def _launch_worker(self, args: list[str], threads: int = STANDBY_THREADS,
                       stdin: Any = subprocess.DEVNULL, stdout: Any = None,
                       module: str = "recsys.jobs.standby_process"
                       ) -> subprocess.Popen:
        """``python -m MODULE ARGS``: a cold worker, or (the default) a standby, whose output
        goes to ``jobs_dir/standby.log`` until it takes a job."""
        package_root = str(Path(__file__).resolve().parents[1])  # the worker runs this recsys
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads),
               "MKL_NUM_THREADS": str(threads)}
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(self.jobs_dir / STANDBY_LOG, "ab"))
            return subprocess.Popen(
                [self.python, "-m", module, *args], stdin=stdin,
                stdout=log if stdout is None else stdout,
                stderr=subprocess.STDOUT if stdout is not subprocess.PIPE else log,
                cwd=os.getcwd(), env=env, text=stdout is subprocess.PIPE,
                start_new_session=True,  # its own process group: cancel ends it and its children
            )

    def _standby_must_wait(self) -> bool:
        """Whether a job this manager started is still training, or saved its run less than
        :data:`STANDBY_GRACE` seconds ago (its worker may have exited since): a standby
        warming up then would slow that training down, or the page about to show its
        result. Jobs past both are forgotten here."""
        with self._lock:
            alive = {job_id for job_id, worker in self._workers.items() if worker.poll() is None}
            recent = list(self._recent)
        now, wait = time.time(), False
        for job_id in recent:
            events = read_events(self.jobs_dir / job_id)
            saved = max((float(e.get("t", 0.0)) for e in events if e["event"] == "saved"),
                        default=None)
            if job_id in alive and not _has(events, "saved", "failed", "cancelled"):
                wait = True  # training
            elif saved is not None and now - saved < STANDBY_GRACE:
                wait = True  # its result is being drawn
            else:
                with self._lock:
                    self._recent.discard(job_id)
        return wait

    def first_epoch(self, job_id: str, timeout: float = FIRST_EPOCH_WAIT
                    ) -> JobSnapshot | None:
        """The job's snapshot, once its worker has something to show: the first epoch, or
        the end. Waits (polling its files) only for a job a warm standby took while no other
        job was running or queued, whose first epoch follows the submit by ~0.1-0.3 s, and at
        most ``timeout`` seconds; any other job's snapshot comes back at once. The Train
        page's click uses it so that the panel it draws opens with the live curves, instead
        of a "starting" note that the next redraw (after the whole page) replaces."""
        record = self._record(job_id)
        if record is None or not record.job.get("warm"):
            return self.snapshot(job_id)
        if any(snap.id != job_id for snap in self.unfinished()):
            return self.snapshot(job_id)
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot(job_id)
            if (snap is None or snap.is_finished or snap.history or snap.refit
                    or time.monotonic() >= deadline):
                return snap
            time.sleep(0.03)

    def finishing(self, job_id: str, timeout: float = FINISH_WAIT) -> JobSnapshot | None:
        """The job's snapshot; for a job in its last steps (the refit's last epoch, the test
        evaluation, the save: 0.1-0.2 s on ML-100K) the snapshot once it has ended, waiting
        at most ``timeout`` seconds. The Train page's panel redraws every 0.5 s: a redraw
        that lands in those steps would show "evaluating on test" and leave "Done" to the
        next one, up to half a second later. Any other job's snapshot comes back at once."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot(job_id)
            if snap is None or snap.is_finished or time.monotonic() >= deadline:
                return snap
            record = self._record(job_id)
            if record is None or not _in_last_steps(record.events):
                return snap
            time.sleep(0.03)

    # ------------------------------------------------------------------ reading
    def snapshot(self, job_id: str) -> JobSnapshot | None:
        """The job's state now; None for an unknown or malformed id (ids come from URLs)."""
        record = self._record(job_id)
        if record is None:
            return None
        return self._snapshot(record, self._records() if _status(record) == QUEUED else [])

    def jobs(self, owner: str) -> list[JobSnapshot]:
        """This owner's jobs, oldest first (other owners' jobs are never returned)."""
        records = self._records()
        return [self._snapshot(r, records) for r in records if r.job.get("owner") == owner]

    def unfinished(self) -> list[JobSnapshot]:
        """Every owner's queued or running jobs, oldest first (to say how busy the server is)."""
        records = self._records()
        return [self._snapshot(r, records) for r in records if _status(r) not in FINISHED]

    # ------------------------------------------------------------------ stopping
    def stop(self, job_id: str) -> None:
        """Graceful: training ends after the current epoch, keeping the best epoch so far,
        then refits, evaluates and saves as usual. A job still waiting is cancelled."""
        snap = self.snapshot(job_id)
        if snap is None or snap.is_finished:
            return
        if snap.status == QUEUED:
            self.cancel(job_id)
        else:
            (self.jobs_dir / job_id / STOP_FILE).touch()

    def cancel(self, job_id: str) -> None:
        """Ends the worker now. Nothing of the run is left behind unless it was already saved
        (then only the maps still being computed are given up)."""
        record = self._record(job_id)
        if record is None or not record.alive:
            return
        pid = _pid(record.job, record.events)
        _signal_group(pid, signal.SIGTERM)  # the worker cleans up and writes "cancelled"
        if not self._wait_for_exit(record, CANCEL_GRACE):
            _signal_group(pid, signal.SIGKILL)
            self._wait_for_exit(record, CANCEL_GRACE)
        record = self._record(job_id)
        if record is not None and not _has(record.events, "cancelled", "failed", "exit"):
            remove_partial_run(record.job["out_dir"], pid, record.events)  # killed mid-save?
            append_event(record.dir, "cancelled")

    def _wait_for_exit(self, record: _Record, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive(record.id, record.job, record.events):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # ------------------------------------------------------------------ derivation
    def _record(self, job_id: str) -> _Record | None:
        if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
            return None
        if job_id in self._final:
            return self._final[job_id][0]
        job_dir = self.jobs_dir / job_id
        job = read_job(job_dir)
        if job is None:
            return None
        events = read_events(job_dir)
        alive = self._alive(job_id, job, events)
        if not alive and not _has(events, "exit", "died"):
            events = read_events(job_dir)  # reaping it may have just written why it died
        return _Record(job_id, job_dir, job, events, alive)

    def _records(self) -> list[_Record]:
        names = [p.name for p in self.jobs_dir.iterdir() if _JOB_ID.fullmatch(p.name)]
        records = [r for r in map(self._record, names) if r is not None]
        return sorted(records, key=lambda r: r.order)

    def _alive(self, job_id: str, job: dict[str, Any], events: list[dict[str, Any]]) -> bool:
        with self._lock:
            worker = self._workers.get(job_id)
            if worker is not None:
                if worker.poll() is None:
                    return True
                del self._workers[job_id]  # reaped: no zombie left behind
                if worker.returncode < 0 and not _has(events, "exit", "failed", "cancelled"):
                    # killed before it could say a word: the parent alone knows by what
                    append_event(self.jobs_dir / job_id, "died", signal=-worker.returncode)
                return False
        pid = _pid(job, events)
        if pid is None:  # the submitting process has not recorded the pid yet
            return time.time() - float(job.get("submitted", 0.0)) < START_GRACE
        return pid_is_worker(pid, job_id, self.jobs_dir / job_id)

    def _snapshot(self, record: _Record, records: list[_Record]) -> JobSnapshot:
        """``records``: every job, to place a queued one in line (unused otherwise)."""
        if record.id in self._final:
            return self._final[record.id][1]
        queue = _queue(record, records) if _status(record) == QUEUED else (0, 0)
        snap = summarise(record.dir, record.job, record.events, record.alive, queue)
        if snap.is_finished and not record.alive:
            self._final[record.id] = (record, snap)
        return snap


# ---------------------------------------------------------------------------- the job files
def read_job(job_dir: Path) -> dict[str, Any] | None:
    """The job's ``job.json``, or None when it is missing or unreadable."""
    try:
        job = json.loads((Path(job_dir) / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None
    return job if isinstance(job, dict) else None


def read_events(job_dir: Path) -> list[dict[str, Any]]:
    """Every complete event the worker wrote so far (a line still being written is skipped)."""
    try:
        lines = (Path(job_dir) / PROGRESS_FILE).read_text().splitlines()
    except OSError:
        return []
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and "event" in event:
            events.append(event)
    return events


def append_event(job_dir: Path, event: str, **fields: Any) -> None:
    """Appends one event line to ``progress.jsonl`` with a single write, so a reader (or a
    signal) never sees half of it."""
    line = json.dumps({"t": time.time(), "event": event, **fields}, default=_json_value) + "\n"
    fd = os.open(Path(job_dir) / PROGRESS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def remove_partial_run(out_dir: str | Path, pid: int | None,
                       events: list[dict[str, Any]]) -> None:
    """Removes what worker ``pid`` left of a run it never reported saved: save_run's
    temporary sibling folder and, if the worker got as far as saving, the run directory
    (cut off between the rename and the "saved" event). Another job's run is never touched:
    save_run refuses to replace an existing directory."""
    out_dir = Path(out_dir)
    if _has(events, "saved"):
        return
    for tmp in out_dir.parent.glob(f".{out_dir.name}.tmp-{pid}-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    if any(e["event"] == "phase" and e["name"] == "save" for e in events):
        shutil.rmtree(out_dir, ignore_errors=True)


def queued_ahead(jobs_dir: Path, job_id: str) -> int:
    """How many unfinished jobs submitted before ``job_id`` still wait for a slot: a worker
    only takes a slot when this is 0, so jobs start in the order they were submitted."""
    manager = JobManager(jobs_dir, warm=False)
    records = manager._records()
    me = next((r for r in records if r.id == job_id), None)
    return 0 if me is None else _queue(me, records)[0]


def pid_is_worker(pid: int, job_id: str, job_dir: Path | None = None) -> bool:
    """True when ``pid`` is a live (not zombie) worker of ``job_id``; a pid reused by another
    program after a restart does not count. A standby that took the job (its command line
    names no job) counts when it holds the job's ``worker.lock`` (needs ``job_dir``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():  # no procfs (macOS): trust the pid
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    if "recsys.jobs.worker" in cmdline:
        return job_id in cmdline
    return ("recsys.jobs.standby" in cmdline and job_dir is not None
            and _locked(job_dir / WORKER_LOCK))


def _locked(path: Path) -> bool:
    """Whether some process holds an exclusive lock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- state from events
def summarise(job_dir: Path, job: dict[str, Any], events: list[dict[str, Any]], alive: bool,
              queue: tuple[int, int] = (0, 0)) -> JobSnapshot:
    """The snapshot of a job from its ``job.json``, its events so far and whether its worker
    lives; ``queue`` is (queued jobs ahead, busy workers) for a job still waiting."""
    record = _Record(str(job.get("id", Path(job_dir).name)), Path(job_dir), job, events, alive)
    status = _status(record)
    history = tuple(e["stats"] for e in events if e["event"] == "epoch")
    refit = tuple(e["stats"] for e in events if e["event"] == "refit_epoch")
    saved = next((e for e in events if e["event"] == "saved"), None)
    done_maps = tuple(e["method"] for e in events
                      if e["event"] == "map" and e.get("state") == "done")
    over = {e["method"] for e in events
            if e["event"] == "map" and e.get("state") not in ("start", "waiting")}
    ending = alive and not _has(events, "cancelled", "failed", "exit")
    pending = tuple(m for m in job.get("maps", ()) if m not in over) if ending else ()
    slot_taken = next((e["t"] for e in events if e["event"] == "phase" and e["name"] != "waiting"),
                      None)
    ahead, busy = queue
    return JobSnapshot(
        id=record.id, owner=str(job.get("owner", "")), status=status,
        model=str(job.get("train", {}).get("model", "?")),
        phase=_phase(record, status, pending, ahead + busy),
        progress=1.0 if status == DONE and not pending else _progress(job, events),
        history=history, refit=refit, error=_error(record, status),
        run_path=Path(saved["path"]) if saved else None,
        maps_done=done_maps, maps_pending=pending,
        queue_position=ahead + 1 if status == QUEUED else None,
        started=slot_taken or float(job.get("submitted", 0.0)),
        finished=_finished(record, status), worker_alive=alive,
        stop_requested=(Path(job_dir) / STOP_FILE).exists(), pid=_pid(job, events),
        diverged=any(e["event"] == "failed" and e.get("kind") == "TrainingDivergedError"
                     for e in events),
        configs={part: dict(job[part]) for part in ("split", "train")
                 if isinstance(job.get(part), dict)},
    )


def _status(record: _Record) -> str:
    events = record.events
    if _has(events, "saved"):
        return DONE
    if _has(events, "failed"):
        return FAILED
    if _has(events, "cancelled"):
        return CANCELLED
    if not record.alive:
        return FAILED
    started = any(e["event"] == "phase" and e["name"] != "waiting" for e in events)
    return RUNNING if started else QUEUED


def _in_last_steps(events: list[dict[str, Any]]) -> bool:
    """Whether training is over and only the test evaluation and the save are left (or the
    refit's last epoch is running): the job ends within a fraction of a second."""
    last = next((e for e in reversed(events) if e["event"] in ("phase", "epoch", "refit_epoch")),
                None)
    if last is None or last["event"] == "epoch":
        return False
    if last["event"] == "refit_epoch":
        stats = last.get("stats", {})
        return stats.get("epoch", 0) + 1 >= stats.get("refit_epochs", float("inf"))
    return last["name"] in ("test", "save")


def _phase(record: _Record, status: str, pending: tuple[str, ...], ahead: int) -> str:
    if status in (FAILED, CANCELLED):
        return status
    if status == QUEUED:
        if not _has(record.events, "phase"):
            return "starting the training process"
        return f"waiting for a free training slot ({ahead} job{'s' * (ahead != 1)} ahead)"
    if status == DONE:
        if pending and _map_waiting(record.events):
            return "waiting to compute the maps (one job's maps at a time)"
        if pending:
            return f"computing maps: {MAP_LABELS.get(pending[0], pending[0])}"
        return "finished (maps cancelled)" if _has(record.events, "cancelled") else "finished"
    last = next(e for e in reversed(record.events) if e["event"] in ("phase", "epoch",
                                                                     "refit_epoch"))
    epochs = record.job["train"]["epochs"]
    if last["event"] == "epoch":
        stopping = " (stopping early on request)" if (record.dir / STOP_FILE).exists() else ""
        return f"epoch {last['stats']['epoch']} of at most {epochs}{stopping}"
    if last["event"] == "refit_epoch":
        stats = last["stats"]
        return f"refit on train + validation: epoch {stats['epoch']} of {stats['refit_epochs']}"
    return PHASE_TEXT.get(last["name"], last["name"])


def _progress(job: dict[str, Any], events: list[dict[str, Any]]) -> float:
    """Share of the whole job done: earlier stages full, the current one in part. Stages only
    move forward and each part only grows, so the bar never goes back."""
    shares = dict(SHARES)
    if not job.get("train", {}).get("refit", True):
        shares["fit"] += shares.pop("refit")
    maps = job.get("maps") or ()
    if not maps:
        shares.pop("maps")
    stage, part, maps_over = "load", 0.0, 0
    for e in events:
        kind = e["event"]
        if kind == "phase" and e["name"] in PHASE_STAGE:
            stage, part = PHASE_STAGE[e["name"]]
        elif kind == "epoch":
            stage, part = "fit", e["stats"]["epoch"] / max(job["train"]["epochs"], 1)
        elif kind == "refit_epoch" and "refit" in shares:
            stats = e["stats"]
            stage, part = "refit", stats["epoch"] / max(stats.get("refit_epochs", 1), 1)
        elif kind == "saved":
            stage, part = ("maps", 0.0) if maps else ("save", 1.0)
        elif kind == "map" and e.get("state") not in ("start", "waiting") and maps:
            maps_over += 1
            stage, part = "maps", maps_over / len(maps)
    order = list(shares)
    before = sum(shares[s] for s in order[:order.index(stage)])
    return min((before + shares[stage] * min(part, 1.0)) / sum(shares.values()), 1.0)


def _error(record: _Record, status: str) -> str | None:
    if status != FAILED:
        return None
    failed = next((e for e in record.events if e["event"] == "failed"), None)
    if failed is not None:
        return str(failed.get("error") or "training failed")
    died = next((e for e in record.events if e["event"] == "died"), None)
    if died is not None:
        return _death(int(died.get("signal", 0)))
    return f"the training process ended unexpectedly (see {record.dir / LOG_FILE})"


def _death(number: int) -> str:
    """Why a worker killed by signal ``number`` died, in words a person can act on."""
    if number == signal.SIGKILL:
        return ("the training process was killed (SIGKILL): most often the machine ran out of "
                "memory, or someone ended it by hand; try a smaller dimension or batch size")
    if number == signal.SIGSEGV:
        return "the training process crashed (SIGSEGV, a fault in native code)"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"the training process was ended by {name} before it could report why"


def _finished(record: _Record, status: str) -> float | None:
    for e in record.events:
        if e["event"] in ("saved", "failed", "cancelled"):
            return float(e["t"])
    if status == FAILED:  # died without a word: the last sign of life
        return float(record.events[-1]["t"]) if record.events else time.time()
    return None


def _map_waiting(events: list[dict[str, Any]]) -> bool:
    """Whether the worker waits for the map slot: its last map event says so."""
    last = next((e for e in reversed(events) if e["event"] == "map"), None)
    return last is not None and last.get("state") == "waiting"


def _queue(record: _Record, records: list[_Record]) -> tuple[int, int]:
    """(queued jobs submitted before ``record``, workers holding a training slot: a saved
    job computing its maps has freed its slot already)."""
    waiting = [r for r in records if _status(r) == QUEUED]
    ahead = sum(r.order < record.order for r in waiting)
    busy = sum(r.alive and _status(r) == RUNNING for r in records)
    return ahead, busy


def _pid(job: dict[str, Any], events: list[dict[str, Any]]) -> int | None:
    """The worker's pid: from job.json, or from the worker's own first event."""
    pid = job.get("pid") or next((e.get("pid") for e in events if e["event"] == "start"), None)
    return int(pid) if pid else None


def _has(events: list[dict[str, Any]], *kinds: str) -> bool:
    return any(e["event"] in kinds for e in events)


def _signal_group(pid: int | None, sig: int) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, sig)  # the worker leads its own session (start_new_session=True)
    except ProcessLookupError:
        pass


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a reader never sees half a job.json


def _json_value(value: Any) -> Any:
    """numpy scalars (epoch stats) as plain numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
