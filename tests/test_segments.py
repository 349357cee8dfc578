"""Recall@10 by user activity: groups, their means, and that they average back to the
Recall@10 that evaluate (and the saved run) report."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.protocol import SplitConfig
from recsys.evaluation import segments
from recsys.evaluation.metrics import evaluate_model
from recsys.models.config import TrainConfig
from recsys.storage.runs import prepare_split, train_run
from tests.synthetic import make_world, tiny_movielens


def test_values_on_an_edge_go_to_the_lower_group():
    activity = np.array([1, 5, 6, 10, 11, 50])
    groups = segments.activity_group(activity, (5.0, 10.0))
    assert groups.tolist() == [0, 0, 1, 1, 2, 2]
    assert segments.group_labels((5.0, 10.0)) == ["few (≤ 5 ratings)", "medium (6–10)",
                                                  "many (> 10)"]


def test_tercile_edges_split_users_in_thirds():
    activity = np.arange(1, 31)
    edges = segments.activity_edges(activity)
    assert np.bincount(segments.activity_group(activity, edges)).tolist() == [10, 10, 10]


def test_group_means_against_a_loop():
    rng = np.random.default_rng(0)
    activity = rng.integers(1, 100, size=60)
    recall = rng.random(60)
    edges = segments.activity_edges(activity)
    table = segments.recall_by_activity(recall, activity, edges)
    bounds = [(-np.inf, edges[0]), (edges[0], edges[1]), (edges[1], np.inf)]
    for (low, high), (_, row) in zip(bounds, table.iterrows(), strict=True):
        members = [r for r, a in zip(recall, activity, strict=True) if low < a <= high]
        assert row["users"] == len(members)
        assert row["recall"] == pytest.approx(sum(members) / len(members))
    assert segments.pooled_recall(table) == pytest.approx(recall.mean())


@pytest.mark.parametrize("model", ["popularity", "mf-bpr"])
def test_groups_average_back_to_the_overall_recall(model):
    ml = tiny_movielens(n_users=60, n_items=30)
    split = prepare_split(ml, SplitConfig())
    config = TrainConfig.for_model(model, dim=4, epochs=3, refit=False, threads=1)
    run = train_run(ml, SplitConfig(), config, split=split)
    table = segments.run_recall_by_activity(run.model, split)
    overall = evaluate_model(run.model, split).metrics["recall@10"]
    assert table["users"].sum() == int((split.test_pos.user_counts() > 0).sum())
    assert segments.pooled_recall(table) == pytest.approx(overall)
    assert segments.pooled_recall(table) == pytest.approx(run.metrics["recall@10"])


def test_ratings_before_test_count_every_star_of_train_and_validation():
    split = prepare_split(make_world(), SplitConfig())
    counts = segments.ratings_before_test(split)
    assert counts.sum() == len(split.train) + len(split.valid)
    assert counts.sum() > len(split.train_pos) + len(split.valid_pos)  # 1-star ratings too


def test_the_winners_sentence_names_who_wins_where_and_the_gain_over_popularity():
    groups = ["few (≤ 5 ratings)", "medium (6–10)", "many (> 10)"]
    board = pd.DataFrame([{"run": "a", "model": "mf-bpr", groups[0]: 0.10, groups[1]: 0.20,
                           groups[2]: 0.30, "overall": 0.2},
                          {"run": "p", "model": "popularity", groups[0]: 0.20, groups[1]: 0.10,
                           groups[2]: 0.15, "overall": 0.15}])
    sentence = segments.winners_sentence(board)
    assert "few: popularity (0.200)" in sentence and "many: mf-bpr (0.300)" in sentence
    assert "different models win" in sentence
    assert "-50% for few" in sentence and "+100% for many" in sentence
