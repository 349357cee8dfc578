"""Tolerances for comparing floating-point results across code paths and machines.

BLAS and torch pick their kernels by CPU (AVX2, AVX-512, thread count), and with them the order
in which a dot product is summed, so two paths that compute the same number mathematically
agree only to within a rounding bound, and a number recorded on one machine differs in its last
bits on another. The helpers here state those bounds instead of comparing bit for bit.
"""

from __future__ import annotations

import numpy as np

FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7: one ulp at 1.0


def dot_rounding_bound(user_factors: np.ndarray, item_factors: np.ndarray,
                       *biases: np.ndarray | None) -> float:
    """How far apart two float32 computations of any ``p_u . q_i + biases`` score can be.

    The classic summation bound (Higham, *Accuracy and Stability of Numerical Algorithms*,
    3.1): a sum of n float32 terms computed in any order is off by at most
    ``(n - 1) * eps * sum |term|``; two such sums, in two summation orders, differ by at most
    twice that. Here n = dim + the number of biases, and ``sum |term|`` is bounded by
    ``|p| . |q| + |b|`` at its largest over all users and items.
    """
    p = np.abs(np.asarray(user_factors, np.float64))
    q = np.abs(np.asarray(item_factors, np.float64))
    magnitude = (p @ q.T).max(initial=0.0)
    present = [np.abs(np.asarray(b, np.float64)).max(initial=0.0) for b in biases
               if b is not None]
    n_terms = p.shape[1] + len(present)
    return 2.0 * n_terms * FLOAT32_EPS * (magnitude + sum(present))


def assert_ranking_is_stable(ranked_scores: np.ndarray, bound: float) -> None:
    """Checks that ties cannot flip: in every row of best-first ``ranked_scores`` (the k
    listed and the first one left out), neighbouring finite scores lie more than ``2 * bound``
    apart, so two paths each within ``bound`` of the exact scores rank them the same."""
    finite = np.where(np.isfinite(ranked_scores), ranked_scores, np.nan)
    gaps = np.abs(np.diff(finite, axis=1))
    closest = np.nanmin(gaps) if np.isfinite(gaps).any() else np.inf
    assert closest > 2 * bound, (
        f"two scores {closest:.2e} apart, within twice the rounding bound {bound:.2e} of two "
        "paths: their order is rounding, pick data without near-ties")
