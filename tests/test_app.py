"""Every page of the Streamlit app under ``streamlit.testing.v1.AppTest``.

Runs go to a temporary directory (``RECSYS_RUNS_DIR``), so the user's own runs are never
touched; the first app run trains the default model there, as on a fresh machine.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from recsys.config import SplitConfig, TrainConfig
from recsys.data import DataUnavailableError, load_movielens
from recsys.jobs import new_run_dir
from recsys.runs import list_runs, train_run

try:
    load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

from streamlit.testing.v1 import AppTest  # noqa: E402  (after the skip: slow import)

APP = "../streamlit_app.py"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RECSYS_RUNS_DIR", str(path))
        yield path


@pytest.fixture
def app(runs_dir):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page(at: AppTest, path: str) -> AppTest:
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame_with(at: AppTest, column: str, nth: int = 0):
    """The ``nth`` dataframe on the page that has ``column`` (dataframes carry no key)."""
    return [d.value for d in at.dataframe if column in d.value.columns][nth]


def test_first_launch_trains_default_model_and_draws_sidebar(app, runs_dir):
    runs = list_runs(runs_dir)
    assert len(runs) >= 1 and runs[-1].name.startswith("mf-bpr-")
    picker = app.sidebar.selectbox(key="sb_run")
    assert picker.value in {r.name for r in runs}
    assert any("Recall@10" == m.label for m in app.sidebar.metric)
    assert any("ratings" in c.value for c in app.sidebar.caption)


def test_home_explains_and_links(app):
    page(app, "pages/home.py")
    assert app.title[0].value.endswith("MovieLens embeddings")
    assert "embedding" in app.markdown[0].value
    labels = {m.label for m in app.metric}
    assert {"Ratings", "Users", "Movies"} <= labels


def test_recommendations_change_with_user_and_exclude_seen(app):
    page(app, "pages/recommendations.py")
    users = app.selectbox(key="rec_user")
    first = frame_with(app, "because")["title"].tolist()
    assert len(first) == 10
    users.set_value(13).run()
    assert not app.exception
    second = frame_with(app, "because")["title"].tolist()
    assert second != first

    history = frame_with(app, "part")
    known = set(history.loc[(history["part"] == "train") & (history["rating"] >= 4), "title"])
    assert not known & set(second), "exclude-seen is on: no known positive may be recommended"
    app.toggle(key="rec_exclude").set_value(False).run()
    with_seen = frame_with(app, "because")["title"].tolist()
    assert known & set(with_seen), "with exclude-seen off, the model re-finds seen movies"

    assert not frame_with(app, "n_shared").empty
    assert not frame_with(app, "reason", nth=1).empty


def test_recommendations_deep_link_selects_user(runs_dir):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["user"] = "42"
    at.run()
    page(at, "pages/recommendations.py")
    assert at.selectbox(key="rec_user").value == 42


def test_similar_movies_search_and_scoring(app):
    page(app, "pages/similar_movies.py")
    app.text_input(key="sim_query").input("star wars").run()
    assert not app.exception
    movie = app.selectbox(key="sim_movie")
    assert "Star Wars" in movie.format_func(movie.value)
    cosine = frame_with(app, "also_cooccurrence")["title"].tolist()
    assert not frame_with(app, "also_embedding").empty
    app.radio(key="sim_scoring").set_value("dot").run()
    assert frame_with(app, "also_cooccurrence")["title"].tolist() != cosine
    assert any(m.label == "IVF Recall@10" for m in app.metric)

    app.text_input(key="sim_query").input("no such film zzz").run()
    assert not app.exception and any("No title contains" in i.value for i in app.info)


def test_embedding_map_draws_every_movie_and_lists_a_selection(app):
    page(app, "pages/embedding_map.py")
    assert app.title[0].value == "Embedding map"
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["type"] == "scattergl"
    assert len(spec["data"]) > 5  # one trace per genre colour
    app.text_input(key="map_search").input("star wars").run()
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["data"][-1]["name"] == "search hits"

    # A lasso selection, as the browser reports it (customdata arrives as {"0": id}).
    app.session_state["map_chart"] = {"selection": {
        "points": [{"customdata": {"0": 50}}, {"customdata": [181]}],
        "point_indices": [0, 1], "box": [], "lasso": []}}
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert any(h.value == "2 selected movies" for h in app.subheader)
    picked = frame_with(app, "norm")
    assert {"Star Wars (1977)", "Return of the Jedi (1983)"} == set(picked["title"])
    assert len(frame_with(app, "score")) == 10


def test_profile_folds_in_likes_with_sources(app):
    page(app, "pages/profile.py")
    assert app.title[0].value == "Build your profile"
    assert set(frame_with(app, "source")["source"]) == {"popularity"}
    app.multiselect(key="prof_liked").set_value([50, 181]).run()  # Star Wars, Return of the Jedi
    assert not app.exception, [e.value for e in app.exception]
    recs = frame_with(app, "source")
    assert not {"Star Wars (1977)", "Return of the Jedi (1983)"} & set(recs["title"])
    assert any("content similarity is blended" in i.value for i in app.info)
    assert "popularity" not in set(recs["source"])
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert spec["data"][-1]["name"] == "you"
    app.multiselect(key="prof_liked").set_value([50, 181, 172, 174, 1, 100]).run()
    assert set(frame_with(app, "source")["source"]) == {"collaborative (fold-in)"}


def test_training_a_tiny_run_adds_a_leaderboard_row(app, runs_dir):
    page(app, "pages/train.py")
    before = len(frame_with(app, "Recall@10"))
    app.selectbox(key="train_model").select("popularity")
    app.button(key="train_submit").click().run()
    assert not app.exception
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.3)
        app.run()
        if any("now your active model" in s.value for s in app.success):
            break
    assert not app.exception, [e.value for e in app.exception]
    board = frame_with(app, "Recall@10")
    assert len(board) == before + 1
    assert "popularity" in set(board["model"])
    assert app.session_state["sb_run"].startswith("popularity-")  # this session only

    app.button(key="train_baselines").click().run()
    board = frame_with(app, "Recall@10")
    assert {"popularity", "itemknn", "ease", "svd", "mf-bpr"} <= set(board["model"])
    assert any("beats popularity" in s.value for s in [*app.success, *app.warning])


def test_pages_explain_what_a_run_without_embeddings_cannot_do(runs_dir):
    out = new_run_dir(runs_dir, "popularity")
    train_run(load_movielens(progress=False), SplitConfig(), TrainConfig(model="popularity"), out)
    expected = {"pages/home.py": "no movie embeddings to draw",
                "pages/embedding_map.py": "no movie embeddings to map",
                "pages/similar_movies.py": "no movie embeddings to index",
                "pages/recommendations.py": "no user vectors"}
    for path, text in expected.items():
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["run"] = out.name
        at.run()
        page(at, path)
        assert any(text in i.value for i in at.info), (path, [i.value for i in at.info])
    page(at, "pages/profile.py")
    at.multiselect(key="prof_liked").set_value([50]).run()
    assert not at.exception and any("cannot score a new user" in e.value for e in at.error)


def test_a_run_of_other_data_shows_an_error_not_a_traceback(runs_dir):
    source = next(p for p in list_runs(runs_dir) if p.name.startswith("mf-bpr-"))
    bad = runs_dir / f"other-data-{source.name}"
    shutil.copytree(source, bad)
    try:
        info = json.loads((bad / "dataset.json").read_text())
        (bad / "dataset.json").write_text(json.dumps({**info, "fingerprint": "other"}))
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["run"] = bad.name
        at.run()
        page(at, "pages/recommendations.py")
        assert any("Cannot serve run" in e.value for e in at.error)
    finally:
        shutil.rmtree(bad)
