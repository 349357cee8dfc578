"""mf-als: the closed-form steps against a direct solve, training, early stopping, saving."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.evaluation.metrics import evaluate_model
from recsys.linalg import weighted_ridge
from recsys.models import create_model
from recsys.models.als import als_half_step, als_objective
from recsys.models.config import TrainConfig
from tests.synthetic import USERS_PER_BLOCK

FAST = {"epochs": 8, "dim": 8, "als_lambda": 3.0, "als_alpha": 3.0, "patience": 0,
        "threads": 1, "refit": False}


def _direct_user_step(q, row, alpha, lam):
    """The textbook HKV solve with a dense confidence diagonal over every item."""
    c = 1.0 + alpha * row
    a = q.T @ np.diag(c) @ q + lam * np.eye(q.shape[1])
    return np.linalg.solve(a, q.T @ (c * row))


def test_half_step_equals_a_direct_solve_per_user():
    rng = np.random.default_rng(0)
    dense = (rng.random((7, 12)) < 0.3).astype(np.float64)
    dense[3] = 0.0  # a user with no positives gets the zero vector
    q = rng.normal(size=(12, 4))
    csr = sp.csr_matrix(dense)
    x = als_half_step(torch.from_numpy(q), torch.from_numpy(csr.indptr.astype(np.int64)),
                      torch.from_numpy(csr.indices.astype(np.int64)), 2.5, 0.7).numpy()
    for u in range(7):
        np.testing.assert_allclose(x[u], _direct_user_step(q, dense[u], 2.5, 0.7), atol=1e-10)
    assert np.abs(x[3]).max() == 0.0


def test_weighted_ridge_handles_per_item_confidences_like_cold_start():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(10, 3))
    observed, extra, target = [1, 4, 6], np.array([0.9, 0.9, 1.5]), np.array([1.0, 1.0, 0.0])
    gram = 0.1 * q.T @ q + 0.5 * np.eye(3)
    got = weighted_ridge(torch.from_numpy(gram), torch.from_numpy(q[observed][None]),
                         torch.from_numpy(extra[None]), torch.from_numpy(target[None]))
    a = gram + q[observed].T @ np.diag(extra) @ q[observed]
    np.testing.assert_allclose(got[0].numpy(), np.linalg.solve(a, q[observed].T @ target))


def test_objective_equals_the_dense_sum():
    rng = np.random.default_rng(2)
    dense = (rng.random((5, 6)) < 0.4).astype(np.float64)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(6, 3))
    csr = sp.csr_matrix(dense)
    c = 1.0 + 3.0 * dense
    expected = (c * (dense - x @ y.T) ** 2).sum() + 0.2 * ((x * x).sum() + (y * y).sum())
    got = als_objective(torch.from_numpy(x), torch.from_numpy(y),
                        torch.from_numpy(csr.indptr.astype(np.int64)),
                        torch.from_numpy(csr.indices.astype(np.int64)), 3.0, 0.2)
    assert got == pytest.approx(expected)


def test_als_recommends_each_users_own_block_and_loss_decreases(block_split):
    model = create_model(TrainConfig(model="mf-als", **FAST)).fit(block_split)
    ids = block_split.train.item_ids
    known = block_split.seen_at_test.to_csr()
    right = [ids[model.recommend(u, k=1, exclude=known)[0][0]] // 11 == u // USERS_PER_BLOCK
             for u in range(block_split.train.n_users)]
    assert np.mean(right) == 1.0
    losses = [h["loss"] for h in model.history]
    assert all(b <= a + 1e-9 for a, b in zip(losses, losses[1:], strict=False))
    assert model.user_factors().shape == (block_split.train.n_users, 8)
    assert model.item_factors().dtype == np.float32


def test_callbacks_see_every_sweep_and_can_stop(block_split):
    seen = []

    def callback(epoch, stats):
        seen.append((epoch, set(stats)))
        return epoch == 3

    create_model(TrainConfig(model="mf-als", **FAST)).fit(block_split, callbacks=[callback])
    assert [e for e, _ in seen] == [1, 2, 3]
    assert {"loss", "valid_recall@10", "valid_ndcg@10", "elapsed", "best_epoch"} <= seen[0][1]


def test_early_stopping_keeps_the_best_sweep_and_refit_uses_it(block_split):
    cfg = TrainConfig(model="mf-als", **{**FAST, "epochs": 50, "patience": 2})
    model = create_model(cfg).fit(block_split)
    history, best = model.history, model.history[-1]["best_epoch"]
    assert len(history) < 50 and len(history) - best == 2
    valid = evaluate_model(model, block_split, part="valid").metrics["recall@10"]
    assert valid == pytest.approx(max(h["valid_recall@10"] for h in history))
    refit = create_model(TrainConfig(model="mf-als", **{**FAST, "epochs": 50, "patience": 2,
                                                         "refit": True})).fit(block_split)
    assert refit.refit_epochs == refit.history[-1]["best_epoch"]


def test_save_load_round_trip_and_determinism(block_split):
    cfg = TrainConfig(model="mf-als", **FAST)
    model = create_model(cfg).fit(block_split)
    clone = create_model(cfg).load_state(model.state())
    users = np.arange(block_split.train.n_users)
    np.testing.assert_array_equal(clone.score(users), model.score(users))
    again = create_model(cfg).fit(block_split)
    np.testing.assert_array_equal(again.score(users), model.score(users))


def test_defaults_are_valid_and_documented():
    cfg = TrainConfig.for_model("mf-als")
    assert cfg.epochs == 15 and cfg.als_lambda > 1
    assert cfg.weight_decay == TrainConfig().weight_decay  # the torch models' L2, unread here
    with pytest.raises(ValueError, match="als_alpha"):
        TrainConfig(als_alpha=-1.0)
