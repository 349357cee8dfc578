"""Training jobs in worker processes, on a tiny ML-100K-layout folder (no Streamlit, no
real MovieLens): what the page sees, reloads, stop, cancel, the queue and a killed worker."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from recsys.data.loading import GENRES_100K
from recsys.data.protocol import SplitConfig
from recsys.jobs.manager import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    JobManager,
    JobSnapshot,
    append_event,
    pid_is_worker,
    read_events,
    read_job,
    remove_partial_run,
    summarise,
)
from recsys.lessons import projection
from recsys.models.config import TrainConfig
from recsys.storage.runs import list_runs, load_run
from tests.synthetic import block_ratings

SPLIT = SplitConfig(test_fraction=0.25, valid_fraction=0.2)
TIMEOUT = 90.0  # seconds; a job here takes a few (most of it importing torch)


def tiny_config(**overrides) -> TrainConfig:
    values = {"model": "mf-bpr", "dim": 4, "epochs": 4, "batch_size": 256, "patience": 0,
              "refit": True, "threads": 1, **overrides}
    return TrainConfig(**values)


def slow_config() -> TrainConfig:
    """~0.1 s per epoch and 1000 epochs: runs until a test stops, cancels or kills it."""
    return tiny_config(epochs=1000, batch_size=16, engine="torch")  # the compiled one is fast


@pytest.fixture(autouse=True)
def cold_workers(monkeypatch):
    """Every job here starts a cold worker (the standby's life cycle and warm jobs are
    tests/test_warm_worker.py's): no manager of this file keeps a process waiting."""
    monkeypatch.setenv("RECSYS_WARM_WORKER", "0")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """A GroupLens ML-100K folder (u.data, u.item, u.user) of 200 users and 80 movies."""
    d = tmp_path_factory.mktemp("ml-100k")
    ratings = block_ratings(n_blocks=4, users_per_block=50, items_per_block=20)
    (d / "u.data").write_text("".join(f"{r.user_id}\t{r.item_id}\t{int(r.rating)}\t"
                                      f"{r.timestamp}\n" for r in ratings.itertuples()))
    flags = "|".join("1" if genre == "Drama" else "0" for genre in GENRES_100K)
    items = [f"{i}|Movie {i} (1990)|01-Jan-1990||http://x|{flags}" for i in range(1, 81)]
    (d / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (d / "u.user").write_text("".join(f"{u}|30|F|writer|00000\n" for u in range(1, 201)))
    return str(d)


def wait_for(manager: JobManager, job_id: str, done, timeout: float = TIMEOUT) -> JobSnapshot:
    """Polls the job until ``done(snapshot)``; fails with the last snapshot on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        snap = manager.snapshot(job_id)
        if done(snap):
            return snap
        if time.monotonic() > deadline:
            log = (manager.jobs_dir / job_id / "worker.log").read_text()
            raise AssertionError(f"timed out waiting; last {snap}\nworker.log:\n{log}")
        time.sleep(0.05)


def training(snap: JobSnapshot) -> bool:
    """The worker is inside the fit (training or between epochs)."""
    return snap.phase.startswith(("training", "epoch"))


def wait_until_over(manager: JobManager, job_id: str) -> JobSnapshot:
    return wait_for(manager, job_id, lambda s: s.is_finished and not s.worker_alive)


def test_job_trains_saves_and_reports_every_phase(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs")
    first = manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                           maps=("pca",))
    assert first.status in (QUEUED, RUNNING) and first.owner == "a" and first.model == "mf-bpr"
    seen = [first.progress]
    snap = wait_for(manager, first.id,
                    lambda s: seen.append(s.progress) or (s.is_finished and not s.worker_alive))
    assert snap.status == DONE, snap.error
    assert snap.phase == "finished" and snap.progress == 1.0 and snap.error is None
    assert seen == sorted(seen)
    assert [h["epoch"] for h in snap.history] == [1, 2, 3, 4]
    assert all("loss" in h and "valid_recall@10" in h for h in snap.history)
    assert snap.refit and [h["epoch"] for h in snap.refit] == list(
        range(1, snap.refit[0]["refit_epochs"] + 1))
    assert snap.maps_done == ("pca",) and snap.maps_pending == ()
    assert snap.finished is not None and snap.seconds > 0
    assert list_runs(tmp_path / "runs") == [snap.run_path]
    run = load_run(snap.run_path)
    assert run.train_config == tiny_config() and "recall@10" in run.metrics
    assert len(run.history) == 4
    assert projection.item_map_is_cached(snap.run_path, "pca")  # the app's item map

    job_dir = manager.jobs_dir / snap.id
    events = read_events(job_dir)
    kinds = [e["event"] if e["event"] != "phase" else e["name"] for e in events]
    assert [k for k in kinds if k in ("load", "split", "fit", "test", "save")] == [
        "load", "split", "fit", "test", "save"]
    fit, test = kinds.index("fit"), kinds.index("test")
    assert set(kinds[fit + 1:test]) == {"epoch", "refit_epoch"}
    assert kinds.index("refit_epoch") > max(i for i, k in enumerate(kinds) if k == "epoch")
    assert kinds[-5:] == ["saved", "map", "map", "map", "exit"] and events[-1]["code"] == 0
    assert [e.get("state") for e in events[-4:-1]] == ["waiting", "start", "done"]

    # replaying the stream event by event: the bar never goes back and ends full
    job = read_job(job_dir)
    replay = [summarise(job_dir, job, events[:i], alive=True).progress
              for i in range(len(events) + 1)]
    assert replay == sorted(replay) and replay[0] == 0.0
    assert summarise(job_dir, job, events, alive=False).progress == 1.0

    # a reloaded page or a restarted server finds the same job from the files alone
    again = JobManager(tmp_path / "jobs")
    assert again.snapshot(snap.id) == snap
    assert again.jobs("a") == [snap] and again.unfinished() == []


def test_owners_see_only_their_own_jobs(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs", max_running=2)
    a = manager.submit("a", SPLIT, tiny_config(epochs=2), tmp_path / "runs", data_dir=data_dir,
                       maps=("pca", "tsne"))
    b = manager.submit("b", SPLIT, tiny_config(model="popularity"), tmp_path / "runs",
                       data_dir=data_dir)
    assert {s.id for s in manager.unfinished()} == {a.id, b.id}
    a, b = wait_until_over(manager, a.id), wait_until_over(manager, b.id)
    assert a.status == DONE and b.status == DONE, (a.error, b.error)
    assert manager.jobs("a") == [a] and manager.jobs("b") == [b]
    assert manager.jobs("nobody") == []
    assert a.maps_done == ("pca", "tsne")
    assert b.maps_done == () and b.maps_pending == ()  # popularity has no embeddings to map
    assert load_run(a.run_path).train_config.model == "mf-bpr"
    assert load_run(b.run_path).train_config.model == "popularity"


def test_stop_keeps_a_saved_run_with_fewer_epochs(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs")
    job = manager.submit("a", SPLIT, slow_config(), tmp_path / "runs", data_dir=data_dir,
                         maps=("pca",))
    wait_for(manager, job.id, training)
    manager.stop(job.id)
    assert manager.snapshot(job.id).stop_requested
    snap = wait_until_over(manager, job.id)
    assert snap.status == DONE and snap.progress == 1.0, snap.error
    run = load_run(snap.run_path)
    assert 1 <= len(run.history) < 1000
    assert [h["epoch"] for h in run.history] == [h["epoch"] for h in snap.history]


def test_cancel_ends_the_worker_and_leaves_nothing(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs")
    out = tmp_path / "runs" / "cancelled-run"
    out.parent.mkdir()
    job = manager.submit("a", SPLIT, slow_config(), tmp_path / "runs", out_dir=out,
                         data_dir=data_dir, maps=("pca",))
    wait_for(manager, job.id, training)
    manager.cancel(job.id)
    snap = manager.snapshot(job.id)
    assert snap.status == CANCELLED and snap.phase == "cancelled" and snap.error is None
    assert not snap.worker_alive and not pid_is_worker(snap.pid, job.id)
    assert snap.run_path is None and not out.exists()
    assert list((tmp_path / "runs").iterdir()) == []  # no .tmp-* folder either
    assert manager.unfinished() == []


def test_cancel_while_mapping_keeps_the_saved_run(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs")
    job = manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                         maps=("umap",))
    snap = wait_for(manager, job.id, lambda s: s.phase == "computing maps: UMAP")
    assert snap.status == DONE and snap.maps_pending == ("umap",) and snap.progress < 1.0
    manager.cancel(job.id)
    snap = manager.snapshot(job.id)
    assert snap.status == DONE and snap.phase == "finished (maps cancelled)"
    assert not snap.worker_alive and snap.maps_done == () and snap.maps_pending == ()
    assert load_run(snap.run_path).train_config == tiny_config()
    assert not [p for p in snap.run_path.rglob("*") if ".tmp-" in p.name]


def test_maps_do_not_hold_the_training_slot(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs", max_running=1)
    first = manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                           maps=("umap",))
    wait_for(manager, first.id, lambda s: s.phase == "computing maps: UMAP")
    second = manager.submit("b", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                            maps=())
    # the second job trains while the first one's map is still being computed
    wait_for(manager, second.id, lambda s: s.status in (RUNNING, DONE))
    assert manager.snapshot(first.id).maps_pending == ("umap",)
    manager.cancel(first.id)
    assert wait_until_over(manager, second.id).status == DONE


def test_second_job_waits_for_the_slot_then_runs(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs", max_running=1)
    first = manager.submit("a", SPLIT, slow_config(), tmp_path / "runs", data_dir=data_dir,
                           maps=())
    wait_for(manager, first.id, lambda s: s.status == RUNNING)
    second = manager.submit("b", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                            maps=())
    waiting = wait_for(manager, second.id, lambda s: s.phase.startswith("waiting"))
    assert waiting.status == QUEUED and waiting.queue_position == 1
    assert waiting.phase == "waiting for a free training slot (1 job ahead)"
    third = manager.submit("c", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                           maps=())
    third = wait_for(manager, third.id, lambda s: s.phase.startswith("waiting"))
    assert third.queue_position == 2 and third.phase.endswith("(2 jobs ahead)")
    assert [s.id for s in manager.unfinished()] == [first.id, second.id, third.id]
    manager.stop(third.id)  # nothing to keep yet: a waiting job is simply cancelled
    assert manager.snapshot(third.id).status == CANCELLED
    time.sleep(0.6)  # more than one slot poll: still waiting while the first job trains
    assert manager.snapshot(second.id).status == QUEUED
    manager.stop(first.id)
    first, second = wait_until_over(manager, first.id), wait_until_over(manager, second.id)
    assert first.status == DONE and second.status == DONE, (first.error, second.error)
    assert second.queue_position is None and second.started >= first.finished


def test_killed_worker_shows_failed(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs")
    job = manager.submit("a", SPLIT, slow_config(), tmp_path / "runs", data_dir=data_dir,
                         maps=())
    snap = wait_for(manager, job.id, training)
    os.kill(snap.pid, signal.SIGKILL)
    snap = wait_for(manager, job.id, lambda s: s.is_finished)
    assert snap.status == FAILED and not snap.worker_alive
    # its parent saw the signal: the job says what killed it (a manager in another process,
    # which cannot know, points at the worker's log instead)
    assert snap.error.startswith("the training process was killed (SIGKILL): most often the "
                                 "machine ran out of memory")
    assert JobManager(tmp_path / "jobs").snapshot(job.id).error == snap.error
    # the OS released the dead worker's slot: the next job will not wait for it
    fd = os.open(manager.jobs_dir / "slot-0.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_fingerprint_mismatch_fails_clearly(data_dir, tmp_path):
    manager = JobManager(tmp_path / "jobs")
    job = manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                         fingerprint="0123456789abcdef", maps=())
    snap = wait_until_over(manager, job.id)
    assert snap.status == FAILED and snap.phase == "failed"
    assert "0123456789abcdef" in snap.error and "reload the page" in snap.error
    assert "\n" not in snap.error and "Traceback" not in snap.error
    assert "Traceback" in (manager.jobs_dir / job.id / "worker.log").read_text()
    assert snap.run_path is None and list_runs(tmp_path / "runs") == []


def test_bad_ids_and_bad_submissions(tmp_path):
    manager = JobManager(tmp_path / "jobs")
    for bad in ("../etc", "x" * 500, "", "0123456789ab", "../../" + "0" * 12, None, 42):
        assert manager.snapshot(bad) is None
        manager.stop(bad)
        manager.cancel(bad)
    taken = tmp_path / "runs" / "taken"
    taken.mkdir(parents=True)
    with pytest.raises(ValueError, match="already exists"):
        manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", out_dir=taken)
    with pytest.raises(ValueError, match="unknown map method"):
        manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", maps=("pcaa",))
    assert manager.jobs("a") == [] and not list(manager.jobs_dir.iterdir())


def test_progress_shares_cover_every_phase():
    job = {"train": {"epochs": 10, "refit": True}, "maps": ["pca", "umap"]}
    stream = ([{"event": "phase", "name": n} for n in ("load", "split", "fit")]
              + [{"event": "epoch", "stats": {"epoch": e}} for e in (1, 2, 3)]  # stopped early
              + [{"event": "refit_epoch", "stats": {"epoch": e, "refit_epochs": 3}}
                 for e in (1, 2, 3)]
              + [{"event": "phase", "name": n} for n in ("test", "save")]
              + [{"event": "saved", "path": "/x"}, {"event": "map", "method": "pca",
                                                    "state": "done"}])
    stream = [{"t": float(i), **e} for i, e in enumerate(stream)]
    bar = [summarise(Path("/nowhere"), job, stream[:i], alive=True).progress
           for i in range(len(stream) + 1)]
    assert bar == sorted(bar) and 0.0 == bar[0] and bar[-1] < 1.0
    assert len(set(np.round(bar[6:10], 6))) == 4  # the refit moves the bar


def test_partial_run_removal_touches_only_this_workers_leftovers(tmp_path):
    out = tmp_path / "run"
    mine, other = tmp_path / ".run.tmp-111-5", tmp_path / ".run.tmp-222-5"
    for d in (out, mine, other):
        d.mkdir()
    training = [{"event": "phase", "name": "fit"}]
    remove_partial_run(out, 111, training)  # never reached the save: the run is not its own
    assert out.exists() and not mine.exists() and other.exists()
    remove_partial_run(out, 111, [*training, {"event": "saved", "path": str(out)}])
    assert out.exists()
    remove_partial_run(out, 111, [*training, {"event": "phase", "name": "save"}])
    assert not out.exists() and other.exists()


def test_old_finished_jobs_are_pruned_running_and_recent_ones_kept(tmp_path):
    """A server's finished jobs would otherwise pile up, each read on every page that lists
    jobs; their runs live in the runs folder and are never touched."""
    jobs = tmp_path / "jobs"
    now = time.time()
    cases = {"aaaaaaaaaaa1": (now - 30 * 86400, "saved"),   # done a month ago: pruned
             "aaaaaaaaaaa2": (now - 3600, "saved"),         # done an hour ago: kept
             "aaaaaaaaaaa3": (now - 30 * 86400, "failed"),  # failed long ago: pruned
             "aaaaaaaaaaa4": (now - 30 * 86400, None)}      # no word, no worker: failed, pruned
    for job_id, (when, event) in cases.items():
        folder = jobs / job_id
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(json.dumps(
            {"id": job_id, "owner": "o", "submitted": when, "pid": None, "train": {}}))
        if event:
            (folder / "progress.jsonl").write_text(
                json.dumps({"event": event, "t": when, "path": "x", "error": "e"}) + "\n")
    manager = JobManager(jobs)
    assert sorted(p.name for p in jobs.iterdir()) == ["aaaaaaaaaaa2"]
    assert manager.prune() == []


@pytest.fixture
def stub_python(tmp_path) -> str:
    """A stand-in for the worker's interpreter: waits (as a queued job does) until cancelled,
    so that admission can be tested without starting any training."""
    stub = tmp_path / "stub-python"
    stub.write_text("#!/bin/sh\nsleep 120\n")
    stub.chmod(0o755)
    return str(stub)


def test_simultaneous_presses_in_two_servers_admit_exactly_the_cap(tmp_path, stub_python):
    """Twelve visitors press Train at once through two managers (two server processes sharing
    the jobs folder): exactly MAX_WAITING jobs start, each with its own place in the queue."""
    import threading

    from recsys.errors import BadInputError
    from recsys.jobs.manager import MAX_WAITING, VisitorLimits

    managers = [JobManager(tmp_path / "jobs", python=stub_python) for _ in range(2)]
    results, barrier = [], threading.Barrier(12)

    def press(n: int) -> None:
        barrier.wait()
        try:
            results.append(managers[n % 2].submit(f"visitor-{n}", SPLIT, tiny_config(),
                                                  tmp_path / "runs", limits=VisitorLimits()).id)
        except BadInputError as err:
            results.append(err)

    presses = [threading.Thread(target=press, args=(n,)) for n in range(12)]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join()
    accepted = [r for r in results if isinstance(r, str)]
    try:
        assert len(accepted) == MAX_WAITING
        assert all("already running or waiting" in str(r) for r in results
                   if not isinstance(r, str))
        places = [managers[0].snapshot(job_id).queue_position for job_id in accepted]
        assert sorted(places) == list(range(1, MAX_WAITING + 1))
    finally:
        for job_id in accepted:
            managers[0].cancel(job_id)


def test_a_visitor_gets_one_job_a_fair_size_and_no_more_threads_than_cores(tmp_path,
                                                                          stub_python):
    from recsys.errors import BadInputError
    from recsys.jobs.manager import VisitorLimits

    manager = JobManager(tmp_path / "jobs", python=stub_python)
    first = manager.submit("ann", SPLIT, tiny_config(), tmp_path / "runs", limits=VisitorLimits())
    try:
        with pytest.raises(BadInputError, match="already have a training job"):
            manager.submit("ann", SPLIT, tiny_config(), tmp_path / "runs",
                           limits=VisitorLimits())
        with pytest.raises(BadInputError, match="above this server's limit of 12,800"):
            manager.submit("bob", SPLIT, tiny_config(model="mf-als", dim=1024, epochs=1000),
                           tmp_path / "runs", limits=VisitorLimits())
        cores = os.cpu_count() or 1
        with pytest.raises(BadInputError, match=f"this server has {cores} CPU cores"):
            manager.submit("bob", SPLIT, tiny_config(threads=cores + 1), tmp_path / "runs")
        # the lecturer (no limits) may queue a second job and a big one
        second = manager.submit("ann", SPLIT, tiny_config(model="mf-als", dim=1024,
                                                          epochs=1000), tmp_path / "runs")
        manager.cancel(second.id)
    finally:
        manager.cancel(first.id)
    assert not list((tmp_path / "runs").glob("*")) or all(
        not p.name.startswith(".") for p in (tmp_path / "runs").iterdir())


def test_finished_jobs_compute_their_maps_one_at_a_time(data_dir, tmp_path):
    """While another job holds the server's map slot, a saved job waits for it (and says so),
    then computes its map; ten finished jobs never map at once."""
    manager = JobManager(tmp_path / "jobs", max_running=1)
    fd = os.open(manager.jobs_dir / "maps.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a worker computing its maps holds it
    try:
        job = manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                             maps=("pca",))
        snap = wait_for(manager, job.id, lambda s: s.phase.startswith("waiting to compute"))
        assert snap.status == DONE and snap.maps_pending == ("pca",) and snap.progress < 1.0
        time.sleep(1.0)  # still waiting: nothing computed while the slot is taken
        assert manager.snapshot(job.id).maps_done == ()
    finally:
        os.close(fd)  # the slot is free
    done = wait_until_over(manager, job.id)
    assert done.maps_done == ("pca",) and done.progress == 1.0


def fake_job(jobs: Path, job_id: str, events: list[dict]) -> Path:
    """A job folder as a worker leaves it mid-way: no pid yet (so alive: just submitted)."""
    folder = jobs / job_id
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps(
        {"id": job_id, "owner": "o", "submitted": time.time(), "pid": None, "model": "mf-bpr",
         "train": {"epochs": 5, "refit": True}, "split": {}, "out_dir": str(jobs / "run")}))
    (folder / "progress.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


@pytest.mark.parametrize("last_steps", [
    [{"event": "phase", "name": "test", "t": 0}],
    [{"event": "refit_epoch", "stats": {"epoch": 3, "refit_epochs": 3}, "t": 0}],
])
def test_a_look_at_a_finishing_job_waits_for_its_end(tmp_path, last_steps):
    """The Train panel's redraw that lands in a job's last steps (refit's end, test, save)
    shows the saved run, not one more "evaluating" half a second before "Done"."""
    import threading

    fit = [{"event": "phase", "name": "fit", "t": 0},
           {"event": "epoch", "stats": {"epoch": 1, "loss": 0.5}, "t": 0}]
    folder = fake_job(tmp_path / "jobs", "aaaaaaaaaaa1", fit + last_steps)
    manager = JobManager(tmp_path / "jobs")
    saver = threading.Timer(0.15, lambda: append_event(folder, "saved", path=str(tmp_path / "r"),
                                                       fit_seconds=0.1))
    start = time.monotonic()
    saver.start()
    snap = manager.finishing("aaaaaaaaaaa1", timeout=5.0)
    saver.join()
    assert snap.status == DONE and 0.1 < time.monotonic() - start < 2.0
    # with no end in sight, it gives up after the timeout and shows where the job is
    folder = fake_job(tmp_path / "jobs", "aaaaaaaaaaa2", fit + last_steps)
    start = time.monotonic()
    assert manager.finishing("aaaaaaaaaaa2", timeout=0.2).status == RUNNING
    assert 0.15 < time.monotonic() - start < 2.0


@pytest.mark.parametrize("last", [
    {"event": "epoch", "stats": {"epoch": 2, "loss": 0.4}, "t": 0},  # still training
    {"event": "refit_epoch", "stats": {"epoch": 1, "refit_epochs": 4}, "t": 0},  # refit: long
])
def test_a_look_at_a_training_job_never_waits(tmp_path, last):
    fit = [{"event": "phase", "name": "fit", "t": 0},
           {"event": "epoch", "stats": {"epoch": 1, "loss": 0.5}, "t": 0}]
    fake_job(tmp_path / "jobs", "aaaaaaaaaaa1", [*fit, last])
    start = time.monotonic()
    assert JobManager(tmp_path / "jobs").finishing("aaaaaaaaaaa1", timeout=5.0).status == RUNNING
    assert time.monotonic() - start < 1.0
