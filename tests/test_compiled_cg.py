"""mf-als's compiled conjugate gradient (recsys.models.compiled_cg) against the torch version
it replaces on the CPU (``als._cg_batched``, still the GPU's): the same contract, the same
numbers up to rounding, whatever the number of threads."""

import threading

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys.models import als, compiled_cg, create_model, kernels
from recsys.models.config import TrainConfig


def _problem(seed, dtype, n_rows=60, n_columns=45, dim=8):
    """Whitened columns, a CSR pattern with empty rows (inside and at the end) and rows
    longer than ``dim``, each cell's weight, each row's diagonal scale and a start."""
    rng = np.random.default_rng(seed)
    dense = rng.random((n_rows, n_columns)) < rng.uniform(0.02, 0.4, (n_rows, 1))
    dense[[3, 17, n_rows - 2, n_rows - 1]] = False
    dense[5, :30] = True
    csr = sp.csr_matrix(dense.astype(np.float64))
    torch_dtype = {np.float32: torch.float32, np.float64: torch.float64}[dtype]

    def tensor(values):
        return torch.from_numpy(np.asarray(values, dtype)).to(torch_dtype)

    return dict(
        columns=tensor(rng.normal(size=(n_columns, dim)) / np.sqrt(n_columns)),
        indptr=torch.from_numpy(csr.indptr.astype(np.int64)),
        indices=torch.from_numpy(csr.indices.astype(np.int64)),
        weights=tensor(rng.uniform(0.05, 1.0, csr.nnz)),
        row_scale=tensor(rng.uniform(0.3, 1.0, (n_rows, dim))),
        start=tensor(rng.normal(size=(n_rows, dim))))


def _solve(solver, p, alpha, weights, scale, start, steps, tol):
    z = p["start"].clone() if start else p["start"].new_zeros(p["start"].shape)
    return solver(p["columns"], p["row_scale"] if scale else None, p["indptr"], p["indices"],
                  p["weights"] if weights else None, alpha, z, start, steps, tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("start", [False, True])
def test_compiled_cg_gives_the_batched_solution_objective_and_residuals(dtype, weights, scale,
                                                                         start):
    p = _problem(1, dtype)
    got = _solve(als._cg_compiled, p, 3.0, weights, scale, start, 3, 1e-12)
    want = _solve(als._cg_batched, p, 3.0, weights, scale, start, 3, 1e-12)
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    z, res_sq, stop_sq, fitted = (t.double().numpy() for t in got)
    want_z, want_res, want_stop, want_fitted = (t.double().numpy() for t in want)
    np.testing.assert_allclose(z, want_z, rtol=rtol, atol=rtol * np.abs(want_z).max())
    np.testing.assert_allclose(stop_sq, want_stop, rtol=rtol)
    np.testing.assert_allclose(res_sq, want_res, rtol=50 * rtol, atol=rtol * want_res.max())
    np.testing.assert_allclose(fitted, want_fitted, rtol=rtol,
                               atol=rtol * np.abs(want_fitted).max())
    assert np.abs(z[[3, 17, -2, -1]]).max() == 0.0  # rows without positives: zero at once
    assert res_sq.max() > 0  # 3 steps from a random start: not solved yet, so truly compared


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_cg_solves_to_the_tolerance_and_rows_stop_on_their_own(dtype):
    p = _problem(2, dtype)
    tol = als.CG_TOLERANCE[p["columns"].dtype]
    z, res_sq, stop_sq, _ = _solve(als._cg_compiled, p, 2.0, True, True, True, 200, tol)
    assert bool((res_sq <= stop_sq).all())
    want_z = _solve(als._cg_batched, p, 2.0, True, True, True, 200, tol)[0]
    # both within tol * condition number (<= 1 + alpha) of the solution, relative to b ~ z
    np.testing.assert_allclose(z.numpy(), want_z.numpy(),
                               atol=20 * tol * 3.0 * float(want_z.abs().max()))


def test_each_row_stops_at_its_own_tolerance():
    """A row that meets the tolerance within 3 steps stops there: 40 allowed steps leave it bit
    for bit as it was (its residual is small, not zero, so another step would move it),
    while the rows that had not met it keep improving."""
    p = _problem(5, np.float64)
    few = _solve(als._cg_compiled, p, 3.0, False, True, True, 3, 1e-3)
    many = _solve(als._cg_compiled, p, 3.0, False, True, True, 40, 1e-3)
    done = (few[1] <= few[2]) & (few[1] > 0)
    assert int(done.sum()) >= 5 and int((~done).sum()) >= 5
    assert torch.equal(few[0][done], many[0][done])
    assert not torch.equal(few[0][~done], many[0][~done])
    assert bool((many[1] <= many[2]).all())


def test_threads_split_the_rows_without_changing_any_result(monkeypatch):
    p = _problem(3, np.float32, n_rows=200)
    one = _solve(als._cg_compiled, p, 4.0, True, True, True, 4, 1e-12)
    ran = []
    kernel = compiled_cg.cg_rows

    def spy(*args):
        ran.append((args[-5], args[-4], threading.get_ident()))
        return kernel(*args)

    monkeypatch.setattr(compiled_cg, "cg_rows", spy)
    before = torch.get_num_threads()
    try:
        for threads in (2, 3, 7):
            torch.set_num_threads(threads)
            ran.clear()
            again = _solve(als._cg_compiled, p, 4.0, True, True, True, 4, 1e-12)
            for a, b in zip(one, again, strict=True):  # rows are independent: the same bits
                assert torch.equal(a, b)
            blocks = sorted((begin, end) for begin, end, _ in ran)
            assert len(blocks) == threads and len({ident for *_, ident in ran}) >= 2
            assert blocks[0][0] == 0 and blocks[-1][1] == 200
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("lengths", [[0, 0, 5, 0, 0], [9], [0, 0, 0], [1] * 10, [3, 0, 0, 0]])
@pytest.mark.parametrize("threads", [1, 2, 4, 16])
def test_row_blocks_cover_every_row_once(lengths, threads):
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    blocks = compiled_cg.row_blocks(indptr, threads)
    covered = [row for begin, end in blocks for row in range(begin, end)]
    assert covered == list(range(len(lengths))) and len(blocks) <= threads
    assert all(end > begin for begin, end in blocks)


def test_an_error_in_any_block_is_raised(monkeypatch):
    p = _problem(6, np.float32, n_rows=100)
    kernel = compiled_cg.cg_rows

    def failing(*args):
        if args[-5] > 0:  # not the block run on the calling thread
            raise ValueError("block failed")
        return kernel(*args)

    monkeypatch.setattr(compiled_cg, "cg_rows", failing)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ValueError, match="block failed"):
            _solve(als._cg_compiled, p, 3.0, False, False, True, 3, 1e-6)
    finally:
        torch.set_num_threads(before)


