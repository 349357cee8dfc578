"""The warm standby worker (recsys/jobs/standby.py): started with its manager, handed the
next job that fits it, replaced after that job, ended with the manager or its process; jobs
keep their semantics (files, slots, stop/cancel, what a second manager sees)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys.jobs.manager import (
    CANCELLED,
    DONE,
    STANDBY_GRACE,
    JobManager,
    pid_is_worker,
    read_events,
    read_job,
)
from recsys.jobs.standby import READY
from recsys.storage.runs import load_run
from tests.test_jobs import (
    SPLIT,
    data_dir,  # noqa: F401  (fixture)
    slow_config,
    tiny_config,
    training,
    wait_for,
    wait_until_over,
)

READY_TIMEOUT = 120.0  # s: a standby imports torch and reads the data (2-3 s quiet, ~12 s busy)


def alive(pid: int) -> bool:
    """A live, non-zombie process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_ready(manager: JobManager, timeout: float = READY_TIMEOUT) -> int:
    """The pid of the manager's standby once it is ready."""
    deadline = time.monotonic() + timeout
    while not manager.standby.is_ready():
        if time.monotonic() > deadline:
            log = (manager.jobs_dir / "standby.log")
            raise AssertionError("no standby ready; standby.log:\n"
                                 + (log.read_text() if log.exists() else "(none)"))
        time.sleep(0.05)
    return manager.standby.pid


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def warm_manager(data_dir, tmp_path):  # noqa: F811
    manager = JobManager(tmp_path / "jobs", warm=True, warm_data_dir=data_dir)
    try:
        yield manager
    finally:
        manager.close()
        assert manager.standby.pid is None


def test_a_job_goes_to_the_ready_standby_which_is_then_replaced(warm_manager, data_dir,  # noqa: F811
                                                                  tmp_path):
    standby = wait_ready(warm_manager)
    job = warm_manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                              maps=("pca",))
    assert read_job(warm_manager.jobs_dir / job.id)["warm"] is True
    assert job.pid == standby  # no new interpreter: the standby is the job's worker
    snap = wait_until_over(warm_manager, job.id)
    assert snap.status == DONE and snap.error is None and snap.progress == 1.0
    assert [h["epoch"] for h in snap.history] == [1, 2, 3, 4] and snap.refit
    assert snap.maps_done == ("pca",)
    assert load_run(snap.run_path).train_config == tiny_config()
    log = (warm_manager.jobs_dir / job.id / "worker.log").read_text()
    assert f"saved {snap.run_path}" in log  # its output went to the job's log
    # a second manager (another server process) sees the same finished job
    assert JobManager(tmp_path / "jobs", warm=False).snapshot(job.id) == snap
    # a fresh standby for the next job, never the used one
    fresh = wait_ready(warm_manager)
    assert fresh != standby and not alive(standby)


