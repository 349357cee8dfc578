"""The standby worker's own side (``python -m recsys.jobs.standby_process --parent PID
[--data-dir DIR]``): warm up (torch, MovieLens, the default split, a rehearsal fit), say
``ready``, wait for one job on stdin and become its worker (:func:`recsys.jobs.worker.work_on`).

The manager's side, which starts, hands jobs to and closes standbys, is
:mod:`recsys.jobs.standby` (it imports nothing of the worker, so the manager does not either).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.jobs.standby import _PR_SET_PDEATHSIG, PARENT_POLL, READY


# ---------------------------------------------------------------------------- worker side
def serve_standby(args: list[str], work_on: Callable[[Path, Any], int] | None = None) -> int:
    """The standby's side: warm up, say ``ready``, wait for one job and run it with
    ``work_on(job_dir, preloaded)`` (the worker's). Exits 0 without a job when its parent
    goes. Tied to the parent first, before any import that takes time: a standby started
    just as its server ends must not live on through seconds of importing torch."""
    parent, data_dir = _parse(args)
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        return 0
    if work_on is None:
        from recsys.jobs.worker import work_on
    preloaded = warm_up(data_dir)
    print(READY, flush=True)
    job_dir = _wait_for_job(parent)
    if job_dir is None:
        return 0
    _outlive_parent(job_dir)
    from recsys.jobs.manager import read_job

    job = read_job(job_dir) or {}
    same_data = job.get("data_dir") == data_dir
    return work_on(job_dir, preloaded if same_data else None)


@dataclass(frozen=True)
class Preloaded:
    """What a standby prepared before the click: the data, and the default protocol's split
    (built fresh, untouched by the warm-up), handed to the one job it serves."""

    ml: Any  # recsys.data.loading.MovieLens
    split_config: Any  # recsys.data.protocol.SplitConfig of ``split``
    split: Any  # recsys.storage.runs.prepare_split(ml, split_config)

    def split_for(self, split_config: Any) -> Any:
        """The prepared split when the job asks for that protocol, else None (built then)."""
        return self.split if split_config == self.split_config else None


def warm_up(data_dir: str | None) -> Preloaded:
    """Imports torch and the training code, loads MovieLens and trains the default model for
    two epochs on the default split without saving: a process's first fit pays ~1-2 s of
    one-off costs (torch's first kernels, compiled engines, allocator), which must not fall
    between the click and the first epoch. Nothing of that fit is kept."""
    from dataclasses import replace

    from recsys.data.loading import load_movielens
    from recsys.data.protocol import SplitConfig
    from recsys.models.config import TrainConfig
    from recsys.storage.runs import prepare_split, train_run

    ml = load_movielens(data_dir, progress=False)
    rehearsal = replace(TrainConfig(), epochs=2, refit=False)
    with contextlib.suppress(Exception):  # a warm-up that fails leaves the job to fail loudly
        train_run(ml, SplitConfig(), rehearsal, out_dir=None)
    return Preloaded(ml, SplitConfig(), prepare_split(ml, SplitConfig()))


def _parse(args: list[str]) -> tuple[int, str | None]:
    values = dict(zip(args[::2], args[1::2], strict=False))
    return int(values["--parent"]), values.get("--data-dir")


def _die_with_parent() -> None:
    """SIGKILL when the thread that started us ends (Linux); elsewhere the polling remains."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _wait_for_job(parent: int) -> Path | None:
    """The job folder written to stdin, or None on EOF or when the parent is gone."""
    while True:
        readable, _, _ = select.select([sys.stdin], [], [], PARENT_POLL)
        if os.getppid() != parent:
            return None
        if readable:
            line = sys.stdin.readline()
            if not line:
                return None
            with contextlib.suppress(ValueError, TypeError, KeyError):
                return Path(json.loads(line)["job_dir"])
            print(f"standby: ignored a malformed line {line[:80]!r}", file=sys.stderr,
                  flush=True)


def _outlive_parent(job_dir: Path) -> None:
    """From now on this process is the job's worker: it no longer dies with the server,
    and its output goes to the job's ``worker.log`` like a cold worker's."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, 0, 0, 0, 0)
    from recsys.jobs.manager import LOG_FILE

    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(job_dir / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


if __name__ == "__main__":
    code = serve_standby(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as the worker: everything is written, skip torch's teardown
