"""Implicit-feedback matrix factorisation by alternating least squares (mf-als).

Hu, Koren & Volinsky (2008), the model behind ``implicit``'s ALS. Every user x item cell has a
preference p (1 for a training positive, else 0) and a confidence c (``1 + als_alpha`` for a
positive, else 1); the factors minimise

    sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + lambda (|X|^2 + |Y|^2),   lambda = als_lambda,

so lambda is on the scale of one unobserved cell's confidence, as ``implicit``'s
``regularization``. With the items fixed each user's vector is a weighted ridge regression in
closed form, and vice versa: one sweep solves all users, then all items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recsys.linalg import weighted_ridge
from recsys.models.base import EpochCallback, FactorModel
from recsys.splits import Part
from recsys.trainer import TrainingDivergedError, torch_threads, train

# Padded item vectors held at once per chunk of rows (float32 elements, ~16 MB).
_CHUNK_ELEMENTS = 1 << 22


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
    settings = ("dim", "epochs", "als_lambda", "als_alpha", "patience", "refit", "seed",
                "threads")
    setting_help = {"epochs": "ALS sweeps (all users, then all items)"}
    description = "Alternating least squares on confidence-weighted implicit feedback."
    iterative = True

    def _fit(self, train_part: Part, valid: Part | None, callbacks: Sequence[EpochCallback],
             epochs: int) -> list[dict[str, Any]]:
        cfg = self.config
        positives = train_part.positives
        by_user = _binary_csr(positives.to_csr())
        self._rows = (_torch_csr(by_user), _torch_csr(by_user.T.tocsr()))
        self._positives = (torch.from_numpy(positives.user_index.astype(np.int64)),
                           torch.from_numpy(positives.item_index.astype(np.int64)))
        gen = torch.Generator().manual_seed(cfg.seed)
        # Small random items (as implicit): the first sweep starts from the users' solve.
        self._y = torch.randn(self.n_items, cfg.dim, generator=gen) * 0.01
        with torch_threads(cfg.threads):
            history = train(self, train_part, valid, callbacks, epochs)
        del self._rows, self._positives, self._y
        return history

    # ------------------------------------------------------- the epoch recsys.trainer runs
    def train_epoch(self, epoch: int) -> float:
        """One sweep (all users, then all items); the objective per training positive."""
        cfg = self.config
        by_user, by_item = self._rows
        users, items = self._positives
        x = als_half_step(self._y, *by_user, cfg.als_alpha, cfg.als_lambda)
        y = als_half_step(x, *by_item, cfg.als_alpha, cfg.als_lambda)
        loss = als_objective(x.double(), y.double(), users, items, cfg.als_alpha,
                             cfg.als_lambda)
        loss /= max(1, len(users))
        self._check_finite(loss, x, y, epoch)
        self._y = y
        self.users, self.items = x.numpy(), y.numpy()
        return loss

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.users, self.items  # each sweep makes new arrays: no copy needed

    def restore(self, state: tuple[np.ndarray, np.ndarray]) -> None:
        self.users, self.items = state

    def check_finite(self) -> None:
        """Every sweep was checked as it ran (:meth:`_check_finite`)."""

    def _check_finite(self, loss: float, x: torch.Tensor, y: torch.Tensor, epoch: int) -> None:
        if not (math.isfinite(loss) and torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise TrainingDivergedError(
                f"{self.name}: factors became NaN/inf in sweep {epoch}; raise als_lambda "
                f"(now {self.config.als_lambda:g}) or lower als_alpha "
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
