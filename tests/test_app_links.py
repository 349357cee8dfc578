"""Deep links followed within a session, and the Train form's bounds, under
``streamlit.testing.v1.AppTest``.

A link followed in the same session (the guided tour's ``st.page_link``s) keeps the session
state: the page must still select what the link names when it differs from what the page last
wrote into the URL itself (:mod:`ui.links`). AppTest cannot click a page link, so a test sets
the link's query params on a session that already used the page and runs it again.
"""

from __future__ import annotations

import pytest

from recsys.data.loading import load_movielens
from recsys.data.protocol import SplitConfig
from recsys.errors import DataUnavailableError
from recsys.models.config import TrainConfig
from recsys.settings import field_specs
from recsys.storage.runs import pin_run, train_run
from ui import forms

try:
    ML = load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

from streamlit.testing.v1 import AppTest  # noqa: E402  (after the skip: slow import)

from tests.apptest import ok, open_page, runs_served  # noqa: E402


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs")
    run = train_run(ML, SplitConfig(), TrainConfig(epochs=3), path / "mf-bpr-default")
    pin_run(path, run.name)
    with runs_served(path):
        yield path


def follow(at: AppTest, **query: str) -> AppTest:
    """The same session following a link to the page it is on: the URL holds just ``query``."""
    for name in list(at.query_params):
        if name not in query:
            del at.query_params[name]
    for name, value in query.items():
        at.query_params[name] = value
    return ok(at.run())


def url(at: AppTest, param: str) -> str | None:
    value = at.query_params.get(param)
    return value[0] if isinstance(value, list) else value


# ---------------------------------------------------------------------- Similar movies
def test_similar_movies_follows_a_link_in_session(runs_dir):
    at = open_page("pages/similar_movies.py", movie="1")
    box = at.selectbox(key="sim_movie")
    assert box.value == 1
    ok(box.set_value(100).run())
    assert url(at, "movie") == "100"
    ok(at.run())  # the page's own value in the URL is not a link: the choice stays
    assert at.selectbox(key="sim_movie").value == 100
    follow(at, movie="50")  # the tour's step 6
    assert at.selectbox(key="sim_movie").value == 50
    assert url(at, "movie") == "50"


def test_similar_movies_link_clears_a_search_that_would_hide_the_movie(runs_dir):
    at = open_page("pages/similar_movies.py")
    ok(at.text_input(key="sim_query").input("toy story").run())
    assert at.selectbox(key="sim_movie").value == 1
    follow(at, movie="50")
    assert at.text_input(key="sim_query").value == ""
    assert at.selectbox(key="sim_movie").value == 50


def test_similar_movies_ignores_a_bad_link_in_session(runs_dir):
    at = open_page("pages/similar_movies.py", movie="1")
    ok(at.selectbox(key="sim_movie").set_value(100).run())
    follow(at, movie="999999")
    assert at.selectbox(key="sim_movie").value == 100
    assert any("Ignoring the link" in w.value for w in at.warning)


# ---------------------------------------------------------------------- Build your profile
def test_profile_follows_a_link_in_session(runs_dir):
    at = open_page("pages/profile.py", likes="1,2", dislikes="99")
    assert at.multiselect(key="prof_liked").value == [1, 2]
    assert at.multiselect(key="prof_disliked").value == [99]
    ok(at.multiselect(key="prof_liked").set_value([7]).run())
    assert url(at, "likes") == "7"
    ok(at.run())  # what the page wrote itself is not re-applied
    assert at.multiselect(key="prof_liked").value == [7]
    follow(at, likes="1,71,95")  # the tour's step 7: a whole profile, no dislikes
    assert at.multiselect(key="prof_liked").value == [1, 71, 95]
    assert at.multiselect(key="prof_disliked").value == []
    assert url(at, "likes") == "1,71,95" and url(at, "dislikes") is None


def test_profile_link_with_only_new_dislikes_keeps_the_likes(runs_dir):
    at = open_page("pages/profile.py", likes="1,2")
    follow(at, likes="1,2", dislikes="99")
    assert at.multiselect(key="prof_liked").value == [1, 2]
    assert at.multiselect(key="prof_disliked").value == [99]


def test_profile_link_equal_to_a_cleared_list_is_new_again(runs_dir):
    at = open_page("pages/profile.py", likes="1,71,95")
    ok(at.multiselect(key="prof_liked").set_value([]).run())
    assert url(at, "likes") is None
    follow(at, likes="1,71,95")
    assert at.multiselect(key="prof_liked").value == [1, 71, 95]


