"""The fast paths against the plain versions they replace (same answers, not timings)."""

import numpy as np
import scipy.sparse as sp
import torch

from recsys.linalg import few_positives_ridge, weighted_ridge
from recsys.models.als import als_half_step, als_plan


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
    got = als_half_step(other, indptr, indices, alpha, lam, plan).numpy()
    gram = other.T @ other + lam * torch.eye(dim, dtype=torch.float64)
    for row in range(60):
        cols = csr.indices[csr.indptr[row]:csr.indptr[row + 1]]
        want = weighted_ridge(gram, other[torch.from_numpy(cols.astype(np.int64))][None],
                              alpha, 1.0 + alpha)[0].numpy()
        np.testing.assert_allclose(got[row], want, atol=1e-9)
