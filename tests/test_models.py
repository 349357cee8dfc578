"""Contract tests for every registered model, gradient checks, and quality floors."""

import dataclasses

import numpy as np
import pytest
import torch

from recsys.data.protocol import SplitConfig
from recsys.errors import BadInputError, TrainingDivergedError
from recsys.evaluation.metrics import evaluate_model
from recsys.models import MODELS, create_model
from recsys.models.config import TrainConfig
from recsys.models.embedding import EmbeddingRecommender, TorchTraining
from recsys.storage.runs import prepare_split
from tests.synthetic import USERS_PER_BLOCK

FAST = {"epochs": 30, "dim": 8, "lr": 0.02, "batch_size": 64, "patience": 0, "threads": 1,
        "ncf_layers": "16,8", "knn_neighbours": 20, "ease_lambda": 1.0, "refit": False}
# ALS's lambda is on a count scale: tiny values overfit the zeros.
FAST_FOR = {"mf-als": {"als_lambda": 3.0}}


def fast(name: str) -> TrainConfig:
    """Cheap settings for the synthetic block data, per model where one needs its own."""
    return TrainConfig(model=name, **{**FAST, **FAST_FOR.get(name, {})})



@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_recommends_its_own_block(name, block_split):
    model = create_model(fast(name)).fit(*block_split.fit_parts())
    split = block_split
    known = split.seen_at_test.to_csr()
    scores = model.score(np.arange(split.train.n_users))
    assert scores.shape == (split.train.n_users, split.train.n_items)
    assert np.isfinite(scores).all()
    if name not in ("popularity", "mf-mse"):  # mf-mse predicts stars, not preferences
        # A user's top unseen item should lie in their own block (items 1-10 vs 11-20).
        right = [split.train.item_ids[model.recommend(user, k=1, exclude=known)[0][0]] // 11
                 == user // USERS_PER_BLOCK for user in range(split.train.n_users)]
        assert np.mean(right) >= 0.95, (name, np.mean(right))
    items, _ = model.recommend(0, k=5, exclude=known)
    assert not set(known[0].indices) & set(items.tolist())
    _, with_seen = model.recommend(0, k=split.train.n_items)
    assert len(with_seen) == split.train.n_items


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_never_read_the_test_part(name, block_split):
    """A split whose test part is replaced gives the same model: fit reads train + valid."""
    swapped = dataclasses.replace(block_split, test=block_split.train,
                                  test_pos=block_split.train_pos)
    model = create_model(fast(name)).fit(block_split)
    again = create_model(fast(name)).fit(swapped)
    users = np.arange(5)
    np.testing.assert_array_equal(again.score(users), model.score(users))
    assert not hasattr(model, "seen") and not any("seen" in key for key in model.state())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_roundtrip_gives_identical_scores(name, block_split):
    model = create_model(fast(name)).fit(block_split)
    state = model.state()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in state.values())
    clone = create_model(fast(name)).load_state(state)
    users = np.arange(5)
    np.testing.assert_allclose(clone.score(users), model.score(users), rtol=1e-6)
    if model.item_factors() is not None:
        np.testing.assert_array_equal(clone.similar_items(0, 3)[0], model.similar_items(0, 3)[0])


