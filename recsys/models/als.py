"""Implicit-feedback matrix factorisation by alternating least squares (mf-als).

Hu, Koren & Volinsky (2008), the model behind ``implicit``'s ALS. Every user x item cell has a
preference p (1 for a training positive, else 0) and a confidence c (``1 + als_alpha`` for a
positive, else 1); the factors minimise

    sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (|X|^2 + |Y|^2),   lambda = weight_decay,

so lambda is on the scale of one unobserved cell's confidence, as ``implicit``'s
``regularization``. With the items fixed each user's vector is a weighted ridge regression in
closed form, and vice versa: one sweep solves all users, then all items.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys.evaluation import evaluate_model
from recsys.models.base import EpochCallback, FactorModel
from recsys.trainer import TrainingDivergedError, torch_threads

# Padded item vectors held at once per chunk of rows (float32 elements, ~16 MB).
_CHUNK_ELEMENTS = 1 << 22


def weighted_ridge(gram: torch.Tensor, y: torch.Tensor, extra: torch.Tensor | float,
                   target: torch.Tensor | float) -> torch.Tensor:
    """The implicit-ALS row step for a batch of rows, in closed form.

    Solves, for each row b, ``(gram + sum_l extra[b,l] y[b,l] y[b,l]^T) x_b
    = sum_l target[b,l] y[b,l]``. With ``gram = c0 Y^T Y + lambda I`` (every item at base
    confidence c0, target 0), ``y`` a row's observed item vectors, ``extra = c - c0`` and
    ``target = c * p`` this is the exact minimiser of the row's weighted squared error.

    Parameters
    ----------
    gram : (d, d) float tensor, symmetric positive definite.
    y : (B, L, d) observed item vectors per row; padding rows must be zero.
    extra, target : (B, L) tensors or scalars (a scalar applies to every observed item).

    The batched products run in ``y``'s dtype (float32 is 4x faster here) and the system is
    accumulated and solved in ``gram``'s (float64 keeps weakly regularised solves stable).

    Returns
    -------
    (B, d) tensor of row vectors, dtype of ``y``.
    """
    weight = torch.as_tensor(extra, dtype=y.dtype).expand(y.shape[:2])
    a = gram + ((y * weight.unsqueeze(-1)).transpose(1, 2) @ y).to(gram.dtype)
    b = (y * torch.as_tensor(target, dtype=y.dtype).expand(y.shape[:2]).unsqueeze(-1)).sum(1)
    return torch.linalg.solve(a, b.to(gram.dtype)).to(y.dtype)


def als_half_step(other: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor,
                  alpha: float, lam: float) -> torch.Tensor:
    """New factors of every row of a binary CSR matrix, given the column factors ``other``.

    Rows are sorted by their number of positives and solved in chunks of padded positives
    (one batched solve per chunk), so the padding stays small and memory bounded.
    """
    n_rows, dim = len(indptr) - 1, other.shape[1]
    wide = other.double()
    gram = wide.T @ wide + lam * torch.eye(dim, dtype=torch.float64)
    lengths = indptr[1:] - indptr[:-1]
    order = torch.argsort(lengths)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // (max(1, int(lengths.max())) * dim))
    out = torch.empty(n_rows, dim, dtype=other.dtype)
    for start in range(0, n_rows, rows_per_chunk):
        rows = order[start:start + rows_per_chunk]
        y = _padded_vectors(other, indptr, indices, lengths, rows)
        out[rows] = weighted_ridge(gram, y, alpha, 1.0 + alpha)
    return out


def _padded_vectors(other, indptr, indices, lengths, rows) -> torch.Tensor:
    """(len(rows), L, d) column vectors of each row's positives, zero-padded to the longest."""
    width = int(lengths[rows].max())
    offsets = torch.arange(width)
    valid = offsets < lengths[rows].unsqueeze(1)
    positions = torch.where(valid, indptr[rows].unsqueeze(1) + offsets, 0)
    if len(indices) == 0:
        return torch.zeros(len(rows), width, other.shape[1], dtype=other.dtype)
    return other[indices[positions]] * valid.unsqueeze(-1)


