"""The compiled engine of mf-bpr / mf-bce (recsys.models.compiled_sgd) against the torch
engine's loss and a plain per-sample reference, and what a fit with it must do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from recsys.errors import BadInputError
from recsys.evaluation.metrics import evaluate_model
from recsys.models import create_model
from recsys.models.compiled_sgd import bce_sgd_epoch, bpr_sgd_epoch
from recsys.models.config import TrainConfig
from recsys.settings import from_dict

FAST = {"epochs": 30, "dim": 8, "patience": 0, "threads": 1, "refit": False}


def _tiny_tables(n_users=4, n_items=7, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.3, (n_users, dim)).astype(np.float32),
            rng.normal(0, 0.3, (n_items, dim)).astype(np.float32),
            rng.normal(0, 0.1, n_items).astype(np.float32),
            rng.normal(0, 0.1, n_users).astype(np.float32))


def _torch_engine_gradient(name, tables, user, positive, negatives, weight_decay):
    """The torch engine's batch loss of one row (its ``batch_loss``, autograd) and its
    gradient with respect to (user table, item table, item bias, user bias)."""
    user_w, item_w, item_b, user_b = tables
    config = TrainConfig(model=name, engine="torch", dim=user_w.shape[1],
                         weight_decay=weight_decay)
    model = create_model(config)
    model.module = model.build_module(*user_w.shape[:1], item_w.shape[0])
    with torch.no_grad():
        model.module.user.weight.copy_(torch.from_numpy(user_w))
        model.module.item.weight.copy_(torch.from_numpy(item_w))
        model.module.item_bias.weight.copy_(torch.from_numpy(item_b)[:, None])
        model.module.user_bias.weight.copy_(torch.from_numpy(user_b)[:, None])
    loss = model.batch_loss(torch.tensor([user]), torch.tensor([positive]),
                            torch.tensor([negatives]))
    loss.backward()
    m = model.module
    grads = [m.user.weight.grad, m.item.weight.grad, m.item_bias.weight.grad.ravel(),
             m.user_bias.weight.grad.ravel()]
    return float(loss.detach()), [g.double().numpy() for g in grads]


def _run_kernel(name, tables, users, positives, negatives, lr, weight_decay):
    user_w, item_w, item_b, user_b = tables
    args = (np.asarray(users, np.int64), np.asarray(positives, np.int64),
            np.asarray(negatives, np.int64).reshape(len(users), -1), lr, weight_decay)
    if name == "mf-bpr":
        return bpr_sgd_epoch(user_w, item_w, item_b, *args)
    return bce_sgd_epoch(user_w, item_w, item_b, user_b, *args)


def test_one_bpr_step_is_the_torch_losss_gradient_step():
    """With one negative, one row is one SGD step, on exactly the torch engine's loss of that
    row (softplus of the score gap + weight_decay times the three vectors' squared norms)."""
    before = _tiny_tables()
    _, grads = _torch_engine_gradient("mf-bpr", before, 1, 2, [5], 0.05)
    after = [t.copy() for t in before]
    _run_kernel("mf-bpr", after, [1], [2], [5], lr=0.1, weight_decay=0.05)
    for start, end, grad in zip(before, after, grads, strict=True):
        # float32 parameters of size ~1: a few ulps of rounding in each updated entry
        np.testing.assert_allclose(end, start - 0.1 * grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["mf-bpr", "mf-bce"])
def test_a_rows_small_steps_follow_the_torch_losss_gradient(name):
    """With K negatives a row is K (BPR) or K + 1 (BCE) steps, one per term; the terms average
    to the torch engine's row loss, so for a small step the row's total update is
    -lr * steps * its gradient, up to the O(lr) drift within the row."""
    before = _tiny_tables()
    negatives = [0, 4, 6]
    _, grads = _torch_engine_gradient(name, before, 2, 3, negatives, 0.02)
    after = [t.copy() for t in before]
    lr = 1e-3
    _run_kernel(name, after, [2], [3], negatives, lr=lr, weight_decay=0.02)
    steps = len(negatives) + (name == "mf-bce")
    for start, end, grad in zip(before, after, grads, strict=True):
        moved = (end.astype(np.float64) - start) / (-lr * steps)
        # drift within the row: lr * steps * |Hessian| * |gradient| ~ 1e-2 of the gradient;
        # float32 rounding of the parameters: ~1e-7 / 1e-3 = 1e-4 absolute
        np.testing.assert_allclose(moved, grad, rtol=3e-2, atol=1e-3)


def _plain_epoch(name, tables, users, positives, negatives, lr, weight_decay):
    """The per-sample SGD of the module docstring, in plain float64 Python (slow, obvious)."""
    user_w, item_w, item_b, user_b = (t.astype(np.float64) for t in tables)
    n_neg = negatives.shape[1]
    total = 0.0
    for u, i, row_negatives in zip(users, positives, negatives, strict=True):
        if name == "mf-bpr":
            for j in row_negatives:
                diff = user_w[u] @ (item_w[i] - item_w[j]) + item_b[i] - item_b[j]
                total += np.logaddexp(0.0, -diff) / n_neg
                g = 1.0 / (1.0 + np.exp(diff))  # sigmoid(-diff)
                p, qi, qj = user_w[u].copy(), item_w[i].copy(), item_w[j].copy()
                user_w[u] -= lr * (-g * (qi - qj) + 2 * weight_decay * p)
                item_w[i] -= lr * (-g * p + 2 * weight_decay * qi)
                item_w[j] -= lr * (g * p + 2 * weight_decay * n_neg * qj)
                item_b[i] += lr * g
                item_b[j] -= lr * g
        else:
            for label, j in zip([1.0] + [0.0] * n_neg, [i, *row_negatives], strict=True):
                s = user_w[u] @ item_w[j] + item_b[j] + user_b[u]
                total += (np.logaddexp(0.0, s) - label * s) / (n_neg + 1)
                g = 1.0 / (1.0 + np.exp(-s)) - label
                p, q = user_w[u].copy(), item_w[j].copy()
                user_w[u] -= lr * (g * q + 2 * weight_decay * p)
                item_w[j] -= lr * (g * p + 2 * weight_decay * (n_neg + 1) * q)
                item_b[j] -= lr * g
                user_b[u] -= lr * g
    return total, (user_w, item_w, item_b, user_b)


@pytest.mark.parametrize("name", ["mf-bpr", "mf-bce"])
def test_the_compiled_epoch_equals_the_plain_reference(name):
    tables = _tiny_tables()
    rng = np.random.default_rng(7)
    users, positives = rng.integers(0, 4, 30), rng.integers(0, 7, 30)
    negatives = rng.integers(0, 7, (30, 3))
    want_loss, want = _plain_epoch(name, tables, users, positives, negatives, 0.2, 0.01)
    got = [t.copy() for t in tables]
    got_loss = _run_kernel(name, got, users, positives, negatives, 0.2, 0.01)
    # 90-120 float32 steps against float64: rounding of ~1e-7 per step, compounded
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=2e-5)