@pytest.mark.parametrize("name", ["mf-bpr", "mf-bce", "svd", "itemknn"])
def test_similar_items_come_from_the_same_block(name, block_split):
    model = create_model(fast(name)).fit(block_split)
    ids = block_split.train.item_ids
    items, sims = model.similar_items(0, k=3)
    assert 0 not in items.tolist()
    assert all((ids[i] - 1) // 10 == (ids[0] - 1) // 10 for i in items)
    assert np.all(np.diff(sims) <= 1e-6)


@pytest.mark.parametrize("name", ["mf-bpr", "mf-bce"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_hand_written_gradients_match_autograd(name, weight_decay, block_split):
    model = create_model(TrainConfig(model=name, **{**FAST, "epochs": 1,
                                                    "weight_decay": weight_decay}))
    model.fit(block_split)
    users = torch.tensor([0, 1, 2, 3])
    pos = torch.tensor([0, 1, 2, 3])
    neg = torch.tensor([[4, 5], [6, 7], [8, 9], [10, 11]])
    params = list(model.module.parameters())
    loss = model.batch_loss(users, pos, neg)
    expected = torch.autograd.grad(loss, params)

    class Capture:  # an optimiser that leaves the gradients where the step wrote them
        def step(self):
            pass

    training = TorchTraining(model, data=None, rng=None, optimizer=Capture())
    manual_loss = model.train_step((users, pos, neg), training)
    assert manual_loss == pytest.approx(loss.item(), rel=1e-5)
    for p, g in zip(params, expected, strict=True):
        got = torch.zeros_like(p) if p.grad is None else p.grad  # None = provably zero
        torch.testing.assert_close(got, g, rtol=1e-4, atol=1e-6)



@pytest.mark.parametrize("name", ["mf-bpr", "mf-bce"])
def test_hand_written_training_matches_autograd_training(name, block_split):
    """A few epochs of the closed-form step and of the plain autograd step (the reference,
    ``EmbeddingRecommender.train_step``) end at the same parameters, up to float rounding."""
    config = TrainConfig(model=name, engine="torch", **{**FAST, "epochs": 4})
    cls = MODELS[name]
    reference = type("Autograd" + cls.__name__, (cls,),
                     {"train_step": EmbeddingRecommender.train_step})
    fast_model = cls(config).fit(*block_split.fit_parts())
    plain_model = reference(config).fit(*block_split.fit_parts())
    fast_state, plain_state = fast_model.module.state_dict(), plain_model.module.state_dict()
    for key, value in plain_state.items():
        if key == "user_bias.weight" and not cls.uses_user_bias:
            # BPR: b_u cancels in s(u, i) - s(u, j); autograd's gradient is rounding noise
            # that Adam scales up to steps of size lr, the closed form's is exactly zero.
            assert not fast_state[key].any()
            continue
        torch.testing.assert_close(fast_state[key], value, rtol=1e-5, atol=1e-5)
    assert fast_model.history[-1]["loss"] == pytest.approx(plain_model.history[-1]["loss"],
                                                           rel=1e-5)

def test_training_is_deterministic_under_a_seed(block_split):
    cfg = TrainConfig(model="mf-bpr", **FAST)
    a = create_model(cfg).fit(block_split).score(np.arange(3))
    b = create_model(cfg).fit(block_split).score(np.arange(3))
    np.testing.assert_array_equal(a, b)


def test_callbacks_see_epochs_and_can_stop_training(block_split):
    seen = []

    def callback(epoch, stats):
        seen.append((epoch, sorted(stats)))
        return epoch == 3

    model = create_model(TrainConfig(model="mf-bpr", **FAST))
    model.fit(block_split, callbacks=[callback])
    assert [e for e, _ in seen] == [1, 2, 3]
    assert {"loss", "valid_recall@10", "valid_ndcg@10", "elapsed", "best_epoch"} <= set(seen[0][1])


def test_early_stopping_restores_best_epoch(block_split):
    cfg = TrainConfig(model="mf-bpr", **{**FAST, "epochs": 60, "patience": 2})
    model = create_model(cfg).fit(block_split)
    history = model.history
    best = history[-1]["best_epoch"]
    assert len(history) < 60 and len(history) - best == 2
    valid = evaluate_model(model, block_split, part="valid").metrics["recall@10"]
    assert valid == pytest.approx(max(h["valid_recall@10"] for h in history))


def test_refit_trains_on_validation_too(block_split):
    cfg = TrainConfig(model="popularity", **{**FAST, "refit": True})
    model = create_model(cfg).fit(block_split)
    assert model.counts.sum() == len(block_split.train_pos) + len(block_split.valid_pos)
    cfg = TrainConfig(model="mf-bpr", **{**FAST, "refit": True, "epochs": 6})
    model = create_model(cfg).fit(block_split)
    assert len(model.history) == 6  # the validated pass is what the history shows
    assert model.refit_epochs == model.history[-1]["best_epoch"]


def test_divergence_raises_a_clear_error(block_split, monkeypatch):
    # the torch engine's step (the compiled one: tests/test_compiled_sgd.py)
    model = create_model(TrainConfig(model="mf-bpr", engine="torch", **FAST))
    monkeypatch.setattr(model, "train_step", lambda batch, training: float("nan"))
    with pytest.raises(TrainingDivergedError, match="lower the learning rate"):
        model.fit(block_split)


def test_unknown_model_and_bad_config_raise_bad_input():
    with pytest.raises(BadInputError, match="unknown model"):
        TrainConfig(model="nope")
    with pytest.raises(BadInputError, match="dim must be"):
        TrainConfig(dim=0)
    with pytest.raises(BadInputError, match="negatives"):
        TrainConfig(negatives=21)
    with pytest.raises(BadInputError, match="ncf_layers"):
        TrainConfig(ncf_layers="64,x")


# Quality floors on the real ML-100K (temporal split), one per family, seeded and fast.
FLOORS = {
    "popularity": ({}, 0.05),
    "ease": ({}, 0.12),
    "mf-bpr": ({}, 0.09),
    "mf-bce": ({}, 0.09),
    "ncf": ({"epochs": 5, "refit": False}, 0.07),
}


@pytest.mark.movielens
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_quality_floor_on_movielens(name, movielens):
    overrides, floor = FLOORS[name]
    split = _real_split(movielens)
    model = create_model(TrainConfig(model=name, **overrides)).fit(split)
    recall = evaluate_model(model, split).metrics["recall@10"]
    assert recall >= floor, f"{name} Recall@10 {recall:.4f} below floor {floor}"


@pytest.mark.movielens
def test_mf_mse_predicts_ratings_better_than_the_mean(movielens):
    split = _real_split(movielens)
    cfg = TrainConfig(model="mf-mse", weight_decay=0.05, epochs=10, refit=False)
    model = create_model(cfg).fit(split)
    rmse = evaluate_model(model, split).metrics["rmse"]
    baseline = float(np.sqrt(np.mean((split.test.ratings - split.train.ratings.mean()) ** 2)))
    assert rmse < baseline


_SPLITS = {}


def _real_split(ml):
    if "temporal" not in _SPLITS:
        _SPLITS["temporal"] = prepare_split(ml, SplitConfig())
    return _SPLITS["temporal"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_capabilities_say_what_the_model_does(name, block_split):
    """The class attributes that every "which models can ..." list is derived from."""
    from recsys.models.base import BIASED_SCORES, SCORE_KINDS

    cls = MODELS[name]
    model = create_model(fast(name)).fit(block_split)
    assert cls.name == name and cls.score_kind in SCORE_KINDS
    assert (model.user_factors() is not None) == cls.user_vectors
    assert (model.item_factors() is not None) == cls.item_vectors
    assert (model.item_biases() is not None) == (cls.score_kind in BIASED_SCORES)
    assert (model.item_item_weights() is not None) == (cls.score_kind == "item-item")
    assert bool(model.history) == cls.iterative
    liked = np.array([[0, 1]])
    if cls.folds_in:
        vectors = model.fold_in(liked)
        assert vectors.shape == (1, model.item_factors().shape[1])
        assert model.score_vectors(vectors).shape == (1, model.n_items)
    else:
        with pytest.raises(ValueError, match="dot-product model"):
            model.fold_in(liked)


def test_capability_lists_come_from_the_registry():
    from recsys.models import model_names
    from recsys.models.config import MODEL_NAMES

    assert MODEL_NAMES == tuple(MODELS)
    assert model_names(folds_in=True) == ("mf-bpr", "mf-bce", "mf-mse", "mf-als", "svd")
    assert model_names(iterative=False) == ("popularity", "itemknn", "ease", "svd")
    assert model_names(score_kind=("dot", "dot+bias")) == ("mf-bpr", "mf-bce", "mf-als", "svd")


def test_the_configs_name_the_models_without_importing_torch():
    import subprocess
    import sys

    code = "import sys, recsys.models.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
