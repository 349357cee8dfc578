"""The compiled conjugate gradient of mf-als's half-steps on the CPU: each row's whole CG in one
numba loop.

:func:`recsys.models.als.half_step_and_objective` solves, for every row u of the training
matrix, the whitened system ``(I + alpha D_u W_u^T E_u W_u D_u) z_u = D_u W_u^T (1 + alpha w_u)``
(``W_u`` the whitened columns of the row's positives, ``E_u = diag(w_u)`` their recency
weights, ``D_u`` the row's diagonal scale; see there). The torch version runs CG on all rows at
once: each step is two sparse products over the positives (``sampled_addmm``, then CSR times
dense) and about ten dense operations over the (n_rows, d) block, each a pass through memory
that a 1,682 x 128 block no longer fits in a core's L2. Here one loop per row keeps the row's
five vectors (d floats each) in L1 and walks its positives once per operator: a dot product with
each positive's column, then the update while that column is still in cache. The right-hand
side and the start's residual share one walk, and each row stops at its own tolerance.

The same steps as the torch version, in another summation order: products and sums in the
factors' dtype, CG's scalars (step sizes, squared norms) in float64, so the vector updates are
computed in float64 and rounded to the dtype. Results agree to rounding
(``tests/test_compiled_cg.py`` checks every output against the torch version, which stays as
that reference; mf-als itself trains on the CPU). With one thread the CG of a half-step on
ML-100K at 128 factors (3 steps, one lambda, no recency) took 8.6-9.7 ms against 14-22 ms
(bench/RESULTS.md, speed notes); the whitening around it is the same in both. Rows are
independent, so ``threads`` > 1 splits them into blocks of about equal positives, one per
thread (the loop releases the GIL): the results do not depend on the number of threads.
Compiled and cached as :mod:`recsys.models.kernels` says.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from recsys.models.kernels import kernel


@kernel
def _walk(columns, indices, begin, end, weights, has_weights, alpha, scaled, image, target,
          zero, one):
    """One walk over the row's positives ``indices[begin:end]`` (c_k their whitened columns):
    ``image += sum_k w_k (scaled . c_k) c_k`` unless ``image`` is empty, and
    ``target += sum_k (1 + alpha w_k) c_k`` unless ``target`` is empty; ``zero`` and ``one``
    in the dtype, so the sums stay in it. Each column is read once for both."""
    d = scaled.shape[0]
    with_image, with_target = image.shape[0] > 0, target.shape[0] > 0
    for k in range(begin, end):
        column = columns[indices[k]]
        if with_image:
            dot = zero
            for j in range(d):
                dot += scaled[j] * column[j]
            if has_weights:
                dot *= weights[k]
            for j in range(d):
                image[j] += dot * column[j]
        if with_target:
            confidence = one + alpha * weights[k] if has_weights else one + alpha
            for j in range(d):
                target[j] += confidence * column[j]


@kernel
def _operator(columns, indices, begin, end, weights, has_weights, scale_u, has_scale, alpha,
              v, scaled, out, nothing, zero, one):
    """``out = v + alpha D (sum_k w_k ((D v) . c_k) c_k)`` over the row's positives;
    ``scaled`` is scratch, ``nothing`` an empty array (no right-hand side to add up)."""
    d = v.shape[0]
    for j in range(d):
        scaled[j] = scale_u[j] * v[j] if has_scale else v[j]
        out[j] = zero
    _walk(columns, indices, begin, end, weights, has_weights, alpha, scaled, out, nothing,
          zero, one)
    for j in range(d):
        out[j] = v[j] + alpha * (scale_u[j] * out[j] if has_scale else out[j])


@kernel
def cg_rows(columns, indptr, indices, weights, has_weights, scale, has_scale, alpha, z,
            has_start, max_steps, tol, row_begin, row_end, res_sq, stop_sq, fitted):
    """CG on rows ``row_begin:row_end``, in place on ``z`` (their start; without
    ``has_start`` every row starts from zero, and the walk for the start's residual is
    skipped). A row without positives is set to zero at once.

    Parameters
    ----------
    columns : (n_columns, d) float array, the whitened column factors W
    indptr, indices : int64 arrays, the rows' positives (CSR)
    weights : (nnz,) array in columns' dtype, each positive's weight w (read if has_weights)
    scale : (n_rows, d) array in columns' dtype, each row's D (read if has_scale)
    alpha : float in columns' dtype, the positives' extra confidence
    z : (n_rows, d) array in columns' dtype, updated in place
    max_steps : int; tol : float, a row stops once ``|r| <= tol |b|``
    res_sq, stop_sq, fitted : float64 arrays (n_rows,), written for the rows: ``|r|^2``,
        ``tol^2 |b|^2`` and ``z . (b + r)`` (the fitted part of the row's objective);
        ``|r|^2`` is NaN where either norm is not finite, so the row never counts as solved
    """
    d = z.shape[1]
    zero, one = np.zeros(1, z.dtype)[0], np.ones(1, z.dtype)[0]
    target = np.empty(d, z.dtype)  # b
    residual = np.empty(d, z.dtype)
    direction = np.empty(d, z.dtype)
    image = np.empty(d, z.dtype)  # A times the start, then A times each direction
    scaled = np.empty(d, z.dtype)
    nothing = np.empty(0, z.dtype)
    tiny = 1e-300
    for u in range(row_begin, row_end):
        begin, end = indptr[u], indptr[u + 1]
        zu = z[u]
        if begin == end:  # no positives: b = 0, so z = 0 exactly (CG would stop near it)
            for j in range(d):
                zu[j] = zero
            res_sq[u], stop_sq[u], fitted[u] = 0.0, 0.0, 0.0
            continue
        scale_u = scale[u] if has_scale else scale[0]
        # one walk: b = D sum_k (1 + alpha w_k) c_k and, from a start, A z
        for j in range(d):
            target[j] = zero
            image[j] = zero
            if has_start:
                scaled[j] = scale_u[j] * zu[j] if has_scale else zu[j]
            else:
                zu[j] = zero
        _walk(columns, indices, begin, end, weights, has_weights, alpha, scaled,
              image if has_start else nothing, target, zero, one)
        rs, bb = 0.0, 0.0
        for j in range(d):
            if has_scale:
                target[j] *= scale_u[j]
                image[j] *= scale_u[j]
            residual[j] = target[j] - (zu[j] + alpha * image[j])
            direction[j] = residual[j]
            rs += float(residual[j]) * float(residual[j])
            bb += float(target[j]) * float(target[j])
        threshold = tol * tol * bb
        for _ in range(max_steps):
            if rs <= threshold:
                break
            _operator(columns, indices, begin, end, weights, has_weights, scale_u, has_scale,
                      alpha, direction, scaled, image, nothing, zero, one)
            curvature = 0.0
            for j in range(d):
                curvature += float(direction[j]) * float(image[j])
            step = rs / max(curvature, tiny)
            new_rs = 0.0
            for j in range(d):
                zu[j] += step * direction[j]
                residual[j] -= step * image[j]
                new_rs += float(residual[j]) * float(residual[j])
            ratio = new_rs / max(rs, tiny)
            for j in range(d):
                direction[j] = residual[j] + ratio * direction[j]
            rs = new_rs
        fit = 0.0
        for j in range(d):
            fit += float(zu[j]) * (float(target[j]) + float(residual[j]))
        if not (math.isfinite(rs) and math.isfinite(threshold)):  # inf <= inf is no solve
            rs = np.nan
        res_sq[u], stop_sq[u], fitted[u] = rs, threshold, fit


def solve_rows(columns: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
               weights: np.ndarray | None, scale: np.ndarray | None, alpha: float,
               z: np.ndarray, has_start: bool, max_steps: int, tol: float,
               threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`cg_rows` on every row, in place on ``z`` (C-contiguous); ``threads`` blocks of
    rows with about equal numbers of positives run at once. Returns ``res_sq``, ``stop_sq``
    and ``fitted`` (float64, one per row)."""
    n_rows, dtype = z.shape[0], z.dtype
    out = tuple(np.zeros(n_rows) for _ in range(3))
    args = (np.ascontiguousarray(columns, dtype), indptr, indices,
            np.zeros(1, dtype) if weights is None else np.ascontiguousarray(weights, dtype),
            weights is not None,
            np.ones((1, z.shape[1]), dtype) if scale is None
            else np.ascontiguousarray(scale, dtype),
            scale is not None, dtype.type(alpha), z, bool(has_start), int(max_steps),
            float(tol))
    blocks = row_blocks(indptr, threads)
    if len(blocks) > 1:  # the first block on this thread; an error in any block is raised
        with ThreadPoolExecutor(len(blocks) - 1) as pool:
            others = [pool.submit(cg_rows, *args, a, b, *out) for a, b in blocks[1:]]
            cg_rows(*args, *blocks[0], *out)
            for block in others:
                block.result()
    else:
        cg_rows(*args, 0, n_rows, *out)
    return out


def row_blocks(indptr: np.ndarray, threads: int) -> list[tuple[int, int]]:
    """At most ``threads`` consecutive, non-empty ranges of rows that cover every row once,
    with about equal numbers of positives (rows without positives go with their neighbours)."""
    n_rows = len(indptr) - 1
    bounds = np.searchsorted(indptr, np.linspace(0, indptr[-1], max(1, threads) + 1))
    bounds[0], bounds[-1] = 0, n_rows
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