def als_objective(x: torch.Tensor, y: torch.Tensor, users: torch.Tensor, items: torch.Tensor,
                  alpha: float, lam: float) -> float:
    """The weighted squared error over all cells plus L2, without forming the dense matrix:
    ``sum s^2`` over every cell is ``<X^T X, Y^T Y>``, corrected on the positives."""
    everything = float(((x.T @ x) * (y.T @ y)).sum())
    s = (x[users] * y[items]).sum(1)
    positives = float(((1.0 + alpha) * (1.0 - s) ** 2 - s**2).sum())
    return everything + positives + lam * float((x * x).sum() + (y * y).sum())


class ALS(FactorModel):
    """Implicit ALS: every unseen cell is a weak 0, every positive a confident 1.

    ``config.epochs`` is the number of sweeps (users, then items). After each sweep the
    callbacks get ``loss`` (the objective above divided by the number of training positives),
    ``valid_recall@10``, ``valid_ndcg@10``, ``elapsed`` and ``best_epoch``; with ``patience``
    the fit stops when validation Recall@10 has not improved for that many sweeps, and the
    best sweep's factors are kept either way.
    """

    name = "mf-als"
    settings = ("dim", "epochs", "weight_decay", "als_alpha", "patience", "refit", "seed",
                "threads")
    description = "Alternating least squares on confidence-weighted implicit feedback."

    def _fit(self, split: Any, callbacks: Sequence[EpochCallback]) -> None:
        cfg = self.config
        by_user = _binary_csr(split.train_pos.to_csr())
        by_item = by_user.T.tocsr()
        users = torch.from_numpy(split.train_pos.user_index.astype(np.int64))
        items = torch.from_numpy(split.train_pos.item_index.astype(np.int64))
        has_valid = len(split.valid_pos) > 0
        gen = torch.Generator().manual_seed(cfg.seed)
        # Small random items (as implicit): the first sweep starts from the users' solve.
        y = torch.randn(self.n_items, cfg.dim, generator=gen) * 0.01
        best_value, best_epoch, best = -math.inf, 0, None
        self.history = []
        start = time.perf_counter()
        with torch_threads(cfg.threads):
            for epoch in range(1, cfg.epochs + 1):
                x = als_half_step(y, *_torch_csr(by_user), cfg.als_alpha, cfg.weight_decay)
                y = als_half_step(x, *_torch_csr(by_item), cfg.als_alpha, cfg.weight_decay)
                loss = als_objective(x.double(), y.double(), users, items, cfg.als_alpha,
                                     cfg.weight_decay)
                loss /= max(1, len(users))
                self._check_finite(loss, x, y, epoch)
                self.users, self.items = x.numpy(), y.numpy()
                stats: dict[str, Any] = {"epoch": epoch, "loss": loss}
                if has_valid:
                    valid = evaluate_model(self, split, k=10, part="valid").metrics
                    stats.update({f"valid_{k}": valid[k] for k in ("recall@10", "ndcg@10")})
                    if valid["recall@10"] > best_value:
                        best_value, best_epoch = valid["recall@10"], epoch
                        best = (self.users, self.items)
                stats["elapsed"] = time.perf_counter() - start
                stats["best_epoch"] = best_epoch or epoch
                self.history.append(stats)
                requested_stop = any([bool(cb(epoch, stats)) for cb in callbacks])
                stale = cfg.patience and has_valid and epoch - best_epoch >= cfg.patience
                if requested_stop or stale:
                    break
        if best is not None:
            self.users, self.items = best

    def _check_finite(self, loss: float, x: torch.Tensor, y: torch.Tensor, epoch: int) -> None:
        if not (math.isfinite(loss) and torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise TrainingDivergedError(
                f"{self.name}: factors became NaN/inf in sweep {epoch}; raise weight_decay "
                f"(now {self.config.weight_decay:g}) or lower als_alpha "
                f"(now {self.config.als_alpha:g})"
            )


def _binary_csr(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Preferences are 0/1 whatever the stored values (duplicates count once)."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    matrix.data = np.ones_like(matrix.data)
    return matrix


def _torch_csr(matrix: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)))
