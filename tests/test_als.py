"""mf-als: the closed-form steps against a direct solve, frequency-scaled L2, fixed-step CG,
training, early stopping, saving."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys.data.interactions import Interactions
from recsys.data.protocol import SplitConfig
from recsys.data.splits import Part
from recsys.evaluation.metrics import evaluate_model
from recsys.linalg import weighted_ridge
from recsys.models import als, create_model
from recsys.models.als import als_half_step, als_objective, frequency_scaled_lambda
from recsys.models.config import TrainConfig
from recsys.storage.runs import load_run, train_run
from tests.synthetic import USERS_PER_BLOCK, tiny_movielens

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
    assert cfg.epochs == 15 and cfg.als_lambda > 1 and cfg.als_cg_steps == 3 and cfg.als_nu == 0
    assert cfg.weight_decay == TrainConfig().weight_decay  # the torch models' L2, unread here
    with pytest.raises(ValueError, match="als_alpha"):
        TrainConfig(als_alpha=-1.0)


def _tiny_problem(seed):
    """A binary 9 x 14 matrix (one empty row, rows shorter and longer than d), column factors."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((9, 14)) < 0.35).astype(np.float64)
    dense[2] = 0.0
    dense[5, :10] = 1.0  # more positives than dimensions
    csr = sp.csr_matrix(dense)
    return (dense, rng.normal(size=(14, 4)), torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)))


def _direct_scaled_step(q, dense, alpha, row_lambda):
    """Each row's scaled normal equations, dense: (Q^T C_u Q + lambda_u I) x = Q^T C_u p_u."""
    return np.stack([_direct_user_step(q, row, alpha, lam) for row, lam in
                     zip(dense, row_lambda, strict=True)])


@pytest.mark.parametrize("alpha", [2.5, 1e4])  # CG, and the exact solve a large alpha takes
def test_frequency_scaled_step_solves_each_rows_scaled_normal_equations(alpha):
    dense, q, indptr, indices = _tiny_problem(3)
    row_lambda = frequency_scaled_lambda(torch.from_numpy(dense.sum(1)), 14, alpha, 0.7, 1.0)
    assert row_lambda.mean().item() == pytest.approx(0.7)  # the rescaled lambda: mean kept
    assert row_lambda[5] > row_lambda[0] > row_lambda[2]  # the busiest row: the most L2
    got = als_half_step(torch.from_numpy(q), indptr, indices, alpha, 0.7,
                        row_lambda=row_lambda).numpy()
    want = _direct_scaled_step(q, dense, alpha, row_lambda.numpy())
    # float64 CG stops at a relative residual of 1e-12, times the condition number <= 1 + alpha
    np.testing.assert_allclose(got, want, atol=1e-9 * (1 + alpha) * np.abs(want).max())
    assert np.abs(got[2]).max() == 0.0


def test_rows_cg_leaves_unconverged_take_the_exact_scaled_solve(monkeypatch):
    dense, q, indptr, indices = _tiny_problem(4)
    row_lambda = torch.linspace(0.2, 3.0, 9, dtype=torch.float64)
    monkeypatch.setattr(als, "cg_step_bound", lambda alpha, tol: 1)
    got = als_half_step(torch.from_numpy(q), indptr, indices, 2.0, 1.0, row_lambda=row_lambda)
    np.testing.assert_allclose(got.numpy(), _direct_scaled_step(q, dense, 2.0, row_lambda.numpy()),
                               atol=1e-9)


