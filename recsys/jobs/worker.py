"""One training job in its own process: ``python -m recsys.jobs.worker JOB_DIR``.

Started by :class:`recsys.jobs.manager.JobManager`. It waits for a free training slot, loads
MovieLens, trains, evaluates and saves the run, frees the slot, then caches the run's maps at
a lower CPU priority, appending an event to ``JOB_DIR/progress.jsonl`` at every step.
SIGTERM (a cancel) unwinds as an exception, so a half-saved run never stays behind.

``python -m recsys.jobs.standby_process --parent PID [--data-dir DIR]`` is the same worker,
started ahead of the click (:mod:`recsys.jobs.standby` holds the protocol): it imports torch, loads
MovieLens, says ``ready`` and waits for one job, then runs :func:`work_on` for it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recsys.data.protocol import SplitConfig
from recsys.jobs.manager import (
    MAP_LABELS,
    MAPS_LOCK,
    STOP_FILE,
    WORKER_LOCK,
    append_event,
    queued_ahead,
    read_events,
    read_job,
    remove_partial_run,
)
from recsys.models.config import TrainConfig
from recsys.settings import from_dict

POLL_SECONDS = 0.5  # how often a waiting job looks for a free slot


class Cancelled(BaseException):
    """SIGTERM from :meth:`JobManager.cancel`; a BaseException so no ``except Exception``
    on the way swallows it, while ``save_run`` still removes its temporary folder."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m recsys.jobs.worker JOB_DIR", file=sys.stderr)
        return 2
    return work_on(Path(args[0]))


