"""The Train page's lessons under AppTest: negative sampling, curves overlay, vector length
vs popularity, Recall@10 by user activity, and the ``?view=`` deep link into each.

Runs go to a temporary folder (``RECSYS_RUNS_DIR``): two mf-bpr runs that differ only in
weight decay, the popularity baseline, and an mf-bpr run on another protocol.
"""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest

from recsys.data.loading import load_movielens
from recsys.data.protocol import SplitConfig
from recsys.errors import DataUnavailableError
from recsys.models.config import TrainConfig
from recsys.storage.runs import pin_run, prepare_split, train_run

try:
    ML = load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

from streamlit.testing.v1 import AppTest  # noqa: E402  (after the skip: slow import)

from tests.apptest import APP, ok, poll, runs_served  # noqa: E402

PAGE = "pages/train.py"
FAST = dict(epochs=3, refit=False, patience=0)
OTHER_PROTOCOL = SplitConfig(test_fraction=0.3)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    split = prepare_split(ML, SplitConfig())
    train_run(ML, SplitConfig(), TrainConfig(**FAST), path / "bpr-weak-decay", split=split)
    train_run(ML, SplitConfig(), TrainConfig(weight_decay=0.05, **FAST), path / "bpr-strong-decay",
              split=split)
    train_run(ML, SplitConfig(), TrainConfig.for_model("popularity"), path / "popularity",
              split=split)
    train_run(ML, OTHER_PROTOCOL, TrainConfig(epochs=2, refit=False), path / "bpr-other-split")
    pin_run(path, "bpr-weak-decay")
    with runs_served(path), pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSYS_WARM_WORKER", "0")  # no standby worker unless a test asks for one
        yield path


def open_train(view: str | None = None, **state) -> AppTest:
    """A new visitor opening the Train page (with ``?view=`` when given)."""
    at = AppTest.from_file(APP, default_timeout=120)
    if view is not None:
        at.query_params["view"] = view
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(PAGE)
    return ok(at.run())


def figure(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.key]
    assert charts, f"no chart {key}"
    return json.loads(charts[0].proto.spec)


