"""All-users top-k for dot-product models, in blocks of users with one reused score buffer.

:func:`recsys.evaluation.metrics.top_k_items` works for any ``score(users)``; for factor models this
does the same ranking without the per-batch numpy copies: each block of users is one matrix
product written into the same preallocated buffer (no fresh 100+ MB allocation, and no page
faults, per block at ML-25M size), the seen items are masked in place, then ``torch.topk``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def top_k_dot(user_factors: np.ndarray, item_factors: np.ndarray, users: np.ndarray,
              exclude: sp.csr_matrix | None, k: int, item_bias: np.ndarray | None = None,
              block_size: int = 1024, user_bias: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` items of ``users`` by ``p_u . q_i (+ b_i) (+ b_u)``, skipping ``exclude``'s
    items (the terms added in that order, as the torch models' ``score_all``: same floats).

    Same contract as :func:`recsys.evaluation.metrics.top_k_items`: (len(users), k) item indices and
    float32 scores, best first; excluded items never appear unless fewer than ``k`` remain.
    """
    users = np.asarray(users, np.int64)
    p = torch.from_numpy(np.ascontiguousarray(user_factors, np.float32))
    q_t = torch.from_numpy(np.ascontiguousarray(item_factors, np.float32)).T
    bias = None if item_bias is None else torch.from_numpy(np.asarray(item_bias, np.float32))
    user_bias_t = (None if user_bias is None
                   else torch.from_numpy(np.asarray(user_bias, np.float32).reshape(-1)))
    n_items, k = q_t.shape[1], min(k, q_t.shape[1])
    buffer = torch.empty(min(block_size, max(len(users), 1)), n_items)
    items_out = np.empty((len(users), k), np.int64)
    scores_out = np.empty((len(users), k), np.float32)
    for start in range(0, len(users), block_size):
        batch = users[start:start + block_size]
        scores = buffer[:len(batch)]
        torch.mm(p[torch.from_numpy(batch)], q_t, out=scores)
        if bias is not None:
            scores += bias
        if user_bias_t is not None:
            scores += user_bias_t[torch.from_numpy(batch)][:, None]
        if exclude is not None:
            seen = exclude[batch].tocoo()
            flat = torch.from_numpy(seen.row.astype(np.int64) * n_items + seen.col)
            scores.view(-1).index_fill_(0, flat, -np.inf)
        best = torch.topk(scores, k, dim=1)
        items_out[start:start + len(batch)] = best.indices.numpy()
        scores_out[start:start + len(batch)] = best.values.numpy()
    return items_out, scores_out