def work_on(job_dir: Path, preloaded: Any = None) -> int:
    """Runs the job in ``job_dir`` in this process; ``preloaded``: what a standby worker
    loaded ahead (:class:`recsys.jobs.standby_process.Preloaded`: the data, the default
    split), given only for a job that asks for the same data folder."""
    job = read_job(job_dir)
    if job is None:
        print(f"{job_dir / 'job.json'} is missing or unreadable", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Held until this process ends (the OS drops it): how another manager tells that a
    # standby, whose command line names no job, is this job's live worker.
    fcntl.flock(os.open(job_dir / WORKER_LOCK, os.O_RDWR | os.O_CREAT, 0o644), fcntl.LOCK_EX)
    append_event(job_dir, "start", pid=os.getpid(), warm=preloaded is not None)
    code = run_job(job_dir, job, preloaded)
    append_event(job_dir, "exit", code=code)
    return code


def run_job(job_dir: Path, job: dict[str, Any], preloaded: Any = None) -> int:
    """Trains and maps the job, turning every way it can end into one event; the exit code."""
    out, slot = Path(job["out_dir"]), None
    try:
        slot = _take_slot(job_dir, job)
        run, ml = _train(job_dir, job, preloaded)
        # The run is saved: free the slot so the next visitor's training starts now, and
        # compute the maps at a lower priority so they never slow that training down.
        os.close(slot)
        slot = None
        os.nice(10)
        _compute_maps(job_dir, job, run, ml)
        return 0
    except Cancelled:
        remove_partial_run(out, os.getpid(), read_events(job_dir))
        _remove_partial_maps(out)
        append_event(job_dir, "cancelled")
        print("cancelled", flush=True)
        return 1
    except Exception as err:  # reported as the job's error; the traceback goes to worker.log
        traceback.print_exc()
        append_event(job_dir, "failed", error=_one_line(err), kind=type(err).__name__)
        return 1
    finally:
        if slot is not None:
            os.close(slot)  # the next job starts now, not after this interpreter's teardown


def _take_slot(job_dir: Path, job: dict[str, Any]) -> int:
    """Waits, in submission order, until one of ``max_running`` slot locks is free; returns
    its file descriptor. The OS drops the lock when this process dies, however it dies."""
    jobs_dir, said = job_dir.parent, False
    while True:
        if queued_ahead(jobs_dir, job["id"]) == 0:
            for i in range(int(job.get("max_running", 1))):
                fd = os.open(jobs_dir / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    os.close(fd)
        if not said:
            append_event(job_dir, "phase", name="waiting")
            said = True
        time.sleep(POLL_SECONDS)


def _train(job_dir: Path, job: dict[str, Any], preloaded: Any = None) -> tuple[Any, Any]:
    append_event(job_dir, "phase", name="load")
    from recsys.data.loading import load_movielens  # heavy imports (torch) only once a slot is ours
    from recsys.errors import RunError
    from recsys.storage.runs import train_run

    ml = preloaded.ml if preloaded is not None else load_movielens(job.get("data_dir"),
                                                                   progress=False)
    split_config = from_dict(SplitConfig, job["split"])
    wanted = job.get("fingerprint")
    if wanted and ml.fingerprint() != wanted:
        raise RunError(
            f"the training process loaded {ml.name} with fingerprint {ml.fingerprint()}, not "
            f"the data the app shows ({wanted}): the MovieLens files changed; reload the page "
            "and train again"
        )
    stop_file = job_dir / STOP_FILE

    def on_epoch(epoch: int, stats: dict[str, Any]) -> bool:
        if stats.get("phase") == "refit":
            append_event(job_dir, "refit_epoch", stats=stats)
            return False
        append_event(job_dir, "epoch", stats=stats)
        return stop_file.exists()  # asks the fit to end here, keeping its best epoch

    run = train_run(ml, split_config, from_dict(TrainConfig, job["train"]), job["out_dir"],
                    callbacks=[on_epoch],
                    split=preloaded.split_for(split_config) if preloaded is not None else None,
                    on_phase=lambda name: append_event(job_dir, "phase", name=name))
    # From this line on the run is the user's: a cancel keeps it.
    append_event(job_dir, "saved", path=str(run.path), fit_seconds=run.metrics["fit_seconds"])
    print(f"saved {run.path}", flush=True)
    return run, ml


def _compute_maps(job_dir: Path, job: dict[str, Any], run: Any, ml: Any) -> None:
    """Caches the run's item maps so the map page opens at once; a map that fails is
    reported and skipped (the run is saved and stays usable)."""
    methods = job.get("maps") or []
    if not methods:
        return
    if run.model.item_factors() is None:
        for method in methods:
            append_event(job_dir, "map", method=method, state="skipped",
                         reason=f"{run.train_config.model} has no item embeddings")
        return
    from recsys.data.loading import movies_for
    from recsys.lessons.projection import project_app_map
    from recsys.storage.runs import prepare_split

    movies = movies_for(ml, run.item_ids)
    known = prepare_split(ml, run.split_config).seen_at_test.to_csr()  # what the model saw
    append_event(job_dir, "map", method=methods[0], state="waiting")
    with _map_slot(job_dir.parent):
        _project_each(job_dir, methods,
                      lambda method: project_app_map(run, method, known, movies))


@contextlib.contextmanager
def _map_slot(jobs_dir: Path) -> Iterator[None]:
    """The one map slot of the server (``jobs_dir/maps.lock``): finished jobs compute their
    maps one at a time, at low priority, never all at once (ten at once, measured, made every
    page take 13 s). The OS drops the lock when the holder dies."""
    fd = os.open(jobs_dir / MAPS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _project_each(job_dir: Path, methods: list[str], project: Any) -> None:
    for method in methods:
        append_event(job_dir, "map", method=method, state="start")
        start = time.perf_counter()
        try:
            project(method)
        except Exception as err:
            traceback.print_exc()
            append_event(job_dir, "map", method=method, state="failed", error=_one_line(err))
            continue
        seconds = time.perf_counter() - start
        append_event(job_dir, "map", method=method, state="done", seconds=seconds)
        print(f"{MAP_LABELS.get(method, method)} map in {seconds:.1f}s", flush=True)


def _remove_partial_maps(out: Path) -> None:
    """A map cut short leaves its temporary ``.npz`` (projection._save writes then renames)."""
    for tmp in (out / "projections").glob(f".*.tmp-{os.getpid()}-*"):  # ours only
        tmp.unlink(missing_ok=True)


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # clean up once, undisturbed
    raise Cancelled()


def _one_line(err: BaseException) -> str:
    """The error in one line a person can act on (the traceback goes to worker.log)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return ("the disk is full: nothing of the run was saved; free some disk space (old "
                "runs can go) and train again")
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # everything is written: skip the second or so of torch's teardown