def values(array) -> list:
    """A Plotly JSON array as a list (Plotly 6+ may encode numbers as base64 ``bdata``)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), array["dtype"]).tolist()
    return list(array)


def lesson_tab(at: AppTest):
    """The open lesson tab (the one with content)."""
    labels = {"Negative sampling", "Training curves", "Vector length vs popularity",
              "Who the model serves"}
    open_tabs = [t for t in at.tabs if t.label in labels and len(t.children)]
    assert len(open_tabs) == 1, [t.label for t in open_tabs]
    return open_tabs[0]


def headers(at: AppTest) -> list[str]:
    return [h.value for h in at.header]


def timed_run(element) -> tuple[AppTest, float]:
    start = time.perf_counter()
    at = element.run()
    return ok(at), time.perf_counter() - start


def test_negatives_view_draws_the_real_sampler_by_decile(runs_dir):
    at = open_train("negatives")
    assert headers(at)[0].startswith("Lessons")  # a link opens the lessons under the form
    assert lesson_tab(at).label == "Negative sampling"
    assert at.radio(key="train_lesson_sampling").value == "uniform"
    # the form starts on mf-als, which samples no negatives: the lesson says so
    assert any("samples no negatives" in m.value for m in lesson_tab(at).markdown)
    assert at.slider(key="train_lesson_alpha").disabled
    bars = figure(at, "negatives_chart")["data"]
    positives, negatives, expected = (values(trace["y"]) for trace in bars)
    assert sum(negatives) == pytest.approx(1.0) and sum(positives) == pytest.approx(1.0)
    assert negatives[-1] < positives[-1] / 2  # uniform: the head is under-sampled
    assert any("learns to tell popular from obscure" in i.value for i in at.info)

    at, seconds = timed_run(at.radio(key="train_lesson_sampling").set_value("popularity"))
    print(f"negatives: switch to popularity sampling {seconds:.2f} s")
    assert not at.slider(key="train_lesson_alpha").disabled
    _, popular, expected = (values(t["y"]) for t in figure(at, "negatives_chart")["data"])
    assert popular[-1] > 3 * negatives[-1]
    assert popular == pytest.approx(expected, abs=0.02)  # the draw matches the distribution
    assert any("pushed down" in i.value for i in at.info)

    at, seconds = timed_run(at.slider(key="train_lesson_alpha").set_value(1.0))
    print(f"negatives: alpha 0.75 -> 1.0 {seconds:.2f} s")
    assert values(figure(at, "negatives_chart")["data"][1]["y"])[-1] > popular[-1]
    at, seconds = timed_run(at.slider(key="train_lesson_negatives").set_value(10))
    print(f"negatives: 10 negatives per positive {seconds:.2f} s")


def test_negatives_start_from_the_forms_settings(runs_dir):
    at = open_train("negatives", **{"train_model": "mf-bpr",
                                    "train_mf-bprneg_sampling": "popularity",
                                    "train_mf-bpralpha": 0.5, "train_mf-bprnegatives": 8})
    assert at.radio(key="train_lesson_sampling").value == "popularity"
    assert at.slider(key="train_lesson_alpha").value == 0.5
    assert at.slider(key="train_lesson_negatives").value == 8
    assert any("start from the form" in m.value for m in lesson_tab(at).markdown)


def test_curves_view_overlays_runs_of_one_protocol_and_lists_others_apart(runs_dir):
    at = open_train("curves")
    assert lesson_tab(at).label == "Training curves"
    picker = at.multiselect(key="train_lesson_curve_runs")
    assert set(picker.value) == {"bpr-weak-decay", "bpr-strong-decay"}
    assert "bpr-other-split" not in picker.options and "popularity" not in picker.options
    traces = figure(at, "curves_chart")["data"]
    assert len(traces) == 4  # loss and validation recall of each run
    assert {t["name"] for t in traces} == {"mf-bpr · weight_decay=0.003",
                                           "mf-bpr · weight_decay=0.05"}
    assert all(len(values(t["y"])) == FAST["epochs"] for t in traces)
    assert any("bpr-other-split" in set(d.value["run"]) for d in at.dataframe
               if "protocol" in d.value.columns)
    at, seconds = timed_run(picker.set_value(["bpr-weak-decay"]))
    print(f"curves: deselect a run {seconds:.2f} s")
    assert len(figure(at, "curves_chart")["data"]) == 2


def test_norms_view_puts_two_weight_decays_side_by_side(runs_dir):
    at = open_train("norms")
    assert lesson_tab(at).label == "Vector length vs popularity"
    assert at.multiselect(key="train_lesson_norm_runs").value == ["bpr-weak-decay",
                                                                  "bpr-strong-decay"]
    spec = figure(at, "norms_chart")
    assert len(spec["data"]) == 2 and len(values(spec["data"][0]["x"])) == ML.n_items
    # x: each movie's likes the model was fitted on (these runs: train only, no refit), never
    # counts that include the test period's ratings
    fitted_on = prepare_split(ML, SplitConfig()).train_pos.item_counts()
    assert sorted(values(spec["data"][0]["x"])) == sorted(np.maximum(fitted_on, 1))
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    assert "weight_decay=0.003" in titles[0] and "weight_decay=0.05" in titles[1]
    lesson = next(i.value for i in at.info if "gradient steps" in i.value).replace("\\", "")
    assert "weight_decay=0.003: the most liked tenth" in lesson
    assert "weight_decay=0.05: the most liked tenth" in lesson


def test_activity_view_splits_every_leaderboard_run_and_averages_back(runs_dir):
    at = open_train("activity")
    assert lesson_tab(at).label == "Who the model serves"
    board = next(d.value for d in at.dataframe if "overall" in d.value.columns)
    leaderboard = next(d.value for d in at.dataframe if "Recall@10" in d.value.columns)
    assert set(board["run"]) == set(leaderboard["run"]) == {"bpr-weak-decay",
                                                            "bpr-strong-decay", "popularity"}
    saved = dict(zip(leaderboard["run"], leaderboard["Recall@10"], strict=True))
    for run, overall in zip(board["run"], board["overall"], strict=True):
        assert overall == pytest.approx(saved[run], abs=1e-9)
    groups = [c for c in board.columns if c.startswith(("few", "medium", "many"))]
    assert len(groups) == 3
    assert len(figure(at, "activity_chart")["data"]) == 3  # one bar trace per run
    assert any("Best per group" in i.value for i in at.info)
    why = next(i.value for i in at.info if "Why do users with few ratings" in i.value
               ).replace("\\", "")
    assert "divides a user's hits" in why and "median per group" in why
    # the ceiling it quotes is the real one: a perfect model's mean recall in the few group
    from ui.train_lessons import held_out_table

    ceilings = held_out_table(SplitConfig())
    assert ceilings["held_out"].is_monotonic_increasing  # heavier users hold out more
    assert ceilings["ceiling"].iloc[0] > ceilings["ceiling"].iloc[2]
    assert f"few {ceilings['ceiling'].iloc[0]:.2f}" in why


def test_activity_sentence_is_true_for_one_model():
    import pandas as pd

    from ui.train_lessons import activity_sentence

    groups = ["few (≤ 32 ratings)", "medium (33–88)", "many (> 88)"]
    one = pd.DataFrame({"run": ["r1"], "model": ["mf-bpr"], groups[0]: [0.198],
                        groups[1]: [0.13], groups[2]: [0.077], "overall": [0.13]})
    sentence = activity_sentence(one)
    assert "wins" not in sentence and "Only one run of mf-bpr" in sentence
    assert "few 0.198" in sentence and "Train the baselines" in sentence
    two = pd.concat([one, one.assign(run="r2", model="popularity")], ignore_index=True)
    assert activity_sentence(two).startswith("Best per group")


def test_automatic_run_names_are_shortened_for_charts():
    from ui.train_lessons import short_names, short_run_name, shortened

    assert short_run_name("mf-bpr-20261206-225927-6771") == "mf-bpr 22:59:27"
    assert short_run_name("class-mf-bpr") == "class-mf-bpr"  # a chosen name stays
    clash = short_names(["mf-bpr-20261206-225927-6771", "mf-bpr-20261207-225927-0a1b"])
    assert len(set(clash.values())) == 2  # the same time on two days: full names
    assert shortened({"mf-bpr-20261206-225927-6771": "mf-bpr · mf-bpr-20261206-225927-6771"}
                     ) == {"mf-bpr-20261206-225927-6771": "mf-bpr · mf-bpr 22:59:27"}


def test_switching_lessons_computes_only_the_open_one(runs_dir):
    at = open_train()
    assert headers(at)[0] == "Leaderboard"  # no link: the lessons follow the leaderboard
    assert lesson_tab(at).label == "Negative sampling"
    at.session_state["train_lesson"] = "Who the model serves"
    at, seconds = timed_run(at)
    print(f"tabs: open 'Who the model serves' {seconds:.2f} s")
    assert lesson_tab(at).label == "Who the model serves"
    at.session_state["train_lesson"] = "Training curves"
    at, seconds = timed_run(at)
    print(f"tabs: open 'Training curves' {seconds:.2f} s")
    assert lesson_tab(at).label == "Training curves"


@pytest.mark.parametrize("bad", ["bogus", "", "<b>x</b>"])
def test_a_bad_view_is_ignored_without_a_traceback(runs_dir, bad):
    at = open_train(bad)
    assert lesson_tab(at).label == "Negative sampling"
    assert headers(at)[0] == "Leaderboard"
    assert any("Ignoring the link" in w.value for w in at.warning)
    assert "view" not in at.query_params  # warned once, then dropped from the URL


def main_order(at: AppTest) -> list[str]:
    """The main area's elements in page order, as "type: text" lines."""
    lines = []

    def walk(node) -> None:
        children = getattr(node, "children", None)
        if children:
            for child in children.values():
                walk(child)
            return
        texts = [v for v in (getattr(node, "label", None), getattr(node, "value", None))
                 if isinstance(v, str)]
        lines.append(f"{node.type}: {' = '.join(texts)}")

    walk(at.main)
    return lines


