"""The fast paths against the plain versions they replace (same answers, not timings)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys import linalg, memory
from recsys.data.interactions import Interactions
from recsys.data.protocol import SplitConfig
from recsys.data.splits import make_split
from recsys.evaluation.metrics import (
    _matrices,
    _model_top_k,
    evaluate_model,
    evaluate_scores,
    top_k_items,
)
from recsys.linalg import (
    cosine_item_similarity,
    few_positives_ridge,
    top_k_cosine_similarity,
    weighted_ridge,
)
from recsys.models import als, create_model, model_names
from recsys.models.als import als_half_step, als_plan, exact_half_step
from recsys.models.config import TrainConfig
from tests.numeric import assert_ranking_is_stable, dot_rounding_bound
from tests.synthetic import block_ratings


def _random_csr(rng, n_rows, n_cols, max_len):
    """A binary CSR whose rows have 0..max_len positives (short and long rows, empty ones)."""
    rows = [rng.choice(n_cols, size=rng.integers(0, max_len + 1), replace=False)
            for _ in range(n_rows)]
    data = [(r, c) for r, cols in enumerate(rows) for c in cols]
    r, c = np.array(data).T
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_rows, n_cols))


def test_few_positives_ridge_equals_the_d_by_d_solve():
    rng = np.random.default_rng(0)
    dim, lam, extra, target = 6, 0.8, 2.5, 3.5
    q = torch.from_numpy(rng.normal(size=(20, dim)))
    gram = q.T @ q + lam * torch.eye(dim, dtype=torch.float64)
    chol_inv = torch.linalg.inv(torch.linalg.cholesky(gram))
    y = q[torch.from_numpy(rng.integers(0, 20, size=(5, 4)))]
    y[1, 2:] = 0.0  # padding
    got = few_positives_ridge(y @ chol_inv.T, chol_inv, extra, target)
    want = weighted_ridge(gram, y, extra, target)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-10)


def test_planned_half_step_equals_the_plain_solve_per_row():
    """Rows shorter and longer than dim, empty rows, several chunks: every row the exact
    :func:`weighted_ridge` of its own positives (the plain reference)."""
    rng = np.random.default_rng(1)
    dim, alpha, lam = 8, 1.7, 0.4
    csr = _random_csr(rng, 60, 40, 20)
    indptr = torch.from_numpy(csr.indptr.astype(np.int64))
    indices = torch.from_numpy(csr.indices.astype(np.int64))
    other = torch.from_numpy(rng.normal(size=(40, dim)))
    plan = als_plan(indptr, indices, dim, 40)
    assert {chunk.few for chunk in plan} == {True, False}
    got = exact_half_step(other, indptr, indices, alpha, lam, plan).numpy()
    np.testing.assert_allclose(got, _plain_half_step(csr, other, alpha, lam), atol=1e-9)


def _plain_half_step(csr, other, alpha, lam):
    """The plain reference: one d x d :func:`weighted_ridge` per row, in float64."""
    other = other.double()
    gram = other.T @ other + lam * torch.eye(other.shape[1], dtype=torch.float64)
    rows = []
    for row in range(csr.shape[0]):
        cols = csr.indices[csr.indptr[row]:csr.indptr[row + 1]]
        rows.append(weighted_ridge(gram, other[torch.from_numpy(cols.astype(np.int64))][None],
                                  alpha, 1.0 + alpha)[0].numpy())
    return np.array(rows)


@pytest.mark.parametrize("alpha", [1.0, 40.0])
def test_conjugate_gradient_half_step_equals_the_plain_solve_per_row(alpha):
    """The CG step ALS trains with: float64 to 1e-9, float32 to float32 precision, rows
    without positives exactly zero, at the default confidence and a high one."""
    rng = np.random.default_rng(3)
    dim, lam = 8, 0.4
    csr = _random_csr(rng, 60, 40, 20).tolil()
    csr[5] = 0.0  # a row without positives
    csr = csr.tocsr()
    csr.eliminate_zeros()
    indptr = torch.from_numpy(csr.indptr.astype(np.int64))
    indices = torch.from_numpy(csr.indices.astype(np.int64))
    other = torch.from_numpy(rng.normal(size=(40, dim)))
    want = _plain_half_step(csr, other, alpha, lam)
    got = als_half_step(other, indptr, indices, alpha, lam).numpy()
    np.testing.assert_allclose(got, want, atol=1e-9)
    narrow = als_half_step(other.float(), indptr, indices, alpha, lam).numpy()
    assert narrow.dtype == np.float32
    scale = np.linalg.norm(want, axis=1, keepdims=True) + 1e-12
    assert np.abs(narrow - want).max(initial=0.0, where=scale > 1e-9) < 1e-4 * scale.max()
    empty = np.diff(csr.indptr) == 0
    assert empty.any() and np.abs(narrow[empty]).max() == 0.0


def test_conjugate_gradient_falls_back_to_the_exact_solve(monkeypatch):
    """Rows CG leaves above the tolerance (forced here: one step allowed) take
    the exact solve instead of a half-converged vector."""
    rng = np.random.default_rng(4)
    csr = _random_csr(rng, 30, 25, 12)
    indptr = torch.from_numpy(csr.indptr.astype(np.int64))
    indices = torch.from_numpy(csr.indices.astype(np.int64))
    other = torch.from_numpy(rng.normal(size=(25, 6)))
    monkeypatch.setattr(als, "cg_step_bound", lambda alpha, tol: 1)
    calls = []
    real = als.exact_half_step
    monkeypatch.setattr(als, "exact_half_step", lambda *a: calls.append(1) or real(*a))
    got = als_half_step(other, indptr, indices, 2.0, 0.3).numpy()
    assert calls == [1]
    np.testing.assert_allclose(got, _plain_half_step(csr, other, 2.0, 0.3), atol=1e-9)


def _dense_top_k(matrix, k):
    """The plain reference: the whole cosine matrix, densified, each row thresholded."""
    dense = cosine_item_similarity(matrix).toarray()
    cutoff = np.partition(dense, dense.shape[1] - k, axis=1)[:, dense.shape[1] - k]
    dense[dense < cutoff[:, None]] = 0.0
    return dense


def test_blocked_top_k_similarity_equals_the_dense_one(monkeypatch):
    rng = np.random.default_rng(2)
    matrix = _random_csr(rng, 50, 23, 9).astype(np.float32)
    monkeypatch.setattr(linalg, "_BLOCK_ELEMENTS", 23 * 4)  # 4 item rows per block
    got = top_k_cosine_similarity(matrix, 5)
    # Entry for entry: a binary matrix makes every co-count an exact integer whatever order
    # scipy's sparse products (no BLAS) sum in, and both scale it by the same two norms.
    np.testing.assert_array_equal(got.toarray(), _dense_top_k(matrix, 5))
    assert (np.diff(got.indptr) >= 5).mean() > 0.5  # rows keep their neighbours


def test_ease_refuses_up_front_when_its_matrices_do_not_fit(monkeypatch):
    split = make_split(Interactions.from_frame(block_ratings()), SplitConfig())
    monkeypatch.setattr(memory, "available_bytes", lambda: 1_000)
    with pytest.raises(ValueError, match=r"EASE on \d+ items .* needs about .* bytes.*"
                                         r"only .* available"):
        create_model(TrainConfig(model="ease")).fit(split)


def test_top_k_dot_ranks_like_top_k_items():
    from recsys.evaluation.metrics import top_k_items
    from recsys.evaluation.topk import top_k_dot

    rng = np.random.default_rng(3)
    p, q, bias = rng.normal(size=(30, 5)), rng.normal(size=(40, 5)), rng.normal(size=40)
    seen = _random_csr(rng, 30, 40, 12)
    users = np.array([3, 0, 29, 7, 7, 12])
    want = top_k_items(lambda u: (p[u] @ q.T + bias).astype(np.float32), users, seen, 10)
    got = top_k_dot(p, q, users, seen, 10, item_bias=bias, block_size=4)
    bound = dot_rounding_bound(p, q, bias)  # float32 sums in torch's order vs numpy float64
    exact = np.where(seen[users].toarray() > 0, -np.inf, p[users] @ q.T + bias)
    assert_ranking_is_stable(-np.sort(-exact, axis=1)[:, :11], bound)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=bound)
    assert not seen[users[:, None], got[0]].toarray().any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_auto_trains_and_scores_on_the_gpu():
    split = make_split(Interactions.from_frame(block_ratings()), SplitConfig())
    config = TrainConfig(model="mf-bpr", device="auto", epochs=2, dim=8, refit=False)
    assert config.device == "cuda"
    model = create_model(config).fit(split)
    assert all(p.device.type == "cuda" for p in model.module.parameters())
    scores = model.score(np.arange(3))
    assert scores.shape == (3, split.train.n_items) and np.isfinite(scores).all()


@pytest.mark.parametrize("name", model_names(score_kind=("dot", "dot+bias")))
def test_evaluation_through_top_k_dot_equals_ranking_by_score(name, block_split):
    """Factor models are evaluated through the blocked top_k_dot; its scores are those of
    ``model.score`` (the general path) to float32 rounding, its lists a correct ranking by
    those scores, and every user's metrics the same wherever rounding cannot reorder the list.

    The two paths sum each dot product in another order (a (5, d) and a (3, d) block, and
    BLAS picks its kernel by CPU), so scores agree to the summation bound, not bit for bit, and
    two items whose scores lie within that bound may swap: both orders are right.
    """
    config = TrainConfig(model=name, epochs=5, dim=8, lr=0.02, batch_size=64, patience=0,
                         refit=False, threads=1, als_lambda=3.0)
    model = create_model(config).fit(*block_split.fit_parts())
    if name == "mf-bce":  # give the user biases (zero at init) something to add
        assert np.abs(model.user_biases()).max() > 0
    relevant, exclude, counts = _matrices(block_split.test_part.positives,
                                          block_split.seen_at_test)
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    bound = dot_rounding_bound(model.user_factors(), model.item_factors(), model.item_biases(),
                               model.user_biases())
    reference = np.array(model.score(users), np.float32)
    rows, cols = exclude[users].nonzero()
    reference[rows, cols] = -np.inf

    fast_items, fast_scores = _model_top_k(model, users, exclude, k=7, batch_size=5)
    items, scores = top_k_items(model.score, users, exclude, k=7, batch_size=3)
    np.testing.assert_allclose(fast_scores, scores, rtol=0, atol=bound)
    # A correct top 7: the reference scores of the fast path's items, in its order, are the
    # 7 best reference scores to within the bound (a near-tie may swap, nothing else).
    picked = np.take_along_axis(reference, fast_items, axis=1)
    np.testing.assert_allclose(picked, scores, rtol=0, atol=2 * bound)
    assert not exclude[users[:, None], fast_items].toarray().any()

    fast = evaluate_model(model, block_split)
    plain = evaluate_scores(model.score, relevant, exclude, counts, k=10)
    best = -np.sort(-reference, axis=1)[:, :11]  # the top 10 and the first one left out
    gaps = -np.diff(np.where(np.isfinite(best), best, np.nan), axis=1)
    steady = ~(gaps <= 2 * bound).any(axis=1)  # no near-tie: the top-10 list cannot reorder
    assert steady.mean() >= 0.5, "too few users whose list rounding cannot reorder"
    for metric, values in plain.per_user.items():
        np.testing.assert_array_equal(fast.per_user[metric][steady], values[steady], metric)


def test_ranks_and_spearman_equal_scipy_stats():
    """The numpy rank correlation that spares every CLI and worker start scipy.stats."""
    from scipy.stats import rankdata, spearmanr

    rng = np.random.default_rng(5)
    a = rng.integers(0, 6, size=200).astype(float)  # many ties
    b = a * 0.5 + rng.normal(size=200)
    np.testing.assert_allclose(linalg.average_ranks(a), rankdata(a))
    assert linalg.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(linalg.spearman(np.ones(5), np.arange(5)))
    assert np.isnan(linalg.spearman([3.0, np.nan, 1.0], [1.0, 2.0, 3.0]))  # as scipy


def test_a_large_alpha_takes_the_exact_solve_at_once(monkeypatch):
    """Where CG's step bound passes CG_MAX_BOUND (alpha 1e4) the exact solve is cheaper."""
    rng = np.random.default_rng(6)
    csr = _random_csr(rng, 20, 15, 8)
    indptr = torch.from_numpy(csr.indptr.astype(np.int64))
    indices = torch.from_numpy(csr.indices.astype(np.int64))
    other = torch.from_numpy(rng.normal(size=(15, 4))).float()
    calls = []
    real = als.exact_half_step
    monkeypatch.setattr(als, "exact_half_step", lambda *a: calls.append(1) or real(*a))
    got = als_half_step(other, indptr, indices, 1e4, 0.5).numpy()
    assert calls == [1]
    np.testing.assert_allclose(got, _plain_half_step(csr, other, 1e4, 0.5), rtol=1e-3,
                               atol=1e-5)
    calls.clear()
    als_half_step(other, indptr, indices, 1.0, 0.5)
    assert calls == []  # the default alpha: CG
