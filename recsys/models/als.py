"""Implicit-feedback matrix factorisation by alternating least squares (mf-als).

Hu, Koren & Volinsky (2008), the model behind ``implicit``'s ALS. Every user x item cell has a
preference p (1 for a training positive, else 0) and a confidence c (``1 + als_alpha`` for a
positive, else 1); the factors minimise

    sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2.

With ``als_nu = 0`` every row's lambda is ``als_lambda``, on the scale of one unobserved cell's
confidence as ``implicit``'s ``regularization``. With ``als_nu > 0`` each row's L2 is scaled by
its frequency, as in Rendle, Krichene, Zhang & Koren, "Revisiting the performance of iALS on
item recommendation benchmarks" (RecSys 2022): ``lambda_u`` is proportional to
``(n_u + alpha0 * n_items)^nu``, ``n_u`` the row's positives and ``alpha0`` the paper's
unobserved weight. That sum is the row's total confidence ``n_items + alpha * n_u`` divided by
``alpha``, so here ``alpha0 = 1 / als_alpha``: this objective is the paper's with the
positives' target scaled by ``alpha / (1 + alpha)``, which scales the optimal factors and
lambda but not the ranking. lambda is rescaled as the paper's ``lambda*`` with reference
``nu* = 0``: each side's lambdas average ``als_lambda``, so a lambda tuned at nu = 0 stays on
the right scale at any nu (:func:`frequency_scaled_lambda`).

With ``als_recency = h > 0`` a positive's confidence also fades with its age in its user's
own history: ``1 + als_alpha * 2^(-k / h)``, ``k`` the number of that user's training
positives that came later (:func:`recency_weights`), so the latest counts fully and one ``h``
positives older half as much. On the temporal split (P2, the default), where what a user likes
next follows their latest taste, this lifted validation Recall@10 more than any other setting
(bench/TUNING.md); ``h = 0`` keeps every positive at ``1 + als_alpha``.

With the items fixed each user's vector is a weighted ridge regression with a closed-form
solution, and vice versa: one sweep solves all users, then all items. The solves run as
conjugate gradient on each row's system whitened by its own ``Y^T Y + lambda_u I``
(:func:`als_half_step`), whose condition number is at most ``1 + alpha``: with
``als_cg_steps = 0`` about 7 steps reach float32 precision at alpha 1, 5x faster than the
batched exact solves (:func:`exact_half_step`), which remain the reference and the fallback.
Each row's CG runs in one compiled loop (:mod:`recsys.models.compiled_cg`, numba: fits 1.3-1.8x
faster than with torch's batched CG, :func:`_cg_batched`, kept as the reference it is tested
against); a process's first fit pays ~0.5 s of numba's set-up once.
``als_cg_steps > 0`` instead runs that many steps from the last sweep's vectors, as
``implicit`` (3 steps, mf-als's default): each step still lowers the objective; on ML-100K
the test metrics match the exact solves' to 4 digits at ~0.8x their time (bench/ALS.md).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys.data.interactions import Interactions
from recsys.data.splits import Part
from recsys.errors import TrainingDivergedError
from recsys.linalg import few_positives_ridge, weighted_ridge
from recsys.models.base import EpochCallback, FactorModel
from recsys.models.trainer import torch_threads, train

# Padded vectors held at once per chunk of rows (elements, ~16 MB in float32).
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class _Chunk:
    """Rows of similar length solved together: ``slots`` (B, L) index their positives' columns;
    padding points at an all-zero column appended after the last one."""

    rows: torch.Tensor
    slots: torch.Tensor
    few: bool  # fewer positives than dimensions: the L x L (Woodbury) solve


def als_plan(indptr: torch.Tensor, indices: torch.Tensor, dim: int,
             n_columns: int) -> list[_Chunk]:
    """The chunks :func:`exact_half_step` solves (the reference, and the fallback of
    :func:`als_half_step`). Rows are sorted by their number of positives so padding stays
    small; rows without positives are left out (their solution is the zero vector)."""
    lengths = (indptr[1:] - indptr[:-1]).numpy()
    order = np.argsort(lengths, kind="stable")
    order = order[lengths[order] > 0]
    chunks, start = [], 0
    while start < len(order):
        few = lengths[order[start]] < dim
        run = lengths[order[start:]]
        # rows at most 25% longer than the chunk's shortest (padding is wasted work), and
        # never across the few / many boundary
        stop = np.searchsorted(run, max(run[0] + 2, run[0] * 5 // 4), side="right")
        if few:
            stop = min(stop, np.searchsorted(run, dim))
        run = run[:stop]
        # most rows whose padded size (rows x longest row x dim) fits the budget
        padded = np.arange(1, len(run) + 1) * run * dim
        stop = start + max(1, int(np.searchsorted(padded, _CHUNK_ELEMENTS, side="right")))
        rows = torch.from_numpy(order[start:stop])
        chunks.append(_Chunk(rows, _slots(indptr, indices, rows, n_columns), bool(few)))
        start = stop
    return chunks


def _slots(indptr, indices, rows, padding: int) -> torch.Tensor:
    indptr, indices, rows = indptr.numpy(), indices.numpy(), rows.numpy()
    lengths = indptr[rows + 1] - indptr[rows]
    offsets = np.arange(lengths.max())
    valid = offsets < lengths[:, None]
    slots = np.full(valid.shape, padding, dtype=np.int64)
    slots[valid] = indices[(indptr[rows][:, None] + offsets)[valid]]
    return torch.from_numpy(slots)


def frequency_scaled_lambda(counts: torch.Tensor, n_columns: int, alpha: float, lam: float,
                            nu: float) -> torch.Tensor | None:
    """Each row's L2 weight, scaled by its frequency (Rendle et al. 2022), or None for nu = 0.

    A row's weight is ``(n_columns + alpha * count)^nu`` (its total confidence, proportional to
    the paper's ``count + alpha0 * n_columns`` with ``alpha0 = 1 / alpha``), rescaled so the rows
    average ``lam``: the paper's ``lambda*`` with reference ``nu* = 0``, which keeps a lambda
    tuned at nu = 0 on the right scale. Returned in float64, one value per row."""
    if nu == 0:
        return None
    weight = (n_columns + alpha * counts.double()) ** nu
    return lam * weight / weight.mean()


def _whitening(other: torch.Tensor, lam: float, row_lambda: torch.Tensor | None):
    """A change of variables ``x = (z * D_u) @ to_x`` that whitens every row's gram
    ``Y^T Y + lambda_u I``, and the whitened column factors ``W`` (``Y_u`` becomes ``W_u D_u``).

    One lambda for all rows: ``gram = R R^T`` (Cholesky), ``W = Y R^{-T}``, no D. A lambda
    per row: with ``Y^T Y = V S V^T`` (one eigendecomposition), ``W = Y V`` has orthogonal
    columns and ``D_u = (S + lambda_u)^(-1/2)``. Returns ``(W, D, to_x, from_x)``:
    W in the factors' dtype, D (n_rows, d) or None, the d x d maps in float64, with
    ``z = (x @ from_x) / D_u`` the inverse."""
    wide = other.double()
    gram = wide.T @ wide
    eye = torch.eye(gram.shape[0], dtype=torch.float64)
    if row_lambda is None:
        chol = torch.linalg.cholesky(gram + lam * eye)
        chol_inv = torch.linalg.solve_triangular(chol, eye, upper=False)
        # W in the factors' dtype: float32 rounds it as much as a float64 product cast down
        return other @ chol_inv.T.to(other.dtype), None, chol_inv, chol
    spectrum, rotation = torch.linalg.eigh(gram)
    scale = (spectrum.clamp_min(0.0)[None, :] + row_lambda.double()[:, None]).rsqrt()
    return other @ rotation.to(other.dtype), scale, rotation.T, rotation


def exact_half_step(other: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
                    alpha: float, lam: float, plan: list[_Chunk] | None = None,
                    row_lambda: torch.Tensor | None = None,
                    weights: torch.Tensor | None = None) -> torch.Tensor:
    """New factors of every row of a binary CSR matrix, given the column factors ``other``.

    Each row's exact weighted ridge solution (:func:`recsys.linalg.weighted_ridge`), one
    batched solve per chunk of :func:`als_plan`; rows with fewer positives than dimensions
    take the equivalent, much cheaper L x L form (:func:`recsys.linalg.few_positives_ridge`).
    ``row_lambda`` (one per row) replaces ``lam`` where given: the systems are then solved in
    the eigenbasis of ``Y^T Y`` (:func:`_whitening`), where every row's gram is diagonal.
    ``weights`` (one per stored cell, in CSR order; :func:`recency_weights`) scale each
    positive's extra confidence ``alpha`` where given (the same eigenbasis).
    ``tests/test_speed_paths.py`` checks every row against the plain d x d solve.
    """
    n_rows, dim, alpha = len(indptr) - 1, other.shape[1], float(alpha)
    plan = als_plan(indptr, indices, dim, len(other)) if plan is None else plan
    if weights is not None:
        lambdas = (torch.full((n_rows,), float(lam), dtype=torch.float64) if row_lambda is None
                   else row_lambda)
        return _exact_half_step_weighted(other, indptr, alpha, plan, lambdas, weights)
    if row_lambda is not None:
        return _exact_half_step_per_row(other, indptr, alpha, plan, row_lambda)
    wide = other.double()
    gram = wide.T @ wide + lam * torch.eye(dim, dtype=torch.float64)
    padded = torch.cat([other, other.new_zeros(1, dim)])
    chol_inv = torch.linalg.solve_triangular(
        torch.linalg.cholesky(gram), torch.eye(dim, dtype=torch.float64), upper=False)
    # Whitened by the gram, the few-positives system has eigenvalues in [1, 1 + alpha]
    # (w w^T is a block of a projection), so it is solved safely in the factors' dtype.
    whitened = torch.cat([wide @ chol_inv.T, wide.new_zeros(1, dim)]).to(other.dtype)
    chol_inv_narrow = chol_inv.to(other.dtype)
    out = torch.zeros(n_rows, dim, dtype=other.dtype)
    for chunk in plan:
        if chunk.few:
            y = _gather(whitened, chunk.slots)
            out[chunk.rows] = few_positives_ridge(y, chol_inv_narrow, alpha, 1.0 + alpha)
        else:
            y = _gather(padded, chunk.slots)
            out[chunk.rows] = weighted_ridge(gram, y, alpha, 1.0 + alpha)
    return out


def _exact_half_step_per_row(other, indptr, alpha, plan, row_lambda) -> torch.Tensor:
    """:func:`exact_half_step` with a lambda per row, in the eigenbasis of ``Y^T Y``: row u's
    gram is the diagonal ``S + lambda_u``, so the L x L form whitens by scaling columns."""
    n_rows, dim = len(indptr) - 1, other.shape[1]
    _, scale, _, rotation = _whitening(other, 0.0, row_lambda)
    rotated = other.double() @ rotation
    spectrum = (rotated * rotated).sum(0)  # S: Yr's columns are orthogonal
    padded = torch.cat([rotated, rotated.new_zeros(1, dim)])
    identity = torch.eye(dim, dtype=torch.float64)
    out = torch.zeros(n_rows, dim, dtype=torch.float64)
    for chunk in plan:
        y, d = _gather(padded, chunk.slots), scale[chunk.rows]
        if chunk.few:
            out[chunk.rows] = d * few_positives_ridge(y * d[:, None, :], identity, alpha,
                                                      1.0 + alpha)
        else:
            gram = torch.diag_embed(spectrum + row_lambda.double()[chunk.rows, None])
            out[chunk.rows] = weighted_ridge(gram, y, alpha, 1.0 + alpha)
    return (out @ rotation.T).to(other.dtype)


def _exact_half_step_weighted(other, indptr, alpha, plan, row_lambda, weights) -> torch.Tensor:
    """:func:`_exact_half_step_per_row` with each positive's extra confidence ``alpha * w``:
    a row with fewer positives than dimensions solves ``(I + E K) u = t`` (Woodbury, with
    ``K = W W^T`` its whitened positives' products, ``E = diag(alpha w)``, ``t = 1 + alpha w``;
    not symmetric, so LU), the others the d x d system of :func:`recsys.linalg.weighted_ridge`."""
    n_rows, dim = len(indptr) - 1, other.shape[1]
    _, scale, _, rotation = _whitening(other, 0.0, row_lambda)
    rotated = other.double() @ rotation
    spectrum = (rotated * rotated).sum(0)  # S: Yr's columns are orthogonal
    padded = torch.cat([rotated, rotated.new_zeros(1, dim)])
    out = torch.zeros(n_rows, dim, dtype=torch.float64)
    for chunk in plan:
        y, d = _gather(padded, chunk.slots), scale[chunk.rows]
        w = _slot_values(indptr, weights.double(), chunk.rows, chunk.slots.shape[1])
        stored = chunk.slots < len(other)  # the rest is padding: no confidence, no target
        extra, target = alpha * w, (1.0 + alpha * w) * stored
        if chunk.few:
            whitened = y * d[:, None, :]
            inner = whitened @ whitened.transpose(1, 2)
            system = torch.eye(inner.shape[1], dtype=inner.dtype) + extra.unsqueeze(-1) * inner
            u = torch.linalg.solve(system, target)
            out[chunk.rows] = d * (whitened * u.unsqueeze(-1)).sum(1)
        else:
            gram = torch.diag_embed(spectrum + row_lambda.double()[chunk.rows, None])
            out[chunk.rows] = weighted_ridge(gram, y, extra, target)
    return (out @ rotation.T).to(other.dtype)


def _slot_values(indptr: torch.Tensor, values: torch.Tensor, rows: torch.Tensor,
                 width: int) -> torch.Tensor:
    """``values`` (one per stored cell, CSR order) laid out as :func:`_slots` lays out the
    columns: (len(rows), width), zero in the padding."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    offsets = torch.arange(width)
    valid = offsets[None, :] < lengths[:, None]
    where = (starts[:, None] + offsets[None, :]).clamp_max(max(len(values) - 1, 0))
    return torch.where(valid, values[where], values.new_zeros(()))