def test_nu_zero_is_the_classic_objective_and_a_tiny_nu_the_same_fit(block_split):
    assert frequency_scaled_lambda(torch.tensor([1, 5, 0]), 10, 3.0, 2.0, 0.0) is None
    rng = np.random.default_rng(5)
    dense, q, indptr, indices = _tiny_problem(5)
    x, y = torch.from_numpy(rng.normal(size=(9, 4))), torch.from_numpy(q)
    same = torch.full((9,), 0.3, dtype=torch.float64), torch.full((14,), 0.3, dtype=torch.float64)
    assert als_objective(x, y, indptr, indices, 2.0, 0.3, same) == pytest.approx(
        als_objective(x, y, indptr, indices, 2.0, 0.3))
    # the per-row path (its own whitening) with every lambda ~ equal: the classic fit's scores
    classic = create_model(TrainConfig(model="mf-als", **FAST)).fit(block_split)
    scaled = create_model(TrainConfig(model="mf-als", **FAST, als_nu=1e-9)).fit(block_split)
    users = np.arange(block_split.train.n_users)
    # float32 solves agree to ~1e-6 relative per sweep, on scores of order 1; 8 sweeps of a
    # contracting iteration keep that far below 1e-4; a slip in the per-row path (its scales,
    # its rotation) moves them by far more
    np.testing.assert_allclose(scaled.score(users), classic.score(users), atol=1e-4)


def test_scaled_objective_equals_the_dense_sum():
    rng = np.random.default_rng(6)
    dense, q, indptr, indices = _tiny_problem(6)
    x, y = rng.normal(size=(9, 4)), q
    lam_x, lam_y = rng.uniform(0.1, 2.0, 9), rng.uniform(0.1, 2.0, 14)
    c = 1.0 + 3.0 * dense
    expected = ((c * (dense - x @ y.T) ** 2).sum() + lam_x @ (x * x).sum(1)
                + lam_y @ (y * y).sum(1))
    got = als_objective(torch.from_numpy(x), torch.from_numpy(y), indptr, indices, 3.0, 9.9,
                        (torch.from_numpy(lam_x), torch.from_numpy(lam_y)))
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("extra", [{"als_nu": 1.0}, {"als_nu": 0.5, "als_cg_steps": 2},
                                   {"als_cg_steps": 1, "als_alpha": 30.0}])
def test_objective_falls_sweep_to_sweep_with_scaled_l2_and_fixed_steps(block_split, extra):
    """Each half step minimises (or, with fixed CG steps from the last vectors, lowers) its
    rows' part of the objective, so the whole objective never rises."""
    model = create_model(TrainConfig(model="mf-als", **{**FAST, **extra})).fit(block_split)
    losses = [h["loss"] for h in model.history]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < losses[0]


def test_fixed_steps_approach_the_exact_fit(block_split):
    exact = create_model(TrainConfig(model="mf-als", **{**FAST, "epochs": 30})).fit(block_split)
    steps = create_model(TrainConfig(model="mf-als", **{**FAST, "epochs": 30,
                                                        "als_cg_steps": 3})).fit(block_split)
    # 3 warm-started steps per sweep trail the exact solves by a vanishing margin once the
    # sweeps converge; 1e-3 is far below what one sweep's progress moves the loss early on
    assert steps.history[-1]["loss"] == pytest.approx(exact.history[-1]["loss"], rel=1e-3)


def test_a_run_saved_before_nu_and_cg_steps_loads_as_the_classic_model(tmp_path):
    ml = tiny_movielens()
    cfg = TrainConfig.for_model("mf-als", dim=4, epochs=2, threads=1, als_lambda=3.0)
    run = train_run(ml, SplitConfig(), cfg, tmp_path / "run")
    config_file = tmp_path / "run" / "config.json"
    saved = json.loads(config_file.read_text())
    del saved["train"]["als_nu"], saved["train"]["als_cg_steps"]
    config_file.write_text(json.dumps(saved))
    loaded = load_run(tmp_path / "run")
    assert (loaded.train_config.als_nu, loaded.train_config.als_cg_steps) == (0.0, 0)
    np.testing.assert_array_equal(loaded.model.score(np.arange(3)), run.model.score(np.arange(3)))


