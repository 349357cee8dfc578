"""Every page of the Streamlit app under ``streamlit.testing.v1.AppTest``.

Runs go to a temporary directory (``RECSYS_RUNS_DIR``), so the user's own runs are never
touched. The module trains and pins the default model once in-process; one test starts from
an empty folder to check that the first launch trains it in a worker process.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from recsys.data.loading import load_movielens
from recsys.data.protocol import SplitConfig
from recsys.errors import DataUnavailableError
from recsys.jobs.manager import new_run_dir
from recsys.models.config import TrainConfig
from recsys.storage.runs import list_runs, pin_run, pinned_run_name, train_run, unpin_run

try:
    ML = load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

from streamlit.testing.v1 import AppTest  # noqa: E402  (after the skip: slow import)

from tests.apptest import APP, ok, open_page, poll, runs_served  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("streamlit_app.py", "pages/recommendations.py", "pages/similar_movies.py",
         "pages/embedding_map.py", "pages/profile.py", "pages/train.py", "pages/tour.py",
         "pages/compare.py")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    run = train_run(ML, SplitConfig(), TrainConfig(epochs=5), path / "mf-bpr-default")
    pin_run(path, run.name)
    with runs_served(path):
        yield path


@pytest.fixture
def app(runs_dir):
    return ok(AppTest.from_file(APP, default_timeout=120).run())


def page(at: AppTest, path: str) -> AppTest:
    at.query_params.clear()  # as in a browser: the sidebar's page links carry no query params
    at.switch_page(path).run()
    return ok(at)


def frame_with(at: AppTest, column: str, nth: int = 0):
    """The ``nth`` dataframe on the page that has ``column`` (dataframes carry no key)."""
    return [d.value for d in at.dataframe if column in d.value.columns][nth]


# ---------------------------------------------------------------------- frame and home
def test_home_draws_navigation_pinned_model_and_data(app, runs_dir):
    assert app.title[0].value.endswith("MovieLens embeddings")
    assert "embedding" in app.markdown[0].value
    assert app.sidebar.selectbox(key="sb_run").value == pinned_run_name(runs_dir)
    assert any(m.label == "Recall@10" for m in app.sidebar.metric)
    assert {"Ratings", "Users", "Movies"} <= {m.label for m in app.metric}
    links = [link.proto.label for link in app.sidebar.get("page_link")]
    assert links == ["Home", "Guided tour", "Recommendations", "Similar movies",
                     "Embedding map", "Build your profile", "Train & evaluate", "Compare runs"]


def test_every_page_draws_its_heading_and_the_frame(runs_dir):
    for path in PAGES:
        at = open_page(path)
        assert at.title, path
        assert at.sidebar.selectbox(key="sb_run").value, path


# ---------------------------------------------------------------------- recommendations
def test_recommendations_change_with_user_and_exclude_seen(app):
    page(app, "pages/recommendations.py")
    first = frame_with(app, "because")["title"].tolist()
    assert len(first) == 10
    app.selectbox(key="rec_user").set_value(13).run()
    ok(app)
    second = frame_with(app, "because")["title"].tolist()
    assert second != first

    history = frame_with(app, "part")
    assert set(history["part"]) <= {"train", "validation", "test · liked", "test · not liked"}
    assert "validation" in set(history["part"])
    known = set(history.loc[history["part"].isin(["train", "validation"])
                            & (history["rating"] >= 4), "title"])
    assert not known & set(second), "exclude-seen is on: no known positive may be recommended"
    app.toggle(key="rec_exclude").set_value(False).run()
    with_seen = frame_with(app, "because")["title"].tolist()
    assert known & set(with_seen), "with exclude-seen off, the model re-finds seen movies"

    assert not frame_with(app, "n_shared").empty
    assert not frame_with(app, "reason", nth=1).empty


def test_recommendations_deep_link_selects_user(runs_dir):
    at = open_page("pages/recommendations.py", user="42")
    assert at.selectbox(key="rec_user").value == 42


@pytest.mark.parametrize("value", ["[Session expired](https://example.org)",
                                   "![x](http://127.0.0.1:9/x.png)", "<b>x</b>", "-5", "1e9"])
def test_link_values_are_refused_and_shown_as_plain_text(runs_dir, value):
    at = open_page("pages/recommendations.py", user=value)
    warning = next(w.value for w in at.warning if "Ignoring the link" in w.value)
    for char in "[]()!<>":  # every markdown character arrives escaped
        assert all(warning[i - 1] == "\\" for i, c in enumerate(warning) if c == char), warning
    assert at.selectbox(key="rec_user").value != value


def test_state_survives_navigation(app):
    page(app, "pages/recommendations.py")
    app.selectbox(key="rec_user").set_value(13).run()
    app.radio(key="rec_scoring").set_value("cosine").run()
    page(app, "pages/profile.py")
    app.multiselect(key="prof_liked").set_value([50, 181]).run()
    page(app, "pages/similar_movies.py")
    app.selectbox(key="sim_movie").set_value(1).run()
    page(app, "pages/recommendations.py")
    assert app.selectbox(key="rec_user").value == 13
    assert app.radio(key="rec_scoring").value == "cosine"
    page(app, "pages/profile.py")
    assert app.multiselect(key="prof_liked").value == [50, 181]
    assert app.query_params["likes"] == ["50,181"] or app.query_params["likes"] == "50,181"
    page(app, "pages/similar_movies.py")
    assert app.selectbox(key="sim_movie").value == 1


# ---------------------------------------------------------------------- other pages
def test_similar_movies_search_and_scoring(app):
    page(app, "pages/similar_movies.py")
    app.text_input(key="sim_query").input("star wars").run()
    ok(app)
    movie = app.selectbox(key="sim_movie")
    assert "Star Wars" in movie.format_func(movie.value)
    cosine = frame_with(app, "also_cooccurrence")["title"].tolist()
    assert not frame_with(app, "also_embedding").empty
    app.radio(key="sim_lens").set_value("dot").run()
    assert frame_with(app, "also_cooccurrence")["title"].tolist() != cosine
    assert any(m.label == "IVF Recall@10" for m in app.metric)

    app.text_input(key="sim_query").input("no such film [zzz](x)").run()
    assert any("No title contains" in i.value and "\\[zzz\\]" in i.value for i in ok(app).info)


def test_a_page_shows_expected_errors_and_never_hides_a_bug(app, monkeypatch):
    """Similar movies: a RecsysError from the core is a message on the page; a numpy
    ValueError from a bug is not dressed up as one: it stays an exception."""
    from recsys.errors import BadInputError
    from recsys.serving import catalog

    def refuse(*args, **kwargs):
        raise BadInputError("this lens needs item vectors")

    def bug(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(catalog, "similar_movies", refuse)
    page(app, "pages/similar_movies.py")
    assert any("this lens needs item vectors" in e.value for e in app.error)
    monkeypatch.setattr(catalog, "similar_movies", bug)
    app.run()
    assert any("could not be broadcast" in e.value for e in app.exception)
    assert not any("could not be broadcast" in e.value for e in app.error)


def test_embedding_map_draws_every_movie_and_lists_a_selection(app):
    page(app, "pages/embedding_map.py")
    assert app.title[0].value == "Embedding map"
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["type"] == "scattergl"
    assert [t["name"] for t in spec["data"]] == ["other movies", "Children's"]
    app.selectbox(key="map_genre").set_value("all genres").run()
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert len(spec["data"]) > 5  # one trace per genre colour
    app.text_input(key="map_search").input("star wars").run()
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["data"][-1]["name"] == "search hits"

    # A lasso selection, as the browser reports it (customdata arrives as {"0": id}).
    app.session_state["map_chart"] = {"selection": {
        "points": [{"customdata": {"0": 50}}, {"customdata": [181]}],
        "point_indices": [0, 1], "box": [], "lasso": []}}
    ok(app.run())
    assert any(h.value == "2 selected movies" for h in app.subheader)
    picked = frame_with(app, "norm")
    assert {"Star Wars (1977)", "Return of the Jedi (1983)"} == set(picked["title"])
    assert len(frame_with(app, "score")) == 10

    # A movie almost nobody liked has no meaningful neighbours: said, not listed as cosine 0.
    # (Only the semantic axis draws every movie; the map holds those with enough likes.)
    app.radio(key="map_view").set_value("axis").run()
    app.session_state["map_chart"] = {"selection": {
        "points": [{"customdata": [1682]}], "point_indices": [0], "box": [], "lasso": []}}
    ok(app.run())
    assert any("fewer than 5 known likes" in i.value for i in app.info)


def test_profile_folds_in_likes_with_sources(app):
    page(app, "pages/profile.py")
    assert app.title[0].value == "Build your profile"
    assert set(frame_with(app, "source")["source"]) == {"popularity"}
    app.multiselect(key="prof_liked").set_value([50, 181]).run()  # Star Wars, Return of the Jedi
    ok(app)
    recs = frame_with(app, "source")
    assert not {"Star Wars (1977)", "Return of the Jedi (1983)"} & set(recs["title"])
    assert any("collaborative" in i.value and "measured best for 2 likes" in i.value
               for i in app.info)
    from recsys.serving.coldstart import blend_weight

    # the disabled slider shows the weight in use (the module's pinned run is an mf-bpr)
    assert app.slider(key="prof_blend").value == pytest.approx(blend_weight(2, "mf-bpr"))
    assert "popularity" not in set(recs["source"])
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["data"][-1]["name"] == "you"
    app.multiselect(key="prof_liked").set_value([50, 181, 172, 174, 1, 100]).run()
    assert set(frame_with(app, "source")["source"]) <= {
        "collaborative (fold-in)", "content (title & genres)", "both (fold-in + content)"}
    # A lecturer sets the blend by hand: content only.
    app.toggle(key="prof_by_hand").set_value(True).run()
    app.slider(key="prof_blend").set_value(0.0).run()
    assert set(frame_with(ok(app), "source")["source"]) == {"content (title & genres)"}
    assert any("set by hand" in i.value for i in app.info)


def test_profile_likes_come_from_the_link(runs_dir):
    at = open_page("pages/profile.py", likes="50,181", dislikes="1,nonsense")
    assert at.multiselect(key="prof_liked").value == [50, 181]
    assert at.multiselect(key="prof_disliked").value == []
    assert any("Ignoring the link" in w.value for w in at.warning)


# ---------------------------------------------------------------------- training
def test_training_in_a_worker_adds_a_leaderboard_row_for_this_visitor_only(app, runs_dir):
    page(app, "pages/train.py")
    before = len(frame_with(app, "Recall@10"))
    app.selectbox(key="train_model").select("popularity").run()
    labels = {n.label for n in app.number_input}
    assert "Embedding dimension" not in labels  # popularity reads no such setting
    app.button(key="train_submit").click().run()
    ok(app)
    assert app.query_params["job"]
    poll(app, lambda at: any("now *your* active model" in s.value for s in at.success))
    # "Done" is drawn as soon as the run is saved; the panel's next tick (here: the next run)
    # redraws the page with the new run active.
    assert app.session_state["sb_run"] == "mf-bpr-default"
    ok(app.run())
    code = next(e for e in app.main.expander if e.label == "The code that trained popularity")
    assert not code.code  # closed: its source is not sent (the browser would highlight it)
    app.session_state["code_view_popularity_only"] = True  # as a click on the expander does
    code = next(e for e in ok(app.run()).main.expander
                if e.label == "The code that trained popularity")
    assert "def _fit" in code.code[0].value  # beside the job: the code that just ran
    board = frame_with(app, "Recall@10")
    assert len(board) == before + 1
    assert "popularity" in set(board["model"])
    assert app.session_state["sb_run"].startswith("popularity-")  # this session only
    assert pinned_run_name(runs_dir) == "mf-bpr-default"  # everyone else keeps the pin

    # A new visitor (no session, no ?run=) still gets the pinned run, not the newest one.
    fresh = ok(AppTest.from_file(APP, default_timeout=120).run())
    assert fresh.sidebar.selectbox(key="sb_run").value == "mf-bpr-default"

    def job_folders() -> int:  # the lock files beside them are not jobs
        return sum(p.is_dir() for p in (runs_dir / ".jobs").iterdir())

    jobs_before = job_folders()
    app.button(key="train_baselines").click().run()
    assert any("Training baselines" in p.proto.text for p in ok(app).get("progress"))
    wanted = {"popularity", "itemknn", "ease", "svd", "mf-bpr"}
    poll(app, lambda at: wanted <= set(frame_with(at, "Recall@10")["model"]), timeout=240)
    # itemknn, ease and svd (popularity was trained above): each in a worker job
    assert job_folders() - jobs_before == 3
    assert app.session_state["sb_run"].startswith("popularity-")  # still this visitor's run
    assert any("beats popularity" in s.value for s in [*app.success, *app.warning])


def test_form_shows_only_the_fields_the_model_reads(app):
    page(app, "pages/train.py")
    app.selectbox(key="train_model").select("mf-bpr").run()
    labels = {n.label for n in ok(app).number_input}
    assert {"Embedding dimension", "Learning rate", "Negatives per positive"} <= labels
    assert not {"Neighbours per movie", "EASE λ", "ALS confidence α"} & labels
    app.selectbox(key="train_model").select("ease").run()
    labels = {n.label for n in ok(app).number_input}
    assert "EASE λ" in labels and "Learning rate" not in labels


def test_a_job_link_shows_progress_to_others_and_stop_only_to_its_owner(runs_dir, monkeypatch):
    """With a lecturer configured (a class shares the server), the ?job= link of a running job
    (shared, or a reload: a new browser session) shows its progress and the form it was
    trained with, but Stop and Cancel stay with the session that started it, and the
    lecturer's. (Without a lecturer, test_browser's reload keeps its buttons.)"""
    monkeypatch.setenv("RECSYS_LECTURER_KEY", "k3y-of-the-lecturer")
    at = open_page("pages/train.py")
    at.selectbox(key="train_model").select("mf-bpr").run()
    at.number_input(key="train_mf-bprepochs").set_value(200)
    at.number_input(key="train_mf-bprlr").set_value(0.02)
    at.button(key="train_submit").click().run()
    job_id = ok(at).query_params["job"]
    job_id = job_id[0] if isinstance(job_id, list) else job_id
    assert {"train_stop", "train_cancel"} <= {b.key for b in at.button}  # the owner's

    other = open_page("pages/train.py", job=job_id)
    assert any(h.value.startswith("Training job") for h in other.subheader)
    assert not {"train_stop", "train_cancel"} & {b.key for b in other.button}
    assert any("Progress only" in c.value for c in other.caption)
    # ... and the form the job was trained with, not the default model's
    assert other.selectbox(key="train_model").value == "mf-bpr"
    assert other.number_input(key="train_mf-bprepochs").value == 200
    assert other.number_input(key="train_mf-bprlr").value == pytest.approx(0.02)

    other.text_input(key="lecturer_entry").input("wrong").run()
    assert not {"train_cancel"} & {b.key for b in ok(other).button}
    other.text_input(key="lecturer_entry").input("k3y-of-the-lecturer").run()
    other.button(key="train_cancel").click().run()  # the lecturer may cancel anyone's job
    poll(other, lambda a: any("Cancelled" in i.value for i in a.info))
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".mf-bpr")]


def test_a_runs_folder_that_cannot_hold_jobs_says_so(app, monkeypatch):
    """A read-only (or full) runs folder: the Train page says training is unavailable and why,
    with no traceback (as root, a chmod cannot make one, so the folder's refusal is faked)."""
    from recsys.jobs.manager import JobManager
    from ui import shared

    def refuse(self, jobs_dir, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(jobs_dir))

    shared._job_manager.clear()
    monkeypatch.setattr(JobManager, "__init__", refuse)
    try:
        page(app, "pages/train.py")
        assert any("Training is unavailable here" in e.value and "Permission denied" in e.value
                   for e in app.error)
    finally:
        monkeypatch.undo()
        shared._job_manager.clear()


def test_with_a_lecturer_key_only_the_lecturer_pins(app, runs_dir, monkeypatch):
    if not (runs_dir / "popularity-pin").exists():
        train_run(ML, SplitConfig(), TrainConfig.for_model("popularity"),
                  runs_dir / "popularity-pin")
    app.run()
    app.sidebar.selectbox(key="sb_run").select("popularity-pin").run()
    page(app, "pages/train.py")
    assert app.button(key="train_pin")  # no key set: one person's app, anyone may pin
    assert any("No lecturer key is set" in c.value for c in app.sidebar.caption)
    monkeypatch.setenv("RECSYS_LECTURER_KEY", "k3y")
    app.run()
    assert "train_pin" not in {b.key for b in ok(app).button}
    assert any("Only the lecturer may pin" in c.value for c in app.caption)


def test_a_reload_of_an_old_mf_als_job_shows_its_lambda(runs_dir):
    """A job.json written before mf-als had als_lambda (kept in weight_decay) seeds the form
    through the same migration as a saved run; a damaged one seeds nothing, no traceback."""
    jobs = runs_dir / ".jobs"
    jobs.mkdir(exist_ok=True)
    cases = {"0123456789ab": {"model": "mf-als", "weight_decay": 3.0, "epochs": 7},
             "0123456789ac": {"model": "mf-als", "epochs": "many"}}
    for job_id, train in cases.items():
        (jobs / job_id).mkdir()
        (jobs / job_id / "job.json").write_text(json.dumps({
            "id": job_id, "owner": "someone", "split": {}, "train": train,
            "out_dir": str(runs_dir / f"never-{job_id}"), "submitted": time.time() - 60,
            "pid": None}))
    old = open_page("pages/train.py", job="0123456789ab")
    assert old.selectbox(key="train_model").value == "mf-als"
    assert old.number_input(key="train_mf-alsals_lambda").value == pytest.approx(3.0)
    assert old.number_input(key="train_mf-alsepochs").value == 7
    damaged = open_page("pages/train.py", job="0123456789ac")
    assert damaged.selectbox(key="train_model").value == "mf-als"  # the default form
    assert damaged.number_input(key="train_mf-alsepochs").value == 15


# ---------------------------------------------------------------------- runs that cannot serve
def test_pages_explain_what_a_run_without_embeddings_cannot_do(runs_dir):
    out = new_run_dir(runs_dir, "popularity")
    train_run(ML, SplitConfig(), TrainConfig(model="popularity"), out)
    expected = {"streamlit_app.py": "no movie vectors to draw",
                "pages/embedding_map.py": "no movie vectors to map",
                "pages/similar_movies.py": "no movie vectors to index",
                "pages/recommendations.py": "no user vectors"}
    for path, text in expected.items():
        at = open_page(path, run=out.name)
        assert any(text in i.value for i in at.info), (path, [i.value for i in at.info])
    at = open_page("pages/profile.py", run=out.name, likes="50")
    assert any("cannot score a new user" in e.value for e in at.error)


def test_runs_of_other_data_are_listed_apart_never_served(runs_dir):
    source = runs_dir / "mf-bpr-default"
    bad = runs_dir / "zz-other-data"
    shutil.copytree(source, bad, ignore=shutil.ignore_patterns("projections"))
    try:
        info = json.loads((bad / "dataset.json").read_text())
        (bad / "dataset.json").write_text(json.dumps({**info, "fingerprint": "other"}))
        os.utime(bad / "weights.npz")  # the newest run: must still not become the default
        at = open_page("pages/train.py", run=bad.name)
        assert bad.name not in at.sidebar.selectbox(key="sb_run").options
        assert any("Ignoring the link" in w.value for w in at.warning)
        assert any("trained on other data" in e.label for e in at.expander)
    finally:
        shutil.rmtree(bad)


@pytest.mark.parametrize("damage", ["truncated weights", "config is a list", "history null"])
def test_a_damaged_run_beside_good_ones_leaves_every_page_working(runs_dir, damage):
    bad = runs_dir / "zz-damaged"
    shutil.copytree(runs_dir / "mf-bpr-default", bad,
                    ignore=shutil.ignore_patterns("projections"))
    try:
        if damage == "truncated weights":
            data = (bad / "weights.npz").read_bytes()
            (bad / "weights.npz").write_bytes(data[: len(data) // 2])
        elif damage == "config is a list":
            (bad / "config.json").write_text("[1, 2]")
        else:
            (bad / "history.json").write_text("null")
        for path in PAGES:
            at = open_page(path)
            assert any("zz\\-damaged" in w.value for w in at.sidebar.warning), path
    finally:
        shutil.rmtree(bad)


def test_a_bad_data_folder_gives_an_error_box(runs_dir, tmp_path, monkeypatch):
    (tmp_path / "u.data").write_text("not\ta\tratings\tfile\n")
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path))
    from ui import shared  # the page's own module: its cached dataset is cleared

    shared._load_dataset.clear()
    try:
        at = open_page("pages/recommendations.py")
        assert at.error and "MovieLens" in at.error[0].value
    finally:
        monkeypatch.delenv("RECSYS_DATA_DIR")
        shared._load_dataset.clear()


def test_first_launch_trains_pins_the_default_then_prepares_the_class_set(tmp_path, monkeypatch):
    """... then prepares the rest of the class set in the background (here without maps)."""
    monkeypatch.setenv("RECSYS_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("RECSYS_CLASS_SET", "no-maps")
    from recsys.jobs import class_set
    from ui import shared

    shared._job_manager.clear()  # a manager over this runs folder
    try:
        at = ok(AppTest.from_file(APP, default_timeout=120).run())
        assert any("First launch" in i.value for i in at.info)
        poll(at, lambda a: bool(list_runs(tmp_path)) and not any(
            "First launch" in i.value for i in a.info), timeout=180)
        assert pinned_run_name(tmp_path) == "default"
        assert at.sidebar.selectbox(key="sb_run").value == pinned_run_name(tmp_path)
        deadline = time.time() + 180
        while (now := class_set.preparation(tmp_path)) is None or now.running:
            assert time.time() < deadline, now
            time.sleep(0.5)
        assert now.message == "the class set is ready", now
        assert class_set.class_status(tmp_path, shared.dataset()).complete
        unpin_run(tmp_path)  # `recsys pin --clear`: the app must not pin it back
        ok(AppTest.from_file(APP, default_timeout=120).run())
        assert pinned_run_name(tmp_path) is None
    finally:
        shared._job_manager.clear()