def process_start(pid: int) -> float:
    """Unix time a process started (/proc: clock ticks after boot). The boot's Unix time comes
    from the clocks now, not /proc/stat's ``btime``: that is whole seconds, which put every
    start up to 1 s early on a machine booted late in a second."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def test_a_warm_click_waits_for_the_first_epoch_and_the_next_standby_for_the_redraw(
        warm_manager, data_dir, tmp_path):  # noqa: F811
    wait_ready(warm_manager)
    job = warm_manager.submit("a", SPLIT, tiny_config(), tmp_path / "runs", data_dir=data_dir,
                              maps=())
    snap = warm_manager.first_epoch(job.id, timeout=60)
    assert snap.history or snap.is_finished  # the click's panel opens with something to draw
    over = wait_until_over(warm_manager, job.id)
    saved = next(e["t"] for e in read_events(warm_manager.jobs_dir / job.id)
                 if e["event"] == "saved")
    # the next standby warms up only after the page had time to redraw with the result
    fresh = wait_ready(warm_manager)
    assert process_start(fresh) >= saved + STANDBY_GRACE - 0.05
    assert over.status == DONE
    # a cold job (other thread count) comes back at once: nothing to wait for in the click
    cold = warm_manager.submit("b", SPLIT, tiny_config(threads=2), tmp_path / "runs",
                               data_dir=data_dir, maps=())
    first = warm_manager.first_epoch(cold.id, timeout=60)
    assert not first.history and not first.is_finished  # its interpreter is still starting
    assert wait_until_over(warm_manager, cold.id).status == DONE


def test_jobs_that_do_not_fit_the_standby_start_cold(warm_manager, data_dir,  # noqa: F811
                                                     tmp_path):
    standby = wait_ready(warm_manager)
    other = warm_manager.submit("a", SPLIT, tiny_config(threads=2), tmp_path / "runs",
                                data_dir=data_dir, maps=())
    assert read_job(warm_manager.jobs_dir / other.id)["warm"] is False
    assert other.pid != standby
    assert wait_until_over(warm_manager, other.id).status == DONE
    assert warm_manager.standby.pid == standby and alive(standby)  # still waiting, unused


def test_a_warm_job_can_be_stopped_and_cancelled_and_others_see_it_alive(
        warm_manager, data_dir, tmp_path):  # noqa: F811
    wait_ready(warm_manager)
    job = warm_manager.submit("a", SPLIT, slow_config(), tmp_path / "runs", data_dir=data_dir,
                              maps=())
    wait_for(warm_manager, job.id, training)
    # another server process sees a live worker although its command line names no job
    other = JobManager(tmp_path / "jobs", warm=False).snapshot(job.id)
    assert other.worker_alive and other.status == "running"
    assert pid_is_worker(job.pid, job.id, warm_manager.jobs_dir / job.id)
    assert not pid_is_worker(job.pid, "0123456789ab", warm_manager.jobs_dir / "0123456789ab")
    assert warm_manager.standby.pid is None  # no warm-up while a job trains
    warm_manager.cancel(job.id)
    snap = warm_manager.snapshot(job.id)
    assert snap.status == CANCELLED and not snap.worker_alive and not alive(job.pid)
    assert not list((tmp_path / "runs").glob("*"))  # nothing saved, no .tmp-* folder

    pid = wait_ready(warm_manager)
    job = warm_manager.submit("a", SPLIT, slow_config(), tmp_path / "runs", data_dir=data_dir,
                              maps=())
    assert job.pid == pid
    wait_for(warm_manager, job.id, training)
    warm_manager.stop(job.id)
    snap = wait_until_over(warm_manager, job.id)
    assert snap.status == DONE and 1 <= len(snap.history) < 1000


def test_closing_the_manager_ends_its_standby_and_the_switch_turns_it_off(
        data_dir, tmp_path, monkeypatch):  # noqa: F811
    with JobManager(tmp_path / "jobs", warm=True, warm_data_dir=data_dir) as manager:
        pid = wait_ready(manager)
    assert wait_gone(pid)
    monkeypatch.setenv("RECSYS_WARM_WORKER", "0")
    assert JobManager(tmp_path / "jobs").standby is None


PARENT = """
import sys, time
from recsys.jobs.manager import JobManager
manager = JobManager(sys.argv[1], warm=True, warm_data_dir=sys.argv[2])
while not manager.standby.is_ready():
    time.sleep(0.05)
print(manager.standby.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_no_standby_survives_its_server_being_killed(data_dir, tmp_path, how):  # noqa: F811
    """A server killed without a chance to clean up (SIGKILL) or ended normally: its
    waiting standby ends by itself within seconds."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "jobs"), data_dir],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1],
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"the parent printed {line!r}"
        standby = int(line)
        assert alive(standby)
        cmdline = Path(f"/proc/{standby}/cmdline").read_bytes().decode()
        assert "recsys.jobs.standby" in cmdline and str(parent.pid) in cmdline
        parent.send_signal(getattr(signal, how))
        parent.wait(timeout=30)
        assert wait_gone(standby), f"standby {standby} outlived its parent ({how})"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_the_standby_protocol_by_hand(data_dir, tmp_path):  # noqa: F811
    """What a standby says and does on its own: ``ready`` on stdout, then exit 0 on EOF."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "recsys.jobs.standby_process", "--parent", str(os.getpid()),
         "--data-dir", data_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).parents[1])
    try:
        assert proc.stdout.readline().strip() == READY
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
