"""The Embedding map page under AppTest: training replay, genre and length colours, neighbour
lines, the semantic axis and the deep-link parameters (docs: /work/briefs/CONTRACT.md).

Runs go to a temporary ``RECSYS_RUNS_DIR``: a default mf-bpr run (pinned, with its replay),
a copy with a damaged replay.npz and a copy without one.
"""

from __future__ import annotations

import base64
import json
import shutil

import numpy as np
import pytest

from recsys.data.loading import load_movielens, movies_for
from recsys.data.protocol import SplitConfig
from recsys.errors import DataUnavailableError
from recsys.evaluation.neighbours import MIN_POSITIVES
from recsys.lessons import projection
from recsys.models.config import TrainConfig
from recsys.serving import catalog as serving
from recsys.storage import replay
from recsys.storage.runs import load_run, pin_run, train_run

try:
    ML = load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

from streamlit.testing.v1 import AppTest  # noqa: E402  (after the skip: slow import)

from tests.apptest import APP, ok, runs_served  # noqa: E402

MAP = "pages/embedding_map.py"
EPOCHS = 5


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    run = train_run(ML, SplitConfig(), TrainConfig(epochs=EPOCHS), path / "mf-bpr-default")
    pin_run(path, run.name)
    shutil.copytree(path / run.name, path / "damaged-replay")
    (path / "damaged-replay" / replay.FILE).write_bytes(b"PK\x03\x04 not really a zip")
    shutil.copytree(path / run.name, path / "no-replay")
    (path / "no-replay" / replay.FILE).unlink()
    with runs_served(path):
        yield path


@pytest.fixture(scope="module")
def saved(runs_dir):
    run = load_run(runs_dir / "mf-bpr-default")
    return run, movies_for(ML, run.item_ids)


@pytest.fixture(scope="module")
def mapped(saved):
    """Item indices on the map: the movies with at least MIN_POSITIVES known positives."""
    run, _ = saved
    counts = serving.Catalog.build(run, ML).item_counts
    return np.flatnonzero(counts >= MIN_POSITIVES)


def open_map(**query: str) -> AppTest:
    """A new visitor opening the map through a link with ``query``."""
    at = AppTest.from_file(APP, default_timeout=120)
    for name, value in query.items():
        at.query_params[name] = value
    at.switch_page(MAP)
    return ok(at.run())


def figure(at: AppTest, nth: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[nth].proto.spec)


def values(array) -> np.ndarray:
    """A Plotly JSON array: a list, or numpy's base64 form {"dtype", "bdata", "shape"}."""
    if isinstance(array, dict):
        out = np.frombuffer(base64.b64decode(array["bdata"]), np.dtype(array["dtype"]))
        return out.reshape([int(n) for n in array["shape"].split(",")]) if "shape" in array \
            else out
    return np.array(array, dtype=float)


def trace(spec: dict, name: str) -> dict:
    return next(t for t in spec["data"] if t.get("name") == name)


def ids_of(data: dict) -> set[int]:
    return {int(i) for i in values(data["customdata"]).ravel()}


# ---------------------------------------------------------------------- the replay
def test_replay_slider_and_play_cover_every_snapshot(runs_dir, saved):
    run, _ = saved
    at = open_map(view="replay")
    assert at.radio(key="map_view").value == "replay"
    spec = figure(at)
    recorded = replay.load_replay(run.path, run.model.n_items, run.train_config.dim)
    names = [str(e) for e in recorded.epochs]
    assert names[0] == "0" and len(names) == EPOCHS + 1
    assert [f["name"] for f in spec["frames"]] == names
    steps = spec["layout"]["sliders"][0]["steps"]
    assert [s["label"] for s in steps] == names
    assert spec["layout"]["sliders"][0]["active"] == len(names) - 1
    buttons = [b["label"] for b in spec["layout"]["updatemenus"][0]["buttons"]]
    assert any("Play" in b for b in buttons) and any("Pause" in b for b in buttons)
    assert spec["layout"]["xaxis"]["autorange"] is False  # one fixed frame
    # the last frame is the PCA map of the saved model
    pca = projection.project(run.model.item_factors(), "pca")
    genre_traces = [t for t in spec["data"] if t.get("type") == "scattergl"]
    last = spec["frames"][-1]["data"]
    star_wars = int(np.flatnonzero(run.item_ids == 50)[0])
    for data, update in zip(genre_traces, last, strict=False):
        for x, y, item in zip(values(update["x"]), values(update["y"]),
                              values(data["customdata"]).ravel(), strict=True):
            if item == 50:
                np.testing.assert_allclose([x, y], pca.coords[star_wars], atol=0.02)
    assert any("snapshots" in c.value for c in at.caption)