@pytest.mark.parametrize("steps", [0, 2])  # solved to float precision, and two steps only
@pytest.mark.parametrize("nu", [0.0, 1.0])
def test_the_objective_from_cg_residuals_equals_the_pass_over_the_positives(steps, nu):
    """The sweep's loss comes from the item step's CG residuals; it must be the objective."""
    dense, q, indptr, indices = _tiny_problem(7)
    x = torch.from_numpy(np.random.default_rng(7).normal(size=(9, 4)))
    by_item = sp.csr_matrix(dense.T)
    item_indptr = torch.from_numpy(by_item.indptr.astype(np.int64))
    item_indices = torch.from_numpy(by_item.indices.astype(np.int64))
    lambdas = (frequency_scaled_lambda(torch.from_numpy(dense.sum(1)), 14, 2.0, 0.5, nu),
               frequency_scaled_lambda(torch.from_numpy(dense.sum(0)), 9, 2.0, 0.5, nu))
    y, items_part = als.half_step_and_objective(
        x, item_indptr, item_indices, 2.0, 0.5, row_lambda=lambdas[1], steps=steps,
        start=torch.from_numpy(q) if steps else None)
    users_l2 = float((lambdas[0] if nu else torch.full((9,), 0.5, dtype=torch.float64))
                     @ (x**2).sum(1))
    want = als_objective(x, y, indptr, indices, 2.0, 0.5, lambdas)
    assert items_part + users_l2 == pytest.approx(want, rel=1e-9)


# ---------------------------------------------------------------------------- recency weights
def _weighted_direct_step(q, dense, weights, alpha, row_lambda):
    """Each row's normal equations with a confidence per cell: 1 + alpha * w on a positive."""
    out = []
    for row, w, lam in zip(dense, weights, row_lambda, strict=True):
        c = 1.0 + alpha * w * row
        a = q.T @ np.diag(c) @ q + lam * np.eye(q.shape[1])
        out.append(np.linalg.solve(a, q.T @ (c * row)))
    return np.stack(out)


def _tiny_weighted_problem(seed):
    dense, q, indptr, indices = _tiny_problem(seed)
    rng = np.random.default_rng(seed + 100)
    weights = np.where(dense > 0, rng.uniform(0.05, 1.0, dense.shape), 0.0)
    cells = torch.from_numpy(sp.csr_matrix(weights).data)  # CSR order, as the pattern's
    assert len(cells) == len(indices)
    return dense, q, indptr, indices, weights, cells


@pytest.mark.parametrize("alpha", [2.5, 1e4])  # CG, and the exact solve a large alpha takes
@pytest.mark.parametrize("nu", [0.0, 1.0])
def test_weighted_step_solves_each_rows_normal_equations(alpha, nu):
    dense, q, indptr, indices, weights, cells = _tiny_weighted_problem(8)
    row_lambda = frequency_scaled_lambda(torch.from_numpy(weights.sum(1)), 14, alpha, 0.7, nu)
    got = als_half_step(torch.from_numpy(q), indptr, indices, alpha, 0.7,
                        row_lambda=row_lambda, weights=cells).numpy()
    lambdas = np.full(9, 0.7) if row_lambda is None else row_lambda.numpy()
    want = _weighted_direct_step(q, dense, weights, alpha, lambdas)
    np.testing.assert_allclose(got, want, atol=1e-9 * (1 + alpha) * np.abs(want).max())
    assert np.abs(got[2]).max() == 0.0
    # the weights matter: the unweighted step is a different solution
    plain = als_half_step(torch.from_numpy(q), indptr, indices, alpha, 0.7,
                          row_lambda=row_lambda).numpy()
    assert np.abs(plain - want).max() > 100 * np.abs(got - want).max()


def test_weighted_exact_solve_takes_the_rows_cg_leaves(monkeypatch):
    """The exact weighted solve (the few-positives LU form and the d x d form) per row."""
    dense, q, indptr, indices, weights, cells = _tiny_weighted_problem(9)
    monkeypatch.setattr(als, "cg_step_bound", lambda alpha, tol: 1)
    got = als_half_step(torch.from_numpy(q), indptr, indices, 2.0, 0.4, weights=cells)
    np.testing.assert_allclose(got.numpy(), _weighted_direct_step(q, dense, weights, 2.0,
                                                                  np.full(9, 0.4)), atol=1e-9)


