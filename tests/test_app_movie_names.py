"""The per-run movie titles and genres the Similar movies, Build your profile and Embedding map
pages read on every view (``ui.shared.movie_names``, ``ui.embedding_map.run_genres``): the
same content as reading them from the run's catalogue, built once per run and shared by every
visitor, read-only, and built anew when the run folder's weights are rewritten."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from recsys.data.loading import load_movielens, movies_for
from recsys.data.protocol import SplitConfig
from recsys.errors import DataUnavailableError
from recsys.models.config import TrainConfig
from recsys.storage.runs import load_run, train_run

try:
    ML = load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

from ui import shared  # noqa: E402  (after the skip: imports Streamlit)
from ui.embedding_map import genre_names, run_genres  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "mf-bpr"
    train_run(ML, SplitConfig(), TrainConfig(epochs=1), path)
    return load_run(path)


def test_titles_are_the_catalogues_most_rated_first(run):
    movies = movies_for(ML, run.item_ids).sort_values("popularity", ascending=False)
    names = shared.movie_names(run)
    assert list(names.titles.items()) == list(zip(movies["item_id"].tolist(),
                                                  movies["title"].tolist(), strict=True))
    assert names.by_popularity == tuple(names.titles)
    assert len(names.titles) == len(run.item_ids)
    popularity = movies.set_index("item_id")["popularity"]
    assert np.all(np.diff(popularity.loc[list(names.by_popularity)].to_numpy()) <= 0)


def test_genres_are_the_catalogues(run):
    assert list(run_genres(run)) == genre_names(movies_for(ML, run.item_ids))
    assert "Children's" in run_genres(run)


def test_shared_read_only_and_rebuilt_for_new_weights(run):
    first, genres = shared.movie_names(run), run_genres(run)
    assert shared.movie_names(load_run(run.path)) is first  # another visitor: the same object
    assert run_genres(load_run(run.path)) is genres
    with pytest.raises(TypeError):
        first.titles[1] = "changed"  # type: ignore[index]
    weights = run.path / "weights.npz"
    stamp = weights.stat().st_mtime_ns + 1_000_000_000
    os.utime(weights, ns=(stamp, stamp))  # as a retrain into the same folder would
    again = shared.movie_names(load_run(run.path))
    assert again is not first
    assert dict(again.titles) == dict(first.titles)


def test_profile_curve_is_the_measured_one_for_the_runs_model(run):
    """The profile page's measured curve (built once per model name) for an mf-bpr run: one
    line per method of mf-bpr's measurement, no note that another model's curve stands in."""
    from recsys.serving.coldstart import coldstart_curve
    from tests.apptest import open_page, runs_served

    with runs_served(run.path.parent):
        at = open_page("pages/profile.py", likes="50,181")
    charts = [c for c in at.get("plotly_chart") if c.proto.id and "prof_curve" in c.proto.id]
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    expected = coldstart_curve("mf-bpr")
    assert sorted(t["name"] for t in spec["data"]) == sorted(expected["method"].unique())
    assert not any("measured for mf-als" in m.value for m in at.markdown)