def test_replay_follows_a_movie_along_its_path(runs_dir):
    at = open_map(view="replay", movie="50", colour="length")
    spec = figure(at)
    path = trace(spec, "its path")
    assert len(values(path["x"])) == EPOCHS + 1
    star = trace(spec, "chosen movie")
    assert values(star["customdata"]).ravel().tolist() == [50]
    # each frame moves the star along the path, and recolours lengths per epoch
    for t, frame in enumerate(spec["frames"]):
        assert values(frame["data"][-1]["x"])[0] == pytest.approx(values(path["x"])[t], abs=2e-3)
    first, last = (values(f["data"][0]["marker"]["color"]) for f in spec["frames"][::len(
        spec["frames"]) - 1])
    assert first.mean() < last.mean()  # vectors grow from their small initialisation


def test_damaged_or_missing_replay_is_said_and_the_run_still_works(runs_dir):
    at = open_map(view="replay", run="damaged-replay")
    assert any("replay of this run is unavailable" in w.value for w in at.warning)
    at.radio(key="map_view").set_value("map").run()
    assert ok(at).get("plotly_chart")  # the rest of the run still maps
    at = open_map(view="replay", run="no-replay")
    assert any("no training replay" in i.value for i in at.info)


# ---------------------------------------------------------------------- colours and lines
def test_genre_colour_puts_a_movie_in_each_of_its_genres(runs_dir, saved, mapped):
    _, movies = saved
    movies = movies.iloc[mapped]  # the map holds the movies with enough likes
    at = open_map(colour="genre", genre="Horror")
    spec = figure(at)
    horror = ids_of(trace(spec, "Horror"))
    expected = set(movies.loc[projection.genre_mask(movies["genres"], "Horror"), "item_id"])
    assert horror == expected
    assert ids_of(trace(spec, "other movies")) == set(movies["item_id"]) - expected
    both = set(movies.loc[projection.genre_mask(movies["genres"], "Comedy"), "item_id"]) \
        & expected
    assert both, "ML-100K has horror comedies"
    at.selectbox(key="map_genre").set_value("Comedy").run()
    assert both <= ids_of(trace(figure(ok(at)), "Comedy"))
    # all genres: one layer per genre, a multi-genre movie in each of its layers
    at.selectbox(key="map_genre").set_value("all genres").run()
    spec = figure(ok(at))
    assert both <= ids_of(trace(spec, "Horror")) & ids_of(trace(spec, "Comedy"))


def test_length_colour_is_the_vector_norm(runs_dir, saved, mapped):
    run, _ = saved
    at = open_map(colour="length")
    points = figure(at)["data"][0]
    np.testing.assert_allclose(values(points["marker"]["color"]),
                               np.linalg.norm(run.model.item_factors()[mapped], axis=1),
                               rtol=1e-4)
    assert at.query_params["colour"] in ("length", ["length"])


def test_a_chosen_movie_gets_lines_to_its_cosine_neighbours(runs_dir, saved):
    run, _ = saved
    at = open_map()
    at.selectbox(key="map_movie").set_value(50).run()
    spec = figure(ok(at))
    ctx = serving.Catalog.build(run, ML)
    expected = serving.similar_movies(ctx, 50, k=10, lens="cosine").embedding["item_id"]
    assert ids_of(trace(spec, "neighbours")) == set(expected)
    lines = trace(spec, "nearest neighbours (cosine)")
    xs = lines["x"]
    assert len(xs) == 30 and xs[2::3] == [None] * 10  # ten segments from the star
    star = trace(spec, "Star Wars (1977)")
    assert all(x == pytest.approx(star["x"][0]) for x in xs[0::3])
    assert at.query_params["movie"] in ("50", ["50"])


def test_rare_movie_has_no_lines_and_says_why(runs_dir):
    at = open_map(movie="1682")
    assert any("fewer than 5 known likes" in i.value for i in at.info)
    assert not [t for t in figure(at)["data"] if t.get("name") == "neighbours"]