@pytest.mark.parametrize("steps", [0, 2])
def test_weighted_objective_from_cg_residuals_equals_the_dense_sum(steps):
    dense, q, indptr, indices, weights, _ = _tiny_weighted_problem(10)
    x = np.random.default_rng(10).normal(size=(9, 4))
    by_item = sp.csr_matrix(weights.T)
    item_cells = torch.from_numpy(by_item.data)
    y, items_part = als.half_step_and_objective(
        torch.from_numpy(x), torch.from_numpy(by_item.indptr.astype(np.int64)),
        torch.from_numpy(by_item.indices.astype(np.int64)), 2.0, 0.5, steps=steps,
        start=torch.from_numpy(q) if steps else None, weights=item_cells)
    y = y.numpy()
    c = 1.0 + 2.0 * weights * dense
    dense_sum = (c * (dense - x @ y.T) ** 2).sum() + 0.5 * ((x * x).sum() + (y * y).sum())
    assert items_part + 0.5 * (x * x).sum() == pytest.approx(dense_sum, rel=1e-9)
    user_cells = torch.from_numpy(sp.csr_matrix(weights).data)
    assert als_objective(torch.from_numpy(x), torch.from_numpy(y), indptr, indices, 2.0, 0.5,
                         weights=user_cells) == pytest.approx(dense_sum, rel=1e-9)


def test_recency_weights_halve_every_half_life_of_later_positives():
    frame = pd.DataFrame({"user_id": [1, 1, 1, 2, 1, 2], "item_id": [10, 11, 12, 10, 13, 11],
                          "rating": [5.0] * 6, "timestamp": [5, 1, 9, 3, 9, 2]})
    events = Interactions.from_frame(frame)
    assert als.recency_weights(events, 0.0) is None
    weights = als.recency_weights(events, 2.0)
    by_pair = {(int(events.user_ids[u]), int(events.item_ids[i])): w for u, i, w in
               zip(events.user_index, events.item_index, weights, strict=True)}
    # user 1: items 11 (t 1), 10 (t 5), then 12 and 13 in the same second (t 9): both latest
    assert by_pair[(1, 13)] == by_pair[(1, 12)] == 1.0
    assert by_pair[(1, 10)] == pytest.approx(0.5) and by_pair[(1, 11)] == pytest.approx(2 ** -1.5)
    assert by_pair[(2, 10)] == 1.0 and by_pair[(2, 11)] == pytest.approx(2 ** -0.5)
    # the order of the lines never matters, only the timestamps
    shuffled = Interactions.from_frame(frame.iloc[::-1].reset_index(drop=True))
    again = als.recency_weights(shuffled, 2.0)
    assert sorted(again) == pytest.approx(sorted(weights))


def test_recency_moves_a_users_list_towards_their_latest_taste():
    """Half the users liked block A long ago and block B lately, the other half the reverse:
    without recency their lists follow their history's bulk, with a short half-life their
    latest positives."""
    rows, t, latest_block = [], 0, {}
    for user in range(1, 61):
        old, new = (0, 1) if user % 2 else (1, 0)
        latest_block[user] = new
        rng = np.random.default_rng(user)
        history = [(i, old) for i in rng.permutation(8)[:5]] + [(i, new) for i in
                                                                 rng.permutation(8)[:2]]
        for item, block in history:
            t += 1
            rows.append((user, 1 + item + 8 * block, 5.0, t))
    events = Interactions.from_frame(pd.DataFrame(
        rows, columns=["user_id", "item_id", "rating", "timestamp"]))
    seen = events.to_csr()

    def share_of_latest_block(recency: float) -> float:
        cfg = TrainConfig(model="mf-als", **{**FAST, "als_recency": recency})
        model = create_model(cfg)
        model.n_users, model.n_items = events.n_users, events.n_items
        sweeps = model.start_training(Part(events, events))
        for epoch in range(1, 9):
            sweeps.train_epoch(epoch)
        hits = [(events.item_ids[model.recommend(u, k=3, exclude=seen)[0]] - 1) // 8
                == latest_block[int(events.user_ids[u])] for u in range(events.n_users)]
        return float(np.mean(hits))

    # measured: 0.49 without recency, 0.78 at half-life 0.5, 0.69 at 1 (fixed seeds)
    assert share_of_latest_block(0.5) > share_of_latest_block(0.0) + 0.2


