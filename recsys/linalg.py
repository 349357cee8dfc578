"""The shared maths: unit rows, rank correlation, the weighted ridge solve behind ALS and
fold-in, and the item cosine of a user x item matrix. Models, serving and the neighbour lenses
all use these. torch is imported by the solves alone, so the light helpers keep light callers
light."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    import torch


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (zero rows stay zero): cosine = inner product."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties given their mean rank (``scipy.stats.rankdata``'s default,
    without importing scipy.stats: ~1 s of every CLI and worker start)."""
    x = np.asarray(x).ravel()
    order = np.argsort(x, kind="mergesort")
    _, first, counts = np.unique(x[order], return_index=True, return_counts=True)
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's of the average ranks); NaN when either side is
    constant or holds a NaN, as ``scipy.stats.spearmanr``."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    scale = np.sqrt((ra @ ra) * (rb @ rb))
    return float(np.clip(ra @ rb / scale, -1.0, 1.0)) if scale > 0 else float("nan")


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
    import torch

    if isinstance(extra, float) and isinstance(target, float):  # ALS: one weight for all
        a = gram + (extra * (y.transpose(1, 2) @ y)).to(gram.dtype)
        b = target * y.sum(1)
    else:
        weight = torch.as_tensor(extra, dtype=y.dtype).expand(y.shape[:2])
        a = gram + ((y * weight.unsqueeze(-1)).transpose(1, 2) @ y).to(gram.dtype)
        b = (y * torch.as_tensor(target, dtype=y.dtype).expand(y.shape[:2]).unsqueeze(-1)).sum(1)
    return torch.linalg.solve(a, b.to(gram.dtype)).to(y.dtype)


def few_positives_ridge(whitened: torch.Tensor, gram_chol_inv: torch.Tensor,
                        extra: float, target: float) -> torch.Tensor:
    """:func:`weighted_ridge` with scalar ``extra`` and ``target``, for rows with fewer observed
    items L than dimensions d: the same exact solution through an L x L system.

    With ``gram = R R^T`` (Cholesky) and ``w = y R^{-T}`` the observed vectors whitened by it,
    the Woodbury identity turns ``(gram + e y^T y) x = t y^T 1`` into
    ``(I + e w w^T) u = 1``, ``x = t R^{-T} w^T u``. Solving L x L instead of d x d systems is
    what makes ALS fast on MovieLens, where most users and items have fewer positives than d;
    ``tests/test_speed_paths.py`` checks it against :func:`weighted_ridge`.

    Parameters
    ----------
    whitened : (B, L, d) whitened observed vectors; padding rows must be zero.
    gram_chol_inv : (d, d) ``R^{-1}``, same dtype.
    extra, target : the confidence added by an observed item and its target (``c - c0``, ``c p``).

    When the gram includes every observed vector (as in ALS), ``w w^T`` has eigenvalues in
    [0, 1], so the system's lie in [1, 1 + extra]: float32 is accurate here.

    Returns
    -------
    (B, d) row vectors, dtype of ``whitened``.
    """
    import torch

    inner = whitened @ whitened.transpose(1, 2)  # (B, L, L): y gram^-1 y^T
    system = extra * inner + torch.eye(inner.shape[1], dtype=inner.dtype)
    # SPD (eigenvalues >= 1): Cholesky; the _ex form lets NaN reach the caller's finite check
    ones = torch.ones(*inner.shape[:2], 1, dtype=inner.dtype)
    u = torch.cholesky_solve(ones, torch.linalg.cholesky_ex(system)[0]).squeeze(-1)
    v = target * (whitened * u.unsqueeze(-1)).sum(1)  # (B, d): t w^T u
    return v @ gram_chol_inv  # rows of (R^{-T} v)^T


@dataclass(frozen=True, eq=False)
class FoldInBasis:
    """What every fold-in against one set of frozen item factors shares: the factors as a
    float64 tensor (a copy), their Gram matrix ``q^T q`` and their mean squared row norm.

    Computing the Gram is most of a one-user fold-in's work (on ML-100K ~0.2 ms on one
    thread, 1-7 ms of CPU on two), so a caller that folds in many users against factors that
    never change (a loaded run's serving :class:`~recsys.serving.catalog.Catalog`) builds this
    once and passes it to :func:`ridge_fold_in` in place of the factors.
    """

    q: torch.Tensor  # (n_items, d) float64
    gram: torch.Tensor  # (d, d) float64: q^T q
    mean_square_norm: float  # mean over items of |q_i|^2

    @classmethod
    def of(cls, q: np.ndarray) -> FoldInBasis:
        import torch

        t = torch.from_numpy(np.array(q, np.float64))  # a copy: later changes to q never leak in
        return cls(t, t.T @ t, float((t * t).sum(1).mean()))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.q.shape)