# ---------------------------------------------------------------------- Embedding map
def test_map_follows_a_link_in_session(runs_dir):
    at = open_page("pages/embedding_map.py", movie="1")
    ok(at.selectbox(key="map_movie").set_value(100).run())
    ok(at.selectbox(key="map_colour").set_value("popularity").run())
    assert url(at, "movie") == "100" and url(at, "colour") == "popularity"
    ok(at.run())
    assert at.selectbox(key="map_movie").value == 100
    follow(at, view="replay", movie="1")  # the tour's step 1
    assert at.radio(key="map_view").value == "replay"
    assert at.selectbox(key="map_movie").value == 1
    assert at.selectbox(key="map_colour").value == "popularity"  # not in the link: kept
    follow(at, genre="Horror")  # ?genre= alone: colour by it
    assert at.selectbox(key="map_colour").value == "genre"
    assert at.selectbox(key="map_genre").value == "Horror"
    follow(at, axis="Comedy..Drama")  # ?axis= alone: show that axis
    assert at.radio(key="map_view").value == "axis"
    assert at.selectbox(key="map_axis_from").value == "Comedy"
    assert at.selectbox(key="map_axis_to").value == "Drama"
    assert url(at, "axis") == "Comedy..Drama"


# ---------------------------------------------------------------------- Train form bounds
def test_number_limits_are_the_declared_bounds_in_the_fields_type():
    specs = {s.name: s for s in field_specs(TrainConfig)}
    assert forms.number_limits(specs["dim"]) == {"min_value": 1, "max_value": 1024}
    assert isinstance(forms.number_limits(specs["dim"])["min_value"], int)
    limits = forms.number_limits(specs["weight_decay"])
    assert limits == {"min_value": 0.0, "max_value": 1000.0}
    assert isinstance(limits["min_value"], float)
    assert forms.number_limits(specs["ncf_layers"]) == {}


def test_train_form_number_inputs_carry_the_config_bounds(runs_dir):
    at = open_page("pages/train.py")
    model = at.selectbox(key="train_model").value
    bounds = {s.name: s.bounds for s in forms.field_specs(TrainConfig, TrainConfig())
              if s.bounds is not None}
    bounds.update({s.name: s.bounds for s in forms.field_specs(SplitConfig)
                   if s.bounds is not None})
    checked = 0
    for widget in at.number_input:
        name = widget.key.removeprefix("train_").removeprefix(model)
        if name in bounds:
            assert (widget.min, widget.max) == pytest.approx(bounds[name]), name
            checked += 1
    assert checked >= 5, [(w.key, w.min, w.max) for w in at.number_input]


def test_train_form_does_not_take_a_value_the_config_rejects(runs_dir):
    at = open_page("pages/train.py")
    at.selectbox(key="train_model").select("mf-bpr").run()
    at.number_input(key="train_mf-bprepochs").set_value(200)
    at.number_input(key="train_mf-bprdim").set_value(5000)  # as if typed past the maximum
    ok(at.button(key="train_submit").click().run())
    assert not at.error, [e.value for e in at.error]  # no "dim must be in [1, 1024]"
    assert at.number_input(key="train_mf-bprdim").value == 64  # the value was not taken
    assert at.query_params.get("job")  # the form trained with what it shows
    ok(at.button(key="train_cancel").click().run())


# ---------------------------------------------------------------------- Train lessons
def open_lesson(at: AppTest) -> str:
    """The label of the open lesson tab (the one with content)."""
    labels = {"Negative sampling", "Training curves", "Vector length vs popularity",
              "Who the model serves"}
    return next(t.label for t in at.tabs if t.label in labels and len(t.children))


def test_train_follows_the_same_view_link_again_after_a_tab_change(runs_dir):
    at = open_page("pages/train.py", view="negatives")  # the tour's step 3
    assert open_lesson(at) == "Negative sampling"
    at.session_state["train_lesson"] = "Training curves"  # the visitor opens another tab
    ok(at.run())
    assert open_lesson(at) == "Training curves"
    assert url(at, "view") is None  # the URL no longer names what is shown
    ok(at.run())
    assert open_lesson(at) == "Training curves"
    follow(at, view="negatives")  # step 3 followed again
    assert open_lesson(at) == "Negative sampling"
