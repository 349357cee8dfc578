from types import SimpleNamespace

import numpy as np
import pytest

from recsys.evaluation.metrics import evaluate_model
from recsys.serving import funnel
from recsys.serving.funnel import FunnelConfig, evaluate_funnel, run_funnel
from tests.synthetic import fit, make_world

ALL = FunnelConfig(n_candidates=1000, recent_items=0)  # every item is a candidate


@pytest.fixture(scope="module")
def svd(tmp_path_factory):
    return fit(make_world(), tmp_path_factory.mktemp("runs"), "svd")


def test_without_reranking_the_funnel_is_the_model(svd):
    for user_id in (2, 29):
        got = run_funnel(svd, user_id, ALL, k=5)
        want, scores = svd.model.recommend(svd.user_index(user_id), 5, svd.seen)
        assert got["item_id"].tolist() == svd.run.item_ids[want].tolist()
        np.testing.assert_allclose(got["score"], scores, rtol=1e-5)
        assert got["model_rank"].tolist() == [1, 2, 3, 4, 5]
        assert set(got["reason"]) == {"retrieval: user vector"}


def test_evaluation_matches_the_model_evaluation(svd):
    got = evaluate_funnel(svd, svd.split, ALL, k=3)
    want = evaluate_model(svd.model, svd.split, k=3).metrics
    for name in ("recall@3", "ndcg@3", "novelty@3"):
        assert got[name] == pytest.approx(want[name])
    assert 0 < got["intra_list_diversity@3"] <= 2
    assert got["candidate_recall"] == pytest.approx(1.0)
    assert got["seconds"] < 5


def test_neighbours_of_recent_positives_carry_their_reason(svd):
    config = FunnelConfig(n_candidates=1, recent_items=2, neighbours_per_item=3)
    got = run_funnel(svd, 4, config, k=10)
    assert got.attrs["n_candidates"] == len(got) <= 1 + 2 * 3
    assert (got["source"] == "retrieval").sum() == 1
    h = svd.known_positives
    mine = h.user_index == svd.user_index(4)
    latest = h.item_index[mine][np.argsort(-h.timestamps[mine], kind="stable")[:2]]
    titles = svd.movies["title"].to_numpy()
    allowed = {f"neighbour of {titles[i]}" for i in latest} | {"retrieval: user vector"}
    assert set(got["reason"]) <= allowed and len(set(got["reason"])) > 1
    seen = set(svd.run.item_ids[svd.seen[svd.user_index(4)].indices])
    assert not seen & set(got["item_id"])


def test_exclude_seen_off_lets_history_back_in(svd):
    config = FunnelConfig(n_candidates=1000, recent_items=0, exclude_seen=False)
    got = run_funnel(svd, 4, config, k=5)
    seen = set(svd.run.item_ids[svd.seen[svd.user_index(4)].indices])
    assert seen & set(got["item_id"])


def test_popularity_penalty_and_freshness_reorder(svd):
    def top(**rules):
        got = run_funnel(svd, 4, FunnelConfig(n_candidates=1000, recent_items=0, **rules), k=5)
        assert not got["final_score"].isna().any()
        return got

    def mean_count(frame):
        return svd.item_counts[[svd.item_index(i) for i in frame["item_id"]]].mean()

    plain = top()
    assert mean_count(top(popularity_penalty=5.0)) < mean_count(plain)
    assert top(popularity_penalty=10.0)["item_id"].iloc[0] in (21, 22)  # never liked
    assert top(freshness_weight=5.0)["year"].mean() > plain["year"].mean()


def test_mmr_picks_the_dissimilar_item_second():
    factors = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    ctx = SimpleNamespace(item_factors=lambda purpose: factors)
    cand = np.array([[0, 1, 2]])
    final = np.array([[1.0, 0.95, 0.6]])
    valid = np.ones_like(cand, bool)
    assert funnel._select(ctx, cand, final, valid, 1.0, 3).tolist() == [[0, 1, 2]]
    assert funnel._select(ctx, cand, final, valid, 0.5, 3).tolist() == [[0, 2, 1]]


def test_mmr_raises_measured_diversity(svd):
    plain = evaluate_funnel(svd, config=ALL, k=4)
    diverse = evaluate_funnel(svd, config=FunnelConfig(n_candidates=1000, recent_items=0,
                                                       mmr_lambda=0.3), k=4)
    assert diverse["intra_list_diversity@4"] > plain["intra_list_diversity@4"]
    table = funnel.compare_reranking(svd, FunnelConfig(mmr_lambda=0.3), k=4)
    assert list(table.index) == ["ranking only", "re-ranked"]


def test_intra_list_diversity_known_values():
    factors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    assert funnel.intra_list_diversity(factors, np.array([[0, 1]])) == pytest.approx(0.0)
    assert funnel.intra_list_diversity(factors, np.array([[0, 2]])) == pytest.approx(1.0)


def test_models_without_embeddings_and_bad_configs_raise(tmp_path):
    knn = fit(make_world(), tmp_path, "itemknn")
    with pytest.raises(ValueError, match="no item embeddings"):
        run_funnel(knn, 1)
    with pytest.raises(ValueError, match="mmr_lambda"):
        FunnelConfig(mmr_lambda=1.5)
    with pytest.raises(ValueError, match="unknown user id"):
        run_funnel(knn, 12345)
