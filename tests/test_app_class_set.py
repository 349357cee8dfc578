"""The lessons on a prepared class set (recsys.jobs.class_set) under AppTest: with mf-als
active, the tour's steps on negatives, epochs and the replay draw the class set's mf-bpr run
and say so, and the metrics step has its baselines; the lecturer's "Prepare the class" runs
the preparation in its own process."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import pytest

from recsys.data.loading import load_movielens
from recsys.errors import DataUnavailableError
from recsys.jobs import class_set

try:
    ML = load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

from streamlit.testing.v1 import AppTest  # noqa: E402  (after the skip: slow import)

from tests.apptest import ok, open_page, runs_served  # noqa: E402


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("class")
    assert class_set.prepare_class(ML, path, maps=False).complete
    with runs_served(path):
        yield path


def go_to(at: AppTest, step: int) -> AppTest:
    at.session_state["tour_step"] = step
    return ok(at.run())


def link(at: AppTest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(at.main.get("page_link")[0].proto.query_string).items()}


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.main.caption)


def test_lessons_draw_the_class_sets_mf_bpr_run_when_the_default_samples_no_negatives(runs_dir):
    at = open_page("pages/tour.py")
    assert "mf-als" in captions(at)  # the pinned default is active
    assert link(at)["run"] == "class-mf-bpr"  # step 1's replay: the run that trains slowly
    assert "class set's mf-bpr run" in captions(at)

    go_to(at, 3)
    assert "Shown on the class set's mf-bpr run" in captions(at), captions(at)
    assert link(at) == {"view": "negatives", "run": "class-mf-bpr"}

    go_to(at, 4)
    curve = json.loads(at.main.get("plotly_chart")[0].proto.spec)
    epochs = curve["data"][0]["x"]
    assert len(epochs if isinstance(epochs, list) else [0] * 6) >= 6
    assert "Shown on the class set's mf-bpr run" in captions(at)

    go_to(at, 5)
    board = json.loads(at.main.get("plotly_chart")[0].proto.spec)["data"][0]
    labels = " ".join(board["y"])
    for model in ("popularity", "itemknn", "ease", "svd", "mf-als", "mf-bpr"):
        assert model in labels, labels
    assert not at.main.info  # no "train the baselines first"


def test_prepare_the_class_runs_in_its_own_process(runs_dir):
    """The sidebar's button (single-user mode: no lecturer key) says what is ready; the
    preparation it starts finds every run there and ends with "ready"."""
    at = open_page("pages/tour.py")
    assert at.sidebar.button(key="prepare_class")
    assert any("class set is ready" in c.value for c in at.sidebar.caption)
    class_set.start_preparation(runs_dir, maps=False)
    deadline = time.time() + 120
    while (now := class_set.preparation(runs_dir)).running:
        assert time.time() < deadline, now
        time.sleep(0.5)
    assert now.message == "the class set is ready", now
    assert sorted(p.name for p in runs_dir.iterdir() if not p.name.startswith(".")) == sorted(
        [*(e.folder for e in class_set.CLASS_RUNS), "pinned.json"])


def test_the_similar_step_shows_where_the_lens_matters(runs_dir):
    """Die Hard on the default mf-als: plain cosine lists none of its sequels, the model's
    default lens (hybrid) lists both."""
    at = go_to(open_page("pages/tour.py"), 6)
    plain_cosine, own = (frame.value for frame in at.main.dataframe[:2])
    assert not plain_cosine["title"].str.startswith("Die Hard").any()
    assert own["title"].str.startswith("Die Hard").sum() == 2
    assert "hybrid lens" in " ".join(m.value for m in at.main.markdown)
    assert link(at) == {"movie": "144", "run": "default"}


def test_the_vector_length_lesson_opens_on_two_weight_decays_of_mf_bpr(runs_dir):
    at = open_page("pages/train.py", view="norms")
    assert at.multiselect(key="train_lesson_norm_runs").value == [
        "class-mf-bpr", "class-mf-bpr-decay"]


def test_the_replay_of_a_fast_model_points_at_the_class_sets_mf_bpr(runs_dir):
    at = open_page("pages/embedding_map.py", view="replay")
    links = {parse_qs(link.proto.query_string)["run"][0] for link in at.main.get("page_link")
             if "replay" in link.proto.query_string}
    assert links == {"class-mf-bpr"}
