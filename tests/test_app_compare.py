"""The Compare runs page under AppTest, on a prepared class set: the suggested pairs, the A/B
table, the interleaving preference, the detection chart and a sentence per number; an arm a
run cannot serve is an error box, not an exception."""

from __future__ import annotations

import json

import pytest

from recsys.data.loading import load_movielens
from recsys.errors import DataUnavailableError
from recsys.jobs import class_set

try:
    ML = load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

from tests.apptest import ok, open_page, runs_served  # noqa: E402  (after the skip: slow import)
from ui import frame  # noqa: E402

PAGE = "pages/compare.py"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("class")
    assert class_set.prepare_class(ML, path, maps=False).complete
    with runs_served(path):
        yield path


def captions(at) -> str:
    return " ".join(c.value for c in at.main.caption)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.main.metric}


def test_opens_on_the_first_suggested_pair_with_every_number_explained(runs_dir):
    at = open_page(PAGE)
    assert at.title[0].value.endswith("Compare runs")
    pairs = at.selectbox(key="compare_pair").options
    assert pairs[:2] == ["default vs class-popularity", "class-mf-bpr vs default"]
    assert "default (rerank) vs default (funnel)" in pairs
    table = at.dataframe[0].value
    assert table["metric"].tolist() == ["recall@10", "ndcg@10", "hit@10"]
    assert (table["A − B"] > 0).all()  # mf-als beats popularity on every metric
    shown = metrics(at)
    assert int(shown["Prefer A"].replace(",", "")) > int(shown["Prefer B"].replace(",", ""))
    text = captions(at)
    for metric in ("recall@10", "ndcg@10", "hit@10"):
        assert f"{metric}: arm A" in text
    assert "(Welch's t-test)" in text and "(two-sided sign test)" in text
    assert "simulated experiments per size" in text
    chart = json.loads(at.main.get("plotly_chart")[-1].proto.spec)
    names = [trace.get("name") for trace in chart["data"]]
    assert "interleaving" in names and "A/B test on ndcg@10" in names


def test_own_pair_of_one_run_scored_two_ways(runs_dir):
    at = open_page(PAGE)
    at.selectbox(key="compare_pair").select("Your own pair…")
    ok(at.run())
    at.selectbox(key="compare_run_a").select("default")
    at.selectbox(key="compare_run_b").select("default")
    at.selectbox(key="compare_variant_b").select("cosine")
    ok(at.run())
    assert "B = default (cosine)" in captions(at)
    assert at.dataframe[0].value.shape[0] == 3


def test_an_arm_the_run_cannot_serve_is_an_error_box(runs_dir):
    at = open_page(PAGE)
    at.selectbox(key="compare_pair").select("Your own pair…")
    ok(at.run())
    at.selectbox(key="compare_run_b").select("class-popularity")
    at.selectbox(key="compare_variant_b").select("cosine")
    ok(at.run())
    assert "needs user and item vectors" in at.error[0].value


def test_the_presenter_view_draws_the_same_page(runs_dir):
    at = open_page(PAGE, present="1")
    assert at.dataframe[0].value.shape[0] == 3
    detection = json.loads(at.main.get("plotly_chart")[-1].proto.spec)
    assert detection["layout"]["font"]["size"] == frame.PRESENTER_FONT  # larger type
