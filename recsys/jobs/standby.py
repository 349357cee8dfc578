"""A warm standby worker: the training process started *before* the click, so that a job's
first epoch follows the click by a fraction of a second instead of the 2-3 s (12 s on a busy
machine) a fresh worker spends importing torch and reading MovieLens.

Life cycle (one standby per :class:`~recsys.jobs.manager.JobManager`, at most):

1. A keeper thread of the manager starts ``python -m recsys.jobs.standby_process --parent PID
   [--data-dir DIR]`` when the manager is created (the app creates it on a visitor's first
   page, not on the Train page, so the first click finds it ready), and again a few seconds
   after each job it handed over has saved its run (never while one of its jobs trains, so
   warming up never slows a training down, nor the page redrawing with its result). The
   standby imports torch and the training code, loads MovieLens and writes the line
   ``ready`` to its stdout.
2. Protocol: the manager hands it a job by writing one JSON line to its stdin,
   ``{"job_dir": "/…/jobs/<id>"}``. From then on the process is that job's worker, exactly
   as ``python -m recsys.jobs.worker JOB_DIR``: its output goes to ``JOB_DIR/worker.log``,
   it takes a training slot in turn, trains, saves, computes the maps, then exits. A standby
   serves one job only, so nothing of one job (random state, torch caches, a lower priority
   for the maps) reaches the next; the next job gets a fresh standby.
3. A waiting standby ends when its manager closes it (:meth:`Standby.close`: SIGKILL, or EOF
   on its stdin), and by itself when the server process dies: the kernel sends it SIGKILL
   when the thread that started it ends (``PR_SET_PDEATHSIG``, Linux; the keeper thread lives
   as long as the process), its stdin reaches EOF, and it checks every second that its parent
   is still the one it was started by (anywhere ``prctl`` is missing). A standby that has
   taken a job clears ``PR_SET_PDEATHSIG`` first: like a cold worker, a job outlives a server
   restart and the restarted server finds it again.

A job takes the standby only when it asks for the data folder the standby loaded and the CPU
thread count it was started with (``OMP_NUM_THREADS``); otherwise, and while no standby is
ready (the first seconds of a server, or right after a job), the manager starts a cold worker
as before. ``RECSYS_WARM_WORKER=0`` turns standbys off (a benchmark's "before").

Cost: one idle Python process holding torch, ML-100K and its default split: ~340 MB
resident, ~220 MB of it private (VmRSS / RssAnon of a ready standby, Dec 2026), no CPU while
it waits; warming up takes 2-3 s of one core on a quiet machine (imports, data, a two-epoch
rehearsal fit), paid after a job's training, never during one.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

WARM_ENV = "RECSYS_WARM_WORKER"  # "0": no standby, every job starts a cold worker
READY = "ready"  # the standby's line on stdout once torch and the data are loaded
STANDBY_LOG = "standby.log"  # in the jobs folder: a standby's output until it takes a job
STANDBY_THREADS = 1  # OMP_NUM_THREADS of a standby: jobs asking for other counts start cold
PARENT_POLL = 1.0  # seconds between a waiting standby's checks that its parent lives
KEEPER_POLL = 0.5  # seconds between the keeper's checks whether to start a standby
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIVE: set[Standby] = set()  # this process's standbys not yet closed (normally 0 or 1)
_LIVE_LOCK = threading.Lock()


def warm_by_default() -> bool:
    """Whether managers keep a standby unless told otherwise (``RECSYS_WARM_WORKER``)."""
    return os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


# ---------------------------------------------------------------------------- manager side
class Standby:
    """The one standby worker of a manager, and the keeper thread that replaces it.

    ``launch(args, stdin, stdout)`` starts ``python -m recsys.jobs.worker`` with ``args``
    (the manager's own launcher: same interpreter, PYTHONPATH and thread settings);
    ``busy()`` says whether the manager wants no standby warming now (one of its jobs
    trains, or has just saved its run)."""

    def __init__(self, launch: Callable[..., subprocess.Popen], busy: Callable[[], bool],
                 data_dir: str | None = None) -> None:
        self.data_dir = data_dir
        self._launch, self._busy = launch, busy
        self._proc: subprocess.Popen | None = None  # the standby, ready or warming up
        self._ready = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._failures = 0  # standbys in a row that died warming up (e.g. no data): back off
        self._thread = threading.Thread(target=self._keep, name="recsys-standby-keeper",
                                        daemon=True)
        with _LIVE_LOCK:
            _LIVE.add(self)
        self._thread.start()

    @property
    def pid(self) -> int | None:
        """The waiting (or warming) standby's pid, None when there is none."""
        with self._lock:
            return self._proc.pid if self._proc is not None else None

    def is_ready(self) -> bool:
        with self._lock:
            return self._ready and self._proc is not None and self._proc.poll() is None

    def take(self, job_dir: Path, data_dir: str | None, threads: int
             ) -> subprocess.Popen | None:
        """Hands the job in ``job_dir`` to the ready standby and returns its process (now the
        job's worker), or None when no standby fits (not ready, other data, other threads):
        the caller then starts a cold worker."""
        if data_dir != self.data_dir or threads != STANDBY_THREADS:
            return None
        with self._lock:
            proc = self._proc
            if self._closed or not self._ready or proc is None or proc.poll() is not None:
                return None
            try:
                proc.stdin.write(json.dumps({"job_dir": str(job_dir)}) + "\n")
                proc.stdin.flush()
                proc.stdin.close()
            except (OSError, ValueError):  # it died since: a cold worker instead
                return None
            self._proc, self._ready = None, False
        self._wake.set()
        return proc

    def close(self, timeout: float = 10.0) -> None:
        """Ends the waiting standby (if any) and the keeper thread; jobs it already took
        run on. Safe to call twice."""
        with self._lock:
            self._closed = True
            proc, self._proc, self._ready = self._proc, None, False
        with _LIVE_LOCK:
            _LIVE.discard(self)
        self._wake.set()
        if proc is not None:
            _end(proc)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ------------------------------------------------------------------ keeper thread
    def _keep(self) -> None:
        """Starts a standby whenever there is none and no job of the manager trains; waits
        for its ``ready``. Runs until :meth:`close`. It is this thread that starts the
        standbys, so PR_SET_PDEATHSIG fires when the process ends, not when a short-lived
        thread (a Streamlit script run) does."""
        while not self._closed:
            with self._lock:
                need = self._proc is None or self._proc.poll() is not None
            if need and not self._busy():
                self._start_one()
            self._wake.wait(KEEPER_POLL * 2 ** min(self._failures, 7))  # ≤ 64 s apart
            self._wake.clear()

    def _start_one(self) -> None:
        args = ["--parent", str(os.getpid())]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        with self._lock:
            if self._closed:
                return
            old, self._proc, self._ready = self._proc, None, False
            proc = self._launch(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self._proc = proc
        if old is not None:
            old.wait()  # it had died: reap it
        line = proc.stdout.readline()  # blocks here, in the keeper, until ready or dead
        with self._lock:
            if self._proc is proc and line.strip() == READY:
                self._ready = True
        if line.strip() == READY:
            self._failures = 0
        else:
            proc.wait()  # it died warming up (see standby.log); the loop starts another
            self._failures += 1


def live() -> list[Standby]:
    """This process's standbys that have not been closed (a test or a shutdown hook finds
    them here without holding their managers)."""
    with _LIVE_LOCK:
        return list(_LIVE)


@atexit.register
def close_all() -> None:
    """Closes every standby of this process (at interpreter exit, and for tests)."""
    for standby in live():
        standby.close()


def _end(proc: subprocess.Popen) -> None:
    """Kills a waiting standby and reaps it (its process group: it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError, ValueError):
        proc.stdin.close()
    proc.wait()
    with contextlib.suppress(OSError, ValueError):
        proc.stdout.close()
