"""What keeps the Train page's "Done" close to the save: JobManager.next_milestone, which the
job panel waits on between redraws. Jobs here are folders written by the test (a job.json and
a progress file a thread appends to, as a worker does), so no worker process is started."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from recsys.jobs.manager import DONE, FAILED, RUNNING, JobManager, append_event

JOB_ID = "abcdef012345"
# A milestone is seen within one poll of the file growing; the margin covers a busy 2-core
# machine (a thread woken late, the events read and parsed).
POLL = 0.02
LATE = 0.5


def fake_job(jobs: Path, *events: dict) -> Path:
    """A job whose worker is still starting (no pid yet: alive for START_GRACE), with these
    events already written."""
    folder = jobs / JOB_ID
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps(
        {"id": JOB_ID, "owner": "o", "submitted": time.time(), "pid": None, "maps": [],
         "train": {"model": "mf-als", "epochs": 15, "refit": True}}))
    for event in events:
        append_event(folder, event.pop("event"), **event)
    return folder


def epoch(n: int) -> dict:
    return {"event": "epoch", "stats": {"epoch": n, "loss": 1.0 / n}}


def later(seconds: float, folder: Path, *events: dict) -> threading.Thread:
    """Appends ``events`` to the job's progress file after ``seconds``, as its worker would."""
    def write() -> None:
        time.sleep(seconds)
        for event in events:
            append_event(folder, event.pop("event"), **event)
    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.fixture
def manager(tmp_path):
    return JobManager(tmp_path / "jobs", warm=False)


def timed(manager: JobManager, timeout: float):
    start = time.monotonic()
    snap = manager.next_milestone(JOB_ID, timeout, poll=POLL)
    return snap, time.monotonic() - start


def test_the_save_is_seen_within_a_poll_not_at_the_timeout(manager):
    folder = fake_job(manager.jobs_dir, {"event": "phase", "name": "fit"}, epoch(1))
    writer = later(0.3, folder, {"event": "phase", "name": "test"},
                   {"event": "saved", "path": str(folder / "run")})
    snap, waited = timed(manager, timeout=5.0)
    writer.join()
    assert snap.status == DONE and snap.run_path == folder / "run"
    assert 0.3 <= waited < 0.3 + LATE  # not the 5 s timeout


def test_more_epochs_are_no_milestone_the_first_one_is(manager):
    folder = fake_job(manager.jobs_dir, {"event": "phase", "name": "fit"}, epoch(1))
    writer = later(0.1, folder, epoch(2), epoch(3))
    snap, waited = timed(manager, timeout=0.6)
    writer.join()
    assert snap is None and waited >= 0.6  # a redraw waits for its timer, as before
    assert len(manager.snapshot(JOB_ID).history) == 3

    (folder / "progress.jsonl").write_text("")
    append_event(folder, "phase", name="fit")  # training, no curves yet
    writer = later(0.2, folder, epoch(1))
    snap, waited = timed(manager, timeout=5.0)
    writer.join()
    assert snap.status == RUNNING and len(snap.history) == 1 and waited < 0.2 + LATE


def test_a_failure_is_a_milestone(manager):
    folder = fake_job(manager.jobs_dir, {"event": "phase", "name": "fit"}, epoch(1))
    writer = later(0.2, folder, {"event": "failed", "error": "loss is nan"})
    snap, waited = timed(manager, timeout=5.0)
    writer.join()
    assert snap.status == FAILED and snap.error == "loss is nan" and waited < 0.2 + LATE


def test_finished_and_unknown_jobs_have_no_next_milestone(manager):
    folder = fake_job(manager.jobs_dir, epoch(1))
    append_event(folder, "saved", path=str(folder / "run"))
    for job_id in (JOB_ID, "0123456789ab", "../../etc"):
        start = time.monotonic()
        assert manager.next_milestone(job_id, 5.0, poll=POLL) is None
        assert time.monotonic() - start < LATE  # at once, not after the timeout


# ---------------------------------------------------------------------- the Train page
@pytest.fixture
def served_runs(tmp_path):
    """A runs folder with one pinned popularity run, served to AppTest visitors (the app's
    cached job manager is made afresh for it, and dropped after)."""
    from recsys.data.loading import load_movielens
    from recsys.data.protocol import SplitConfig
    from recsys.errors import DataUnavailableError
    from recsys.models.config import TrainConfig
    from recsys.storage.runs import pin_run, train_run
    from tests.apptest import runs_served

    try:
        ml = load_movielens(download=False, progress=False)
    except DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"MovieLens 100K unavailable: {err}")
    from ui import shared

    run = train_run(ml, SplitConfig(), TrainConfig.for_model("popularity"),
                    tmp_path / "popularity-default")
    pin_run(tmp_path, run.name)
    shared._job_manager.clear()  # the process's job manager: this folder's while the test runs
    try:
        with runs_served(tmp_path):
            yield tmp_path
    finally:
        shared._job_manager.clear()  # later tests get a manager of their own runs folder


def test_the_leaderboard_turns_to_a_jobs_protocol_once_its_run_is_saved(served_runs):
    """Pressing Train reruns only the training section (a fragment): the leaderboard below
    switches to the job's protocol on the page's next whole run after the save."""
    from recsys.data.protocol import SplitConfig
    from recsys.lessons.leaderboard import protocol_key
    from tests.apptest import ok, open_page, poll

    at = open_page("pages/train.py")
    default = protocol_key(SplitConfig())
    assert at.selectbox(key="train_protocol").value == default
    at.selectbox(key="train_model").select("popularity").run()
    at.number_input(key="train_test_fraction").set_value(0.25)
    ok(at.button(key="train_submit").click().run())
    poll(at, lambda a: any("now *your* active model" in s.value for s in a.success))
    ok(at.run())  # the page's next whole run (in a browser: the panel's next tick)
    assert at.selectbox(key="train_protocol").value == protocol_key(SplitConfig(test_fraction=0.25))
    assert len(at.dataframe[0].value) == 1  # the new run alone on its protocol

    # a visitor who picked a protocol after pressing Train keeps it
    at.number_input(key="train_test_fraction").set_value(0.3)
    ok(at.button(key="train_submit").click().run())
    at.selectbox(key="train_protocol").select(default).run()
    poll(at, lambda a: any("now *your* active model" in s.value for s in a.success))
    assert ok(at.run()).selectbox(key="train_protocol").value == default