def test_the_compiled_engine_is_the_cpu_default_and_torch_the_gpu_one():
    assert TrainConfig(model="mf-bpr").engine == "compiled"
    assert TrainConfig.for_model("mf-bpr").engine == "compiled"
    assert TrainConfig.for_model("mf-bce").engine == "torch"  # its compiled engine is worse
    assert TrainConfig.for_model("mf-bce", engine="compiled").engine == "compiled"
    assert TrainConfig(model="mf-bpr", device="cuda").engine == "torch"
    with pytest.raises(BadInputError, match="CPU only"):
        TrainConfig(model="mf-bpr", device="cuda", engine="compiled")


def test_runs_saved_before_the_compiled_engine_read_as_torch():
    saved = {"model": "mf-bpr", "dim": 8, "lr": 0.01}
    assert from_dict(TrainConfig, saved).engine == "torch"
    assert from_dict(TrainConfig, {**saved, "engine": "compiled"}).engine == "compiled"


@pytest.mark.parametrize("name", ["mf-bpr", "mf-bce"])
def test_same_seed_same_factors_other_seed_other_factors(name, block_split):
    config = TrainConfig(model=name, engine="compiled", epochs=3, dim=8, refit=False, threads=1)
    a = create_model(config).fit(block_split)
    b = create_model(config).fit(block_split)
    c = create_model(dataclasses.replace(config, seed=7)).fit(block_split)
    for key, value in a.module.state_dict().items():
        # one thread, one program, the same draws: the same operations in the same order
        assert torch.equal(b.module.state_dict()[key], value), key
    assert not np.allclose(a.item_factors(), c.item_factors())


@pytest.mark.parametrize("name", ["mf-bpr", "mf-bce"])
def test_the_compiled_engine_learns_the_blocks(name, block_split):
    model = create_model(TrainConfig(model=name, engine="compiled", **FAST)).fit(block_split)
    losses = [epoch["loss"] for epoch in model.history]
    assert losses[-1] < 0.6 * losses[0]
    # @5: a user's 2 unseen block items among 20, where @10 lets popularity find half of them
    recall = evaluate_model(model, block_split, k=5, part="test").metrics["recall@5"]
    popular = create_model(TrainConfig(model="popularity")).fit(block_split)
    baseline = evaluate_model(popular, block_split, k=5, part="test").metrics["recall@5"]
    assert recall >= 0.9 and baseline < 0.5, (recall, baseline)


def test_the_compiled_fit_keeps_the_start_and_the_best_epoch(block_split):
    """The replay's epoch 0 is the initial vectors, and early stopping restores the best
    epoch's parameters, as with the torch engine."""
    config = TrainConfig(model="mf-bpr", engine="compiled", dim=8, epochs=40, patience=2,
                         refit=False, sgd_lr=0.5, threads=1)
    seen = []
    model = create_model(config)
    model.fit(block_split,
              callbacks=[lambda epoch, stats: seen.append(model.item_factors().copy())])
    _, start = model.starting_vectors()
    assert not np.allclose(start, model.item_factors())
    best = model.history[-1]["best_epoch"]
    np.testing.assert_array_equal(model.item_factors(), seen[best - 1])


def test_a_diverging_compiled_fit_says_what_to_change(block_split):
    from recsys.errors import TrainingDivergedError

    config = TrainConfig(model="mf-bce", engine="compiled", dim=8, epochs=3, sgd_lr=10.0,
                         weight_decay=100.0, refit=False)
    with pytest.raises(TrainingDivergedError, match="SGD step"):
        create_model(config).fit(block_split)
