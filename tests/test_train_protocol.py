"""The Train page's leaderboard follows the protocol of the job a visitor starts: once the
job's run is saved (before, a protocol with no saved run yet is not on the board), unless the
visitor picked another protocol in the meantime."""

from __future__ import annotations

import pytest


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
    """The leaderboard switches to the job's protocol on the page's first run after the save
    (the click's own run cannot: the protocol has no saved run yet)."""
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