def test_a_nan_start_is_reported_unconverged_not_hidden():
    p = _problem(4, np.float32)
    p["start"][7, 2] = float("nan")
    z, res_sq, stop_sq, fitted = _solve(als._cg_compiled, p, 3.0, False, False, True, 3, 1e-6)
    assert bool(torch.isnan(z[7]).any()) and not bool(res_sq[7] <= stop_sq[7])
    assert bool(torch.isnan(fitted[7])) and bool(torch.isfinite(fitted[:7]).all())
    assert bool(torch.isfinite(z[:7]).all())


def test_an_infinite_column_never_counts_as_solved():
    p = _problem(7, np.float32)
    row = int(np.argmax((p["indptr"][1:] - p["indptr"][:-1]).numpy()))
    p["columns"][p["indices"][p["indptr"][row]], 0] = float("inf")
    z, res_sq, stop_sq, _ = _solve(als._cg_compiled, p, 3.0, False, False, False, 50, 1e-6)
    assert not bool(res_sq[row] <= stop_sq[row])  # inf <= inf would read as solved


def test_kernels_compile_without_a_cache_where_none_can_be_written(monkeypatch):
    calls = []

    def fake_njit(**options):
        calls.append(options)
        if options.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return lambda function: function

    monkeypatch.setattr(kernels, "njit", fake_njit)

    def double(x):
        return 2 * x

    assert kernels.kernel(double)(4) == 8
    assert [c.get("cache") for c in calls] == [True, None]
    assert calls[1]["nogil"] and calls[1]["fastmath"] == kernels.FASTMATH


@pytest.mark.parametrize("settings", [dict(), dict(als_cg_steps=0, als_nu=1.0),
                                      dict(als_recency=3.0, dim=12)])
def test_a_fit_on_the_compiled_path_matches_the_batched_path(block_split, monkeypatch, settings):
    cfg = TrainConfig.for_model("mf-als", **{**dict(dim=8, epochs=4, patience=0, refit=False),
                                             **settings})
    compiled = create_model(cfg).fit(block_split)
    monkeypatch.setattr(als, "_cg_compiled", als._cg_batched)
    batched = create_model(cfg).fit(block_split)
    losses = [s["loss"] for s in compiled.history], [s["loss"] for s in batched.history]
    assert len(losses[0]) == 4
    np.testing.assert_allclose(*losses, rtol=1e-4)
    for a, b in ((compiled.users, batched.users), (compiled.items, batched.items)):
        np.testing.assert_allclose(a, b, atol=1e-3 * np.abs(b).max())