def test_training_shows_the_job_at_the_top_on_the_standby_worker(runs_dir, monkeypatch):
    """The warm worker's life cycle seen from the page: the server's manager keeps a standby,
    Train hands it the job (no new interpreter), the job's panel comes first on the page in
    the same run as the click, and the Done box says the run is active in this tab only.
    Last in this file: it adds a run to the folder the other tests count."""
    from recsys.jobs import standby as standbys
    from recsys.jobs.manager import read_job
    from ui import shared

    monkeypatch.setenv("RECSYS_WARM_WORKER", "1")
    standbys.close_all()
    shared._job_manager.clear()  # a manager over this module's runs folder, with a standby
    at = open_train(**{"train_model": "mf-bpr"})
    try:
        (keeper,) = standbys.live()  # the page's manager's, the only one in this process
        deadline = time.monotonic() + 180
        while not keeper.is_ready():
            assert time.monotonic() < deadline, "the standby never became ready"
            time.sleep(0.1)
        standby = keeper.pid
        at.number_input(key="train_mf-bprepochs").set_value(1)
        ok(at.button(key="train_submit").click().run())
        order = main_order(at)
        job_at = next(i for i, line in enumerate(order) if "Your job" in line)
        form_at = next(i for i, line in enumerate(order) if line.startswith("selectbox: Model"))
        assert job_at < form_at, order[:12]  # the job, not the form, is where the eye is
        job = read_job(shared.runs_dir() / ".jobs" / at.session_state["train_job"])
        assert job["warm"] is True and job["pid"] == standby
        poll(ok(at), lambda a: any("this browser tab only" in s.value for s in a.success))
        ok(at.run())  # the panel's next tick: the page redrawn with the new run active
        done = next(s.value for s in at.success if "this browser tab only" in s.value)
        run_name = at.session_state["sb_run"]
        assert f"?run={run_name}" in done and "pin it below" in done
        links = [link for link in at.get("page_link")
                 if "coloured by length" in link.proto.label]
        assert len(links) == 1
        assert links[0].proto.page.endswith("embedding_map")
        assert links[0].proto.query_string in (f"colour=length&run={run_name}",
                                               f"run={run_name}&colour=length")
        assert keeper.pid != standby  # used once, never again
    finally:
        standbys.close_all()
        shared._job_manager.clear()
    assert standbys.live() == [] and keeper.pid is None