# Relative residual at which conjugate gradient stops, by dtype: the exact solves' own error.
CG_TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-12}
# Above this step bound (float32: alpha > ~100) the exact solves are cheaper than CG: at
# alpha = 1e4 CG took 117 ms a half sweep on ML-100K against 31 ms.
CG_MAX_BOUND = 80


def cg_step_bound(alpha: float, tol: float) -> int:
    """CG steps after which a row is left to the exact solve: the textbook bound for a
    condition number of ``1 + alpha``, ``sqrt(1 + alpha) / 2 * ln(2 / tol)``, plus 5."""
    return math.ceil(math.sqrt(1.0 + alpha) / 2 * math.log(2 / tol)) + 5


def als_half_step(other: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
                  alpha: float, lam: float, plan: list[_Chunk] | None = None,
                  row_lambda: torch.Tensor | None = None, steps: int = 0,
                  start: torch.Tensor | None = None,
                  weights: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`exact_half_step`'s solution, by preconditioned conjugate gradient on all rows at once.

    With ``W_u`` row u's positives whitened by its own gram ``Y^T Y + lambda_u I``
    (:func:`_whitening`: by its Cholesky factor when every row shares lambda, else in the
    eigenbasis of ``Y^T Y``, scaled per row), row u solves
    ``(I + alpha W_u^T W_u) z_u = (1 + alpha) W_u^T 1`` and x_u follows from z_u. Every
    W_u^T W_u is a partial sum of the whitened ``Y^T Y``, whose eigenvalues are
    ``S / (S + lambda_u) <= 1``, so the system's lie in [1, 1 + alpha] whatever the row's
    lambda, and CG converges
    geometrically at rate ``(k - 1) / (k + 1)``, ``k = sqrt(1 + alpha)``: alpha = 1 reaches a
    relative residual of 1e-6 in ~7 steps. One step is a walk over the row's positives
    (``W_u z_u`` for every positive, then the sums back), instead of a d x d or L x L
    factorisation per row: one compiled loop per row on the CPU
    (:func:`recsys.models.compiled_cg.cg_rows`), or all rows at once in torch
    (:func:`_cg_batched`: the reference, and the path of tensors on another device).
    ``row_lambda`` (one per row, :func:`frequency_scaled_lambda`) replaces ``lam`` where given.
    ``weights`` (one per stored cell in CSR order, in [0, 1]; :func:`recency_weights`) scale
    each positive's ``alpha`` where given: the system becomes
    ``(I + W_u^T E_u W_u) z_u = W_u^T (1 + alpha w_u)``, ``E_u = diag(alpha w_u)``, and its
    eigenvalues stay in [1, 1 + alpha], so the same step bound holds.

    ``steps = 0`` solves to the dtype's tolerance: a large alpha, whose step bound passes
    :data:`CG_MAX_BOUND`, takes the exact solve at once (cheaper there), and so do rows still
    above the tolerance after the bound (float round-off); ``plan`` is its :func:`als_plan`.
    ``steps > 0`` runs at most that many steps from ``start`` (the rows' last vectors; zeros
    when None), as ``implicit``: an inexact solve whose every step lowers the row's objective.
    ``tests/test_speed_paths.py`` checks every row against the plain solve.
    """
    return half_step_and_objective(other, indptr, indices, alpha, lam, plan, row_lambda,
                                   steps, start, weights)[0]


def half_step_and_objective(other: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
                            alpha: float, lam: float, plan: list[_Chunk] | None = None,
                            row_lambda: torch.Tensor | None = None, steps: int = 0,
                            start: torch.Tensor | None = None,
                            weights: torch.Tensor | None = None,
                            ) -> tuple[torch.Tensor, float | None]:
    """:func:`als_half_step`, and the rows' part of the objective at the new vectors:
    ``sum_u [sum_i c_ui (p_ui - x_u . y_i)^2 + lambda_u |x_u|^2]`` (every cell of these rows,
    their own L2), or None where an exact solve replaced CG. It comes free from CG: with
    whitened matrix A, right-hand side b and residual r = b - A z, a row's value is
    ``c - z . (b + r)``, ``c`` the positives' summed confidence, instead of a pass over the
    positives (the sweep's ``loss`` adds the other side's L2; ``tests/test_als.py`` checks it
    against :func:`als_objective`)."""
    n_rows, alpha = len(indptr) - 1, float(alpha)
    tol = CG_TOLERANCE.get(other.dtype, 1e-6)
    if steps <= 0 and cg_step_bound(alpha, tol) > CG_MAX_BOUND:
        return exact_half_step(other, indptr, indices, alpha, lam, plan, row_lambda,
                               weights), None
    columns, scale, to_x, from_x = _whitening(other, lam, row_lambda)
    row_scale = None if scale is None else scale.to(other.dtype)
    if start is None:
        z = other.new_zeros(n_rows, other.shape[1])
    else:  # the start in whitened coordinates
        z = start @ from_x.to(other.dtype)
        z = z if row_scale is None else z / row_scale
    solve = _cg_compiled if other.device.type == "cpu" else _cg_batched
    z, res_sq, stop_sq, fitted = solve(columns, row_scale, indptr, indices, weights, alpha, z,
                                       start is not None, steps or cg_step_bound(alpha, tol),
                                       tol)
    out = (z if row_scale is None else z * row_scale) @ to_x.to(z.dtype)
    unconverged = ~(res_sq <= stop_sq)  # NaN counts as unconverged
    if steps <= 0 and bool(unconverged.any()):
        exact = exact_half_step(other, indptr, indices, alpha, lam, plan, row_lambda, weights)
        out[unconverged] = exact[unconverged]
        return out, None
    confidence = ((1.0 + alpha) * len(indices) if weights is None
                  else float((1.0 + alpha * weights.double()).sum()))
    return out, confidence - float(fitted.sum())


def _cg_compiled(columns, row_scale, indptr, indices, weights, alpha, z, has_start,
                 max_steps, tol):
    """:func:`_cg_batched`'s contract, each row's CG in one compiled loop on the CPU
    (:mod:`recsys.models.compiled_cg`: the CG 1.5-2.3x faster per half-step on ML-100K), in
    blocks of rows over torch's CPU threads; ``z`` is updated in place where it is
    contiguous."""
    from recsys.models.compiled_cg import solve_rows  # numba: imported by the first CPU fit

    z = z.contiguous()
    res_sq, stop_sq, fitted = solve_rows(
        columns.numpy(), indptr.numpy(), indices.numpy(),
        None if weights is None else weights.numpy(),
        None if row_scale is None else row_scale.numpy(), alpha, z.numpy(), has_start,
        max_steps, tol, threads=torch.get_num_threads())
    return z, *(torch.from_numpy(values) for values in (res_sq, stop_sq, fitted))


def _cg_batched(columns, row_scale, indptr, indices, weights, alpha, z, has_start,
                max_steps, tol):
    """Conjugate gradient on every row's whitened system at once (torch: any device), from
    ``z`` (zeros without ``has_start``), at most ``max_steps`` steps. Returns z and, per row
    (float64 where the caller sums), the residual's and the threshold's squared norms and
    ``z . (b + r)``, b the right-hand side and r its residual: the fitted part of the row's
    objective."""
    n_rows, alpha = len(indptr) - 1, float(alpha)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(indptr, indices, columns.new_ones(len(indices)),
                                          size=(n_rows, len(columns)))
        cell_weights = None if weights is None else weights.to(columns.dtype)

        def weighted(dots: torch.Tensor) -> torch.Tensor:  # each positive's dot times its w
            if cell_weights is not None:
                dots.values().mul_(cell_weights)
            return dots

        def operator(z: torch.Tensor) -> torch.Tensor:  # (I + W_u^T E_u W_u) z_u, every u
            if row_scale is None:
                dots = weighted(torch.sparse.sampled_addmm(pattern, z, columns.T, beta=0.0))
                return torch.addmm(z, dots, columns, alpha=alpha)
            dots = weighted(torch.sparse.sampled_addmm(pattern, z * row_scale, columns.T,
                                                       beta=0.0))
            return z.addcmul(row_scale, dots @ columns, value=alpha)

        if cell_weights is None:
            rhs = (1.0 + alpha) * (pattern @ columns)
        else:
            rhs = torch.sparse_csr_tensor(indptr, indices, 1.0 + alpha * cell_weights,
                                          size=pattern.shape) @ columns
        rhs = rhs if row_scale is None else rhs * row_scale
        residual = rhs - operator(z) if has_start else rhs.clone()
        z, res_sq, stop_sq = _conjugate_gradient(operator, rhs, z, residual, tol, max_steps)
    # residual holds b - A z (CG's recurrence: exact up to the solver's rounding)
    return z, res_sq, stop_sq, torch.linalg.vecdot(z, rhs + residual).double()


def _conjugate_gradient(operator, rhs, z, residual, tol: float, max_steps: int):
    """Batched CG, one system per row, from ``z`` with residual ``rhs - operator(z)``; a row
    stops changing once ``|r| <= tol |b|`` (rows without positives: at once). Updates ``z``
    and ``residual`` in place; returns z, the residuals' and the thresholds' squared norms."""
    direction, res_sq = residual.clone(), torch.linalg.vecdot(residual, residual)
    tiny = torch.finfo(z.dtype).tiny
    stop_sq = tol * tol * torch.linalg.vecdot(rhs, rhs)
    for _ in range(max_steps):
        if bool((res_sq <= stop_sq).all()):
            break
        step_image = operator(direction)
        step = res_sq / torch.linalg.vecdot(direction, step_image).clamp_min(tiny)
        z.addcmul_(step[:, None], direction)
        residual.addcmul_(step[:, None], step_image, value=-1.0)
        new_sq = torch.linalg.vecdot(residual, residual)
        direction = residual.addcmul(direction, (new_sq / res_sq.clamp_min(tiny))[:, None])
        res_sq = new_sq
    return z, res_sq, stop_sq


def _gather(vectors: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """``vectors[slots]``, (B, L, d): ``index_select`` is several times faster here."""
    return vectors.index_select(0, slots.reshape(-1)).view(*slots.shape, vectors.shape[1])


def als_objective(x: torch.Tensor, y: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
                  alpha: float, lam: float,
                  row_lambdas: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
                  weights: torch.Tensor | None = None) -> float:
    """The weighted squared error over all cells plus L2, without forming the dense matrix:
    ``sum s^2`` over every cell is ``<X^T X, Y^T Y>``, corrected on the positives (the CSR
    ``indptr``, ``indices`` of the binary user x item matrix). ``row_lambdas`` (users',
    items'; :func:`frequency_scaled_lambda`) replace ``lam`` on their side where given;
    ``weights`` (per positive, CSR order) scale each positive's ``alpha``.
    Products run in the factors' dtype, sums in float64."""
    everything = float(((x.T @ x).double() * (y.T @ y).double()).sum())
    s = _positive_scores(x, y, indptr, indices).double()
    confidence = 1.0 + alpha * (1.0 if weights is None else weights.double())
    positives = float((confidence * (1.0 - s) ** 2 - s**2).sum())
    l2 = sum(float(lam * (f.double() ** 2).sum()) if row_lambda is None
             else float(row_lambda @ (f.double() ** 2).sum(1))
             for f, row_lambda in zip((x, y), row_lambdas, strict=True))
    return everything + positives + l2


def _positive_scores(x, y, indptr, indices) -> torch.Tensor:
    """``x_u . y_i`` of every stored (u, i), in CSR order: ``sampled_addmm`` computes only those
    cells of ``x @ y.T`` (~15x faster than gathering both factor rows)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(indptr, indices, x.new_zeros(len(indices)),
                                          size=(len(x), len(y)))
        return torch.sparse.sampled_addmm(pattern, x, y.T, beta=0.0).values()


class ALS(FactorModel):
    """Implicit ALS: every unseen cell is a weak 0, every positive a confident 1.

    ``config.epochs`` is the number of sweeps (users, then items). After each sweep the
    callbacks get ``loss`` (the objective above divided by the number of training positives),
    ``valid_recall@10``, ``valid_ndcg@10``, ``elapsed`` and ``best_epoch``; with ``patience``
    the fit stops when validation Recall@10 has not improved for that many sweeps, and the
    best sweep's factors are kept either way.
    """

    name = "mf-als"
    blend_by_likes = {1: 0.9, 2: 0.8, 3: 0.7, 5: 0.5, 10: 0.6, 20: 0.5}
    settings = ("dim", "epochs", "als_lambda", "als_alpha", "als_nu", "als_recency",
                "als_cg_steps", "patience", "refit", "seed", "threads")
    setting_help = {"epochs": "ALS sweeps (all users, then all items)"}
    description = "Alternating least squares on confidence-weighted implicit feedback."
    iterative = True
    # Its plain cosine lists leak popularity (Toy Story -> Star Wars, Die Hard -> no sequel;
    # neighbours' popularity percentile 60); the hybrid lens keeps the genre agreement, brings
    # it to 49 and gives the lists a film buff signs (bench/NEIGHBOURS.md, issue 22).
    default_lens = "hybrid"

    @classmethod
    def migrate_config(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Configs saved before mf-als had its own ``als_lambda`` kept its lambda in
        ``weight_decay``, which now means only the torch models' per-example L2."""
        if "als_lambda" in values or "weight_decay" not in values:
            return values
        moved = {**values, "als_lambda": values["weight_decay"]}
        del moved["weight_decay"]
        return moved

    def _fit(self, train_part: Part, valid: Part | None, callbacks: Sequence[EpochCallback],
             epochs: int) -> list[dict[str, Any]]:
        with torch_threads(self.config.threads):
            return train(self, train_part, valid, callbacks, epochs)

    # ------------------------------------------- the contract recsys.models.trainer.train runs
    def start_training(self, train_part: Part) -> ALSSweeps:
        """The fit's scratch: both orientations of the training matrix (with each positive's
        recency weight where ``als_recency`` is set), and small random items (as implicit)
        that the first sweep solves the users from."""
        cfg = self.config
        positives = train_part.positives
        recency = recency_weights(positives, cfg.als_recency)  # None: all positives alike
        by_user = _training_matrix(positives, recency)
        matrices = (by_user, by_user.T.tocsr())
        rows = tuple(_torch_csr(m) for m in matrices)
        weights = tuple(_torch_weights(m, recency is not None) for m in matrices)
        gen = torch.Generator().manual_seed(cfg.seed)
        items = torch.randn(self.n_items, cfg.dim, generator=gen) * 0.01
        self.remember_start(users=None, items=items.numpy())
        # a row's frequency is its positives' summed weight: its total extra confidence / alpha
        lambdas = tuple(
            frequency_scaled_lambda(torch.from_numpy(np.asarray(m.sum(1)).ravel()), n_columns,
                                    cfg.als_alpha, cfg.als_lambda, cfg.als_nu)
            for m, n_columns in zip(matrices, (self.n_items, self.n_users), strict=True))
        return ALSSweeps(self, rows, items, lambdas, weights=weights)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.users, self.items  # each sweep makes new arrays: no copy needed

    def restore(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        self.users, self.items = state

    def check_finite(self) -> None:
        """Every sweep was checked as it ran (:meth:`ALSSweeps.train_epoch`)."""


@dataclass(eq=False)
class ALSSweeps:
    """The scratch state of one ALS fit: the training matrix by user and by item (torch CSR
    index pairs), each row's L2 weight (users', items'; None: ``als_lambda`` for all), each
    positive's recency weight in either order (None: all alike) and the factors the next
    sweep starts from; dropped when the fit ends."""

    model: ALS
    rows: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    items: torch.Tensor
    row_lambdas: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
    users: torch.Tensor | None = None  # the last sweep's: where a fixed-step CG starts
    weights: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)

    def train_epoch(self, epoch: int) -> float:
        """One sweep (all users, then all items); the objective per training positive."""
        model = self.model
        cfg = model.config
        alpha, lam, steps = cfg.als_alpha, cfg.als_lambda, cfg.als_cg_steps  # read here only
        (by_user, by_item), (user_lambda, item_lambda) = self.rows, self.row_lambdas
        user_weights, item_weights = self.weights
        x = als_half_step(self.items, *by_user, alpha, lam, row_lambda=user_lambda,
                          steps=steps, start=self.users, weights=user_weights)
        y, objective = half_step_and_objective(x, *by_item, alpha, lam, row_lambda=item_lambda,
                                               steps=steps, start=self.items if steps else None,
                                               weights=item_weights)
        if objective is None:  # an exact solve ran: the pass over the positives
            objective = als_objective(x, y, *by_user, alpha, lam, self.row_lambdas,
                                      user_weights)
        else:  # the item rows' part covers every cell and the items' L2; add the users'
            squares = (x.double() ** 2).sum(1)
            objective += float(lam * squares.sum() if user_lambda is None
                               else user_lambda @ squares)
        loss = objective / max(1, len(by_user[1]))
        # a NaN or inf in any factor reaches the loss (through the diagonals of X^T X, Y^T Y)
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"{model.name}: factors became NaN/inf in sweep {epoch}; raise als_lambda "
                f"(now {lam:g}) or lower als_alpha (now {alpha:g})"
            )
        self.items, self.users = y, (x if steps else None)
        model.users, model.items = x.numpy(), y.numpy()
        return loss


def recency_weights(positives: Interactions, half_life: float) -> np.ndarray | None:
    """Each positive's share of ``als_alpha``: ``2^(-k / half_life)``, ``k`` the number of the
    same user's positives with a strictly later timestamp, so every user's latest positives
    get 1 and positives of the same second share one weight (two thirds of ML-100K's share
    their second with another of the user's: the order within it means nothing). None for
    ``half_life <= 0`` (all positives alike). Counted in positives rather than days: users
    rate in bursts, and the order of a user's own history is what a temporal split holds
    out by."""
    if half_life <= 0:
        return None
    n = len(positives)
    order = np.lexsort((positives.timestamps, positives.user_index))
    users, times = positives.user_index[order], positives.timestamps[order]
    user_ends = np.cumsum(np.bincount(users, minlength=positives.n_users))
    starts = np.r_[True, (users[1:] != users[:-1]) | (times[1:] != times[:-1])]
    group_ends = np.r_[np.flatnonzero(starts)[1:], n]  # one past each same-second group
    later = user_ends[users] - group_ends[np.cumsum(starts) - 1]
    weights = np.empty(n)
    weights[order] = np.exp2(-later / float(half_life))
    return weights


def _training_matrix(positives: Interactions, weights: np.ndarray | None) -> sp.csr_matrix:
    """The users x items CSR of the training positives, storing each cell's weight (1 without
    recency); a pair stored twice counts once, with its larger weight."""
    keys = positives.keys()
    values = np.ones(len(keys)) if weights is None else np.asarray(weights, np.float64)
    order = np.lexsort((-values, keys))
    first = np.ones(len(order), dtype=bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    kept = order[first]
    return sp.csr_matrix(
        (values[kept], (positives.user_index[kept], positives.item_index[kept])),
        shape=(positives.n_users, positives.n_items))


def _torch_csr(matrix: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)))


def _torch_weights(matrix: sp.csr_matrix, recency: bool) -> torch.Tensor | None:
    """The stored cells' weights in CSR order, float32; None without recency."""
    return torch.from_numpy(matrix.data.astype(np.float32)) if recency else None