# ---------------------------------------------------------------- review 24's gap tests
def test_weighted_exact_solve_with_a_lambda_per_row(monkeypatch):
    """The weighted exact path (few-positives LU form and d x d form) with distinct per-row
    lambdas, at an alpha where lambda matters: CG is cut to one step so every row falls back."""
    dense, q, indptr, indices, weights, cells = _tiny_weighted_problem(8)
    assert (dense.sum(1) < 4).any() and (dense.sum(1) > 4).any()  # both exact forms run
    row_lambda = torch.linspace(0.2, 3.0, 9, dtype=torch.float64)
    monkeypatch.setattr(als, "cg_step_bound", lambda alpha, tol: 1)
    got = als_half_step(torch.from_numpy(q), indptr, indices, 2.0, 1.0, row_lambda=row_lambda,
                        weights=cells).numpy()
    want = _weighted_direct_step(q, dense, weights, 2.0, row_lambda.numpy())
    np.testing.assert_allclose(got, want, atol=1e-9)


def _events(seed=0, n=400):
    rng = np.random.default_rng(seed)
    return Interactions.from_frame(pd.DataFrame({
        "user_id": rng.integers(1, 30, n), "item_id": rng.integers(1, 50, n), "rating": 5.0,
        "timestamp": rng.integers(0, 60, n)}))


def _sweeps(events, **settings):
    cfg = TrainConfig(model="mf-als", **{"dim": 4, "epochs": 2, "patience": 0, **settings})
    model = create_model(cfg)
    model.n_users, model.n_items = events.n_users, events.n_items
    return model.start_training(Part(events, events))


def test_start_training_lays_each_pairs_weight_beside_its_index_in_both_orientations():
    events = _events()
    sweeps = _sweeps(events, als_recency=2.0, als_nu=1.0)
    w = als.recency_weights(events, 2.0)
    dense = np.zeros((events.n_users, events.n_items))
    dense[events.user_index, events.item_index] = w
    orientations = zip(sweeps.rows, sweeps.weights, (dense, dense.T), strict=True)
    for (indptr, indices), cells, matrix in orientations:
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr.numpy()))
        np.testing.assert_allclose(cells.numpy(), matrix[rows, indices.numpy()], rtol=1e-6)
    # nu > 0: a row's frequency is its summed weight, not its count
    for lambdas, matrix, n_columns in zip(sweeps.row_lambdas, (dense, dense.T),
                                          (events.n_items, events.n_users), strict=True):
        cfg_lam, cfg_alpha = sweeps.model.config.als_lambda, sweeps.model.config.als_alpha
        want = frequency_scaled_lambda(torch.from_numpy(matrix.sum(1)), n_columns, cfg_alpha,
                                       cfg_lam, 1.0)
        np.testing.assert_allclose(lambdas.numpy(), want.numpy(), rtol=1e-12)


def test_a_pair_stored_twice_counts_once_with_its_larger_weight():
    events = Interactions(np.array([0, 0, 0]), np.array([1, 1, 2]), np.ones(3, np.float32),
                          np.array([1, 5, 3]), np.array([10]), np.array([1, 2, 3]))
    matrix = als._training_matrix(events, np.array([0.25, 1.0, 0.5]))
    assert matrix.nnz == 2 and matrix[0, 1] == 1.0 and matrix[0, 2] == 0.5


@pytest.mark.parametrize("settings", [{"als_alpha": 1e4}, {"als_alpha": 2.0, "als_cg_steps": 2}])
def test_a_sweeps_loss_is_the_weighted_objective(settings):
    """The loss a sweep reports, from the exact path (alpha 1e4) and from CG's residuals."""
    events = _events(1)
    sweeps = _sweeps(events, als_recency=2.0, als_lambda=0.5, **settings)
    sweeps.items = sweeps.items.double()
    loss = sweeps.train_epoch(1)
    model = sweeps.model
    x, y = torch.from_numpy(model.users), torch.from_numpy(model.items)
    want = als_objective(x, y, *sweeps.rows[0], settings["als_alpha"], 0.5,
                         weights=sweeps.weights[0]) / len(sweeps.rows[0][1])
    assert loss == pytest.approx(want, rel=1e-6)