# ---------------------------------------------------------------------- semantic axis
def test_semantic_axis_runs_from_one_genre_mean_to_the_other(runs_dir, saved):
    run, movies = saved
    at = open_map(axis="Children's..Horror")
    assert at.radio(key="map_view").value == "axis"
    at.selectbox(key="map_genre").set_value("all genres").run()
    spec = figure(ok(at))
    children, horror = trace(spec, "Children's"), trace(spec, "Horror")
    assert values(children["x"]).mean() == pytest.approx(0.0, abs=1e-6)
    assert values(horror["x"]).mean() == pytest.approx(1.0, abs=1e-6)
    assert spec["layout"]["yaxis"]["type"] == "log"  # popularity
    assert spec["layout"]["xaxis"]["title"]["text"] == "Children's → Horror"

    at.selectbox(key="map_axis_y").set_value("second axis").run()
    at.selectbox(key="map_axis2_from").set_value("Comedy").run()
    at.selectbox(key="map_axis2_to").set_value("Drama").run()
    spec = figure(ok(at))
    assert values(trace(spec, "Drama")["y"]).mean() == pytest.approx(1.0, abs=1e-6)
    at.selectbox(key="map_axis_to").set_value("Sci-Fi").run()
    assert at.query_params["axis"] in ("Children's..Sci-Fi", ["Children's..Sci-Fi"])
    assert values(trace(figure(ok(at)), "Sci-Fi")["x"]).mean() == pytest.approx(1.0, abs=1e-6)


def test_the_same_genre_at_both_ends_is_an_error_box(runs_dir):
    at = open_map(axis="Horror..Sci-Fi")
    at.selectbox(key="map_axis_to").set_value("Horror").run()
    assert any("Cannot draw this axis" in e.value for e in ok(at).error)



def test_the_norms_figure_below_the_map_is_the_same_in_every_view(runs_dir, saved):
    """It sits outside the map's fragment: the PCA frame's lengths and popularity, whatever
    the view, and still there when the axis above cannot be drawn."""
    run, _ = saved
    frame = projection.project_run(run, "pca").frame
    at = open_map()
    norms = figure(at, -1)
    assert np.allclose(np.sort(values(norms["data"][0]["y"])), np.sort(frame["norm"]))
    metric = at.metric[0].value
    at.radio(key="map_view").set_value("replay").run()
    assert figure(ok(at), -1)["data"] == norms["data"]
    at.radio(key="map_view").set_value("axis").run()
    at.selectbox(key="map_axis_to").set_value(at.selectbox(key="map_axis_from").value).run()
    assert any("Cannot draw this axis" in e.value for e in ok(at).error)
    assert at.metric[0].value == metric
    assert figure(at, -1)["data"] == norms["data"]


# ---------------------------------------------------------------------- links
def test_links_preselect_every_control(runs_dir):
    at = open_map(view="replay", colour="genre", genre="Horror", movie="50")
    assert at.radio(key="map_view").value == "replay"
    assert at.selectbox(key="map_colour").value == "genre"
    assert at.selectbox(key="map_genre").value == "Horror"
    assert at.selectbox(key="map_movie").value == 50
    assert {"Horror", "other movies", "chosen movie"} <= {t["name"] for t in figure(at)["data"]}
    at = open_map(genre="Horror")  # a genre alone colours by it
    assert at.selectbox(key="map_colour").value == "genre"


@pytest.mark.parametrize("query", [
    {"colour": "rainbow"}, {"genre": "<b>Horror</b>"}, {"movie": "999999"}, {"movie": "abc"},
    {"view": "[x](http://e.org)"}, {"axis": "Horror"}, {"axis": "Horror..Horror"},
    {"axis": "Horror..Nope"}, {"axis": ".."}])
def test_bad_link_values_are_ignored_with_a_warning(runs_dir, query):
    at = open_map(**query)
    assert any("Ignoring the link" in w.value for w in at.warning)
    assert at.radio(key="map_view").value == "map"
    assert at.selectbox(key="map_colour").value == "genre"
    assert at.selectbox(key="map_movie").value is None


def test_the_default_map_is_the_tsne_item_map_with_named_regions(runs_dir, saved, mapped):
    """The default view (bench/MAP_STRUCTURE.md): t-SNE of the movies with enough likes, one
    genre in colour against grey, each region labelled with its genres and famous titles."""
    run, movies = saved
    at = open_map()
    assert at.radio(key="map_method").value == "t-SNE"
    assert at.selectbox(key="map_genre").value == "Children's"
    spec = figure(at)
    shown = ids_of(trace(spec, "Children's")) | ids_of(trace(spec, "other movies"))
    assert shown == set(run.item_ids[mapped])
    labels = [a["text"] for a in spec["layout"]["annotations"]]
    assert len(labels) >= 5 and all(label.startswith("<b>") for label in labels)
    famous = set(movies.sort_values("popularity").tail(200)["title"].str.replace(
        r"\s*\(\d{4}\)$", "", regex=True))
    assert any(line in famous for label in labels for line in label.split("<br>")[1:])