def ridge_fold_in(q: np.ndarray | FoldInBasis, liked: np.ndarray,
                  disliked: np.ndarray | None = None, reg: float = 0.1,
                  unobserved_weight: float = 0.05, disliked_weight: float = 1.0) -> np.ndarray:
    """New users' vectors against frozen item factors: the implicit-ALS user step, batched.

    Parameters
    ----------
    q : (n_items, d) frozen item factors, or their :class:`FoldInBasis` (the same result
        without recomputing their Gram matrix).
    liked, disliked : (B, L) and (B, M) int item indices (every user the same counts).
    reg : ridge penalty, in units of the mean squared item-vector norm.
    unobserved_weight, disliked_weight : confidence of every other item (target 0) and of a
        disliked item (target 0); a liked item has confidence 1 and target 1.

    Returns
    -------
    (B, d) float32 user vectors, one batched solve.
    """
    import torch

    basis = q if isinstance(q, FoldInBasis) else FoldInBasis.of(q)
    liked = np.asarray(liked, np.int64)
    disliked = np.zeros((len(liked), 0), np.int64) if disliked is None else \
        np.asarray(disliked, np.int64)
    w0 = unobserved_weight
    lam = reg * basis.mean_square_norm
    gram = w0 * basis.gram + lam * torch.eye(basis.gram.shape[0], dtype=torch.float64)
    observed = np.concatenate([liked, disliked], axis=1)
    extra = np.concatenate([np.full(liked.shape, 1.0 - w0),
                            np.full(disliked.shape, disliked_weight - w0)], axis=1)
    target = np.concatenate([np.ones(liked.shape), np.zeros(disliked.shape)], axis=1)
    x = weighted_ridge(gram, basis.q[torch.from_numpy(observed)], torch.from_numpy(extra),
                       torch.from_numpy(target))
    return x.numpy().astype(np.float32)


def cosine_item_similarity(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Item x item cosine of the columns of a user x item matrix, zero diagonal (float32)."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    inv = sp.diags(1.0 / np.maximum(norms, 1e-12))
    sim = (inv @ (matrix.T @ matrix) @ inv).tocsr().astype(np.float32)
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    return sim


# Dense similarity rows held at once by top_k_cosine_similarity (float32 elements, ~64 MB).
_BLOCK_ELEMENTS = 1 << 24


def top_k_cosine_similarity(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row of :func:`cosine_item_similarity` keeping only entries >= its k-th largest,
    computed in blocks of item rows so memory stays O(block x n_items + n_items x k) rather
    than the O(n_items^2) of the whole matrix (ML-25M: 62k items, 15.6 GB dense).

    Equal, entry for entry, to densifying the whole similarity and thresholding each row
    (``tests/test_speed_paths.py``)."""
    parts = SimilarityBlocks(matrix)
    blocks = [parts.top_k_rows(start, k) for start in parts.block_starts()]
    return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix(
        (0, parts.n_items), dtype=np.float32)


class SimilarityBlocks:
    """What every block of :func:`top_k_cosine_similarity` shares (bench/scale.py times
    single blocks of it)."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix.tocsr()
        self.n_items = matrix.shape[1]
        norms = np.sqrt(np.asarray(self.matrix.multiply(self.matrix).sum(axis=0)).ravel())
        self.inv_norms = 1.0 / np.maximum(norms, 1e-12)
        self.by_item = self.matrix.T.tocsr()
        self.rows_per_block = max(1, _BLOCK_ELEMENTS // max(self.n_items, 1))

    def block_starts(self) -> range:
        return range(0, self.n_items, self.rows_per_block)

    def top_k_rows(self, start: int, k: int) -> sp.csr_matrix:
        """Rows start .. start + rows_per_block of the thresholded similarity."""
        stop = min(start + self.rows_per_block, self.n_items)
        gram_rows = self.by_item[start:stop] @ self.matrix
        sim = (sp.diags(self.inv_norms[start:stop]) @ gram_rows
               @ sp.diags(self.inv_norms)).astype(np.float32)
        dense = sim.toarray()
        dense[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if k < self.n_items:
            cutoff = np.partition(dense, self.n_items - k, axis=1)[:, self.n_items - k]
            dense[dense < cutoff[:, None]] = 0.0
        return sp.csr_matrix(dense)
