"""The npz export reproduces a run's test metrics from its arrays alone."""

import json
from dataclasses import replace

import numpy as np
import pytest

from recsys.data.protocol import SplitConfig
from recsys.evaluation.metrics import evaluate_model
from recsys.models.config import TrainConfig
from recsys.storage.export import npz_arrays, projector_tables
from recsys.storage.runs import prepare_split, train_run
from tests.synthetic import make_world

FAST = {"mf-bpr": {"epochs": 3}, "mf-als": {"epochs": 3}, "svd": {}}


def reference_metrics(arrays: dict, k: int = 10) -> dict[str, float]:
    """Slow, obvious recomputation from the exported arrays only, one user at a time."""
    user_row = {int(u): j for j, u in enumerate(arrays["user_ids"])}
    item_row = {int(i): j for j, i in enumerate(arrays["item_ids"])}
    masked: dict[int, set] = {}
    relevant: dict[int, set] = {}
    for name, target in (("train_pairs", masked), ("valid_pairs", masked),
                         ("test_pairs", relevant)):
        for user, item in arrays[name]:
            target.setdefault(user_row[int(user)], set()).add(item_row[int(item)])
    items = arrays["item_factors"].astype(np.float64)
    recalls, ndcgs = [], []
    for user, wanted in sorted(relevant.items()):
        scores = (arrays["user_factors"][user].astype(np.float64) @ items.T
                  + arrays["item_bias"] + arrays["user_bias"][user])
        for item in masked.get(user, ()):
            scores[item] = -np.inf
        top = list(np.argsort(-scores, kind="stable")[:k])
        hits = [rank for rank, item in enumerate(top, start=1) if item in wanted]
        recalls.append(len(hits) / len(wanted))
        ideal = sum(1 / np.log2(r + 1) for r in range(1, min(k, len(wanted)) + 1))
        ndcgs.append(sum(1 / np.log2(r + 1) for r in hits) / ideal)
    return {f"recall@{k}": float(np.mean(recalls)), f"ndcg@{k}": float(np.mean(ndcgs))}


@pytest.fixture(scope="module")
def ml_split(movielens):
    return movielens, prepare_split(movielens, SplitConfig())


@pytest.mark.parametrize("model", list(FAST))
def test_npz_reproduces_test_metrics(ml_split, model):
    ml, split = ml_split
    config = TrainConfig.for_model(model, threads=1, **FAST[model])
    run = train_run(ml, SplitConfig(), config, split=split)
    arrays = npz_arrays(run, ml, split)
    meta = json.loads(str(arrays["meta"]))
    assert meta["score_is_dot"] and meta["masked_at_test"] == ["train_pairs", "valid_pairs"]
    expected = evaluate_model(run.model, split, part="test").metrics
    got = reference_metrics(arrays)
    for name in ("recall@10", "ndcg@10"):
        assert got[name] == pytest.approx(expected[name], abs=1e-9)
        assert meta["test_metrics"][name.split("@")[0]] == pytest.approx(expected[name], abs=1e-9)
    assert arrays["item_factors"].shape[0] == len(arrays["item_ids"]) == len(arrays["item_bias"])
    assert arrays["user_factors"].shape[0] == len(arrays["user_ids"])
    if model == "mf-bpr":  # its item biases are part of the score
        assert np.abs(arrays["item_bias"]).max() > 0


def test_npz_pairs_are_the_split_and_say_when_scores_are_not_a_dot(tmp_path):
    ml = make_world()
    config = TrainConfig(model="ease", refit=False, threads=1)
    run = train_run(ml, SplitConfig(), config)
    split = prepare_split(ml, SplitConfig())
    arrays = npz_arrays(run, ml)
    assert not json.loads(str(arrays["meta"]))["score_is_dot"]
    assert "user_factors" not in arrays and not arrays["item_bias"].any()
    for name, part in (("train_pairs", split.train_pos), ("valid_pairs", split.valid_pos),
                       ("test_pairs", split.test_pos)):
        np.testing.assert_array_equal(arrays[name], part.raw_pairs())
    np.savez(tmp_path / "run.npz", **arrays)
    with np.load(tmp_path / "run.npz") as loaded:  # no pickles needed to read it back
        assert json.loads(str(loaded["meta"]))["model"] == "ease"


def test_projector_tables_align_vectors_and_metadata():
    ml = make_world()
    run = train_run(ml, SplitConfig(), replace(TrainConfig(model="svd", dim=4), threads=1))
    vectors, meta = projector_tables(run, ml)
    assert vectors.shape == (len(run.item_ids), 4)
    assert list(meta.columns) == ["title", "genres", "year", "popularity"]
    assert len(meta) == len(run.item_ids) and not meta["title"].str.contains("\t").any()
