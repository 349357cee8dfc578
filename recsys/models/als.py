"""Implicit-feedback matrix factorisation by alternating least squares (mf-als).

Hu, Koren & Volinsky (2008), the model behind ``implicit``'s ALS. Every user x item cell has a
preference p (1 for a training positive, else 0) and a confidence c (``1 + als_alpha`` for a
positive, else 1); the factors minimise

    sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (|X|^2 + |Y|^2),   lambda = als_lambda,

so lambda is on the scale of one unobserved cell's confidence, as ``implicit``'s
``regularization``. With the items fixed each user's vector is a weighted ridge regression with
a closed-form solution, and vice versa: one sweep solves all users, then all items.

The solves run as conjugate gradient on the system whitened by ``Y^T Y + lambda I``
(:func:`als_half_step`), whose condition number is at most ``1 + alpha``: about 7 steps reach
float32 precision at the default alpha, 5x faster than the batched exact solves
(:func:`exact_half_step`), which remain the reference and the fallback.
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


def exact_half_step(other: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
                    alpha: float, lam: float, plan: list[_Chunk] | None = None) -> torch.Tensor:
    """New factors of every row of a binary CSR matrix, given the column factors ``other``.

    Each row's exact weighted ridge solution (:func:`recsys.linalg.weighted_ridge`), one
    batched solve per chunk of :func:`als_plan`; rows with fewer positives than dimensions
    take the equivalent, much cheaper L x L form (:func:`recsys.linalg.few_positives_ridge`).
    ``tests/test_speed_paths.py`` checks every row against the plain d x d solve.
    """
    n_rows, dim, alpha = len(indptr) - 1, other.shape[1], float(alpha)
    plan = als_plan(indptr, indices, dim, len(other)) if plan is None else plan
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
                  alpha: float, lam: float, plan: list[_Chunk] | None = None) -> torch.Tensor:
    """:func:`exact_half_step`'s solution, by preconditioned conjugate gradient on all rows at once.

    With ``gram = Y^T Y + lambda I = R R^T`` and ``W = Y R^{-T}`` the whitened column factors,
    row u solves ``(I + alpha W_u^T W_u) z_u = (1 + alpha) W_u^T 1`` and ``x_u = R^{-T} z_u``
    (as in :func:`recsys.linalg.few_positives_ridge`). Every W_u^T W_u is a partial sum of
    the ``w_i w_i^T`` that make up ``W^T W <= I``, so the eigenvalues lie in [1, 1 + alpha]
    and CG converges geometrically at rate ``(k - 1) / (k + 1)``, ``k = sqrt(1 + alpha)``:
    alpha = 1 reaches a relative residual of 1e-6 in ~7 steps. One step is two sparse
    products over the positives (``W_u z_u`` for every positive, then the sums back),
    instead of a d x d or L x L factorisation per row. A large alpha, whose step bound passes
    :data:`CG_MAX_BOUND`, takes the exact solve at once (cheaper there), and so do rows still
    above the tolerance after the bound (float round-off); ``plan`` is its :func:`als_plan`.
    ``tests/test_speed_paths.py`` checks every row against the plain solve.
    """
    n_rows, dim, alpha = len(indptr) - 1, other.shape[1], float(alpha)
    tol = CG_TOLERANCE.get(other.dtype, 1e-6)
    if cg_step_bound(alpha, tol) > CG_MAX_BOUND:
        return exact_half_step(other, indptr, indices, alpha, lam, plan)
    wide = other.double()
    chol = torch.linalg.cholesky(wide.T @ wide + lam * torch.eye(dim, dtype=torch.float64))
    chol_inv = torch.linalg.solve_triangular(chol, torch.eye(dim, dtype=torch.float64),
                                             upper=False)
    whitened = (wide @ chol_inv.T).to(other.dtype)  # W = Y R^{-T}
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(indptr, indices, other.new_ones(len(indices)),
                                          size=(n_rows, len(other)))

        def operator(z: torch.Tensor) -> torch.Tensor:  # (I + alpha W_u^T W_u) z_u, every u
            dots = torch.sparse.sampled_addmm(pattern, z, whitened.T, beta=0.0)
            return torch.addmm(z, dots, whitened, alpha=alpha)

        rhs = (1.0 + alpha) * (pattern @ whitened)
        z, residual = torch.zeros_like(rhs), rhs.clone()
        direction, res_sq = residual.clone(), torch.linalg.vecdot(residual, residual)
        tiny = torch.finfo(z.dtype).tiny
        stop_sq = tol * tol * res_sq  # per row: |r| <= tol |b|; rows without positives: 0
        for _ in range(cg_step_bound(alpha, tol)):
            if bool((res_sq <= stop_sq).all()):
                break
            step_image = operator(direction)
            step = res_sq / torch.linalg.vecdot(direction, step_image).clamp_min(tiny)
            z.addcmul_(step[:, None], direction)
            residual.addcmul_(step[:, None], step_image, value=-1.0)
            new_sq = torch.linalg.vecdot(residual, residual)
            direction = residual.addcmul(direction, (new_sq / res_sq.clamp_min(tiny))[:, None])
            res_sq = new_sq
    out = z @ chol_inv.to(z.dtype)  # rows of R^{-T} z
    unconverged = ~(res_sq <= stop_sq)  # NaN counts as unconverged
    if bool(unconverged.any()):
        exact = exact_half_step(other, indptr, indices, alpha, lam, plan)
        out[unconverged] = exact[unconverged]
    return out


def _gather(vectors: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """``vectors[slots]``, (B, L, d): ``index_select`` is several times faster here."""
    return vectors.index_select(0, slots.reshape(-1)).view(*slots.shape, vectors.shape[1])


def als_objective(x: torch.Tensor, y: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
                  alpha: float, lam: float) -> float:
    """The weighted squared error over all cells plus L2, without forming the dense matrix:
    ``sum s^2`` over every cell is ``<X^T X, Y^T Y>``, corrected on the positives (the CSR
    ``indptr``, ``indices`` of the binary user x item matrix). Products run in the factors'
    dtype, sums in float64."""
    everything = float(((x.T @ x).double() * (y.T @ y).double()).sum())
    s = _positive_scores(x, y, indptr, indices).double()
    positives = float(((1.0 + alpha) * (1.0 - s) ** 2 - s**2).sum())
    return everything + positives + lam * float((x.double() ** 2).sum() + (y.double() ** 2).sum())


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
    settings = ("dim", "epochs", "als_lambda", "als_alpha", "patience", "refit", "seed",
                "threads")
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
        """The fit's scratch: both orientations of the binary training matrix, and small
        random items (as implicit) that the first sweep solves the users from."""
        by_user = _binary_csr(train_part.positives.to_csr())
        rows = (_torch_csr(by_user), _torch_csr(by_user.T.tocsr()))
        gen = torch.Generator().manual_seed(self.config.seed)
        items = torch.randn(self.n_items, self.config.dim, generator=gen) * 0.01
        self.remember_start(users=None, items=items.numpy())
        return ALSSweeps(self, rows, items)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.users, self.items  # each sweep makes new arrays: no copy needed

    def restore(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        self.users, self.items = state

    def check_finite(self) -> None:
        """Every sweep was checked as it ran (:meth:`ALSSweeps.train_epoch`)."""


@dataclass(eq=False)
class ALSSweeps:
    """The scratch state of one ALS fit: the training matrix by user and by item (torch CSR
    index pairs) and the item factors the next sweep starts from; dropped when the fit ends."""

    model: ALS
    rows: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    items: torch.Tensor

    def train_epoch(self, epoch: int) -> float:
        """One sweep (all users, then all items); the objective per training positive."""
        model = self.model
        alpha, lam = model.config.als_alpha, model.config.als_lambda  # lambda: read here only
        by_user, by_item = self.rows
        x = als_half_step(self.items, *by_user, alpha, lam)
        y = als_half_step(x, *by_item, alpha, lam)
        loss = als_objective(x, y, *by_user, alpha, lam) / max(1, len(by_user[1]))
        if not (math.isfinite(loss) and torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise TrainingDivergedError(
                f"{model.name}: factors became NaN/inf in sweep {epoch}; raise als_lambda "
                f"(now {lam:g}) or lower als_alpha (now {model.config.als_alpha:g})"
            )
        self.items = y
        model.users, model.items = x.numpy(), y.numpy()
        return loss


def _binary_csr(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Preferences are 0/1 whatever the stored values (duplicates count once)."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    matrix.data = np.ones_like(matrix.data)
    return matrix


def _torch_csr(matrix: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)))
