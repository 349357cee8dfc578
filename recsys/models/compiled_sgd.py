"""The compiled engine of mf-bpr and mf-bce: per-sample SGD over an epoch's drawn negatives.

The torch engine (:mod:`recsys.models.mf`) takes Adam steps on batches of 1024 positives; on
ML-100K most of its time is per-call overhead of ~40 small torch operations per step. Here one
numba-compiled loop walks the epoch's (user, positive, negatives) rows in their shuffled order
and updates the touched rows of the tables in place after every sample, as implicit's BPR does:
no batches, no optimiser state, one pass over memory.

Both engines minimise the same per-row objective, so ``weight_decay`` means the same in both.
For a row (user u with vector p, positive i, negatives j_1..j_K, scores s = <p, q> + b):

    BPR: L_row = mean_k softplus(s_jk - s_i) + wd * (|p|^2 + |q_i|^2 + sum_k |q_jk|^2)
    BCE: L_row = mean over the K + 1 items of BCE(s, label) + wd * (|p|^2 + sum |q|^2)
         (with the user bias in s; the positive's label is 1, the negatives' 0)

and the torch loss of a batch is the mean of L_row over its rows. SGD splits a row into one
step per pair (BPR: (i, j_k)) or per item (BCE), each on a term whose mean over the row is
L_row: the pair's loss, the penalty of p and the positive as in L_row, and the pair's own
negative with its K-fold share (the row penalises all K negatives once each; BCE: every item
of the row with a (K + 1)-fold share). An SGD step of ``sgd_lr`` on each term is a step of
K * sgd_lr on L_row, taken in K pieces. The same objective is not the same trajectory: per
sample SGD shrinks the vectors of rarely liked movies much further than Adam does (on ML-100K
their median length after the default fit is 0.07 against Adam's 0.70; bench/BPR_ENGINE.md).

The rows, shuffles and negatives are the torch engine's (``epoch_samples``, one seed). The
loops run serially (``threads`` is not read): with a seed, a fit is deterministic. The kernels
compile on their first call in a process without a cache (about 1.5 CPU s for both) and are
cached on disk per CPU kind (:mod:`recsys.models.kernels`); a later process pays numba's
set-up on its first call (about 0.4 CPU s). Their inner loops run in float32 with
reassociation allowed (:data:`~recsys.models.kernels.FASTMATH`): 0.67 -> 0.29 CPU s for 20
ML-100K epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys.errors import TrainingDivergedError
from recsys.models.kernels import kernel


@kernel
def bpr_sgd_epoch(user_w, item_w, item_b, users, positives, negatives, lr, weight_decay):
    """One epoch of BPR SGD in place; returns the sum over rows of the softplus part of
    L_row, each term taken before its own step (the L2 part is added by the caller).

    Parameters
    ----------
    user_w, item_w : float32 arrays (n_users, d), (n_items, d), updated in place
    item_b : float32 array (n_items,), updated in place
    users, positives : int64 arrays (n,), the rows in training order
    negatives : int64 array (n, K)
    lr, weight_decay : float, the SGD step and the per-row L2 weight (see the module)
    """
    n_neg = negatives.shape[1]
    dim = user_w.shape[1]
    # float32 constants: float64 ones would convert every element of the loops below
    step = np.float32(lr)
    decay_pos = np.float32(2.0 * weight_decay)
    decay_neg = np.float32(2.0 * weight_decay * n_neg)
    total = 0.0
    for row in range(users.shape[0]):
        u, i = users[row], positives[row]
        p, qi = user_w[u], item_w[i]
        row_loss = 0.0
        for k in range(n_neg):
            j = negatives[row, k]
            qj = item_w[j]
            dot = np.float32(0.0)
            for f in range(dim):
                dot += p[f] * (qi[f] - qj[f])
            diff = float(dot) + item_b[i] - item_b[j]
            # softplus(-diff) and sigmoid(-diff), stable for either sign of diff
            if diff > 0.0:
                e = math.exp(-diff)
                row_loss += math.log1p(e)
                g = e / (1.0 + e)
            else:
                e = math.exp(diff)
                row_loss += -diff + math.log1p(e)
                g = 1.0 / (1.0 + e)
            # d term / d diff = -g; every update reads the values before this step
            g32 = np.float32(g)
            for f in range(dim):
                pf, qif, qjf = p[f], qi[f], qj[f]
                p[f] = pf - step * (-g32 * (qif - qjf) + decay_pos * pf)
                qi[f] = qif - step * (-g32 * pf + decay_pos * qif)
                # re-read: a negative equal to the positive (a rare unresolved collision)
                # then gets both updates, as the gradient of the sum says
                qj[f] = qj[f] - step * (g32 * pf + decay_neg * qjf)
            item_b[i] += lr * g
            item_b[j] -= lr * g
        total += row_loss / n_neg
    return total


@kernel
def bce_sgd_epoch(user_w, item_w, item_b, user_b, users, positives, negatives, lr,
                  weight_decay):
    """One epoch of BCE SGD in place (the positive, then each negative, one step each);
    returns the sum over rows of the BCE part of L_row before each update. ``user_b`` is the
    user bias as a float32 array (n_users,); the rest as :func:`bpr_sgd_epoch`."""
    n_items_row = negatives.shape[1] + 1
    dim = user_w.shape[1]
    step = np.float32(lr)
    decay_p = np.float32(2.0 * weight_decay)
    decay_q = np.float32(2.0 * weight_decay * n_items_row)
    total = 0.0
    for row in range(users.shape[0]):
        u = users[row]
        p = user_w[u]
        row_loss = 0.0
        for k in range(n_items_row):
            j = positives[row] if k == 0 else negatives[row, k - 1]
            label = 1.0 if k == 0 else 0.0
            q = item_w[j]
            dot = np.float32(0.0)
            for f in range(dim):
                dot += p[f] * q[f]
            s = float(dot) + item_b[j] + user_b[u]
            # BCE with logits = softplus(s) - label * s; its derivative sigmoid(s) - label
            if s > 0.0:
                e = math.exp(-s)
                row_loss += s + math.log1p(e) - label * s
                g = 1.0 / (1.0 + e) - label
            else:
                e = math.exp(s)
                row_loss += math.log1p(e) - label * s
                g = e / (1.0 + e) - label
            g32 = np.float32(g)
            for f in range(dim):
                pf, qf = p[f], q[f]
                p[f] = pf - step * (g32 * qf + decay_p * pf)
                q[f] = qf - step * (g32 * pf + decay_q * qf)
            item_b[j] -= lr * g
            user_b[u] -= lr * g
        total += row_loss / n_items_row
    return total


def penalty_sum(user_w: np.ndarray, item_w: np.ndarray, users: np.ndarray,
                items: np.ndarray) -> float:
    """sum over rows of |p_u|^2 + sum over the row's items of |q|^2 (``items``: (n, K + 1)),
    the L2 part of the summed L_row, at the given tables."""
    p2 = np.einsum("ij,ij->i", user_w, user_w, dtype=np.float64)
    q2 = np.einsum("ij,ij->i", item_w, item_w, dtype=np.float64)
    return float(p2[users].sum() + q2[items].sum())


@dataclass(eq=False)
class CompiledTraining:
    """The scratch state of one fit with the compiled engine, made by ``start_training`` of
    mf-bpr / mf-bce and dropped by the training loop when the fit ends: what the epochs draw
    from (``data``, as the torch engine's), the random generator of shuffles and negatives,
    and numpy views of the module's parameters, which the kernel updates in place."""

    model: Any  # a recsys.models.mf._SampledMF
    data: Any
    rng: np.random.Generator
    tables: tuple[np.ndarray, ...]  # user, item, item bias (n_items,), user bias (n_users,)

    def train_epoch(self, epoch: int) -> float:
        """One shuffled pass of per-sample SGD; the mean L_row over the rows, each taken
        before its own updates (the torch engine's epoch loss, one row at a time)."""
        model, cfg = self.model, self.model.config
        users, positives, negatives = model.epoch_samples(self.data, self.rng)
        user_w, item_w, item_b, user_b = self.tables
        # The L2 part of L_row is summed at the epoch's start: within 1/n of the per-row
        # value, and it keeps the kernel's inner loop free of norms it does not need.
        items = np.concatenate([positives[:, None], negatives], axis=1)
        penalty = cfg.weight_decay * penalty_sum(user_w, item_w, users, items)
        if model.uses_user_bias:
            loss = bce_sgd_epoch(user_w, item_w, item_b, user_b, users, positives, negatives,
                                 cfg.sgd_lr, cfg.weight_decay)
        else:
            loss = bpr_sgd_epoch(user_w, item_w, item_b, users, positives, negatives,
                                 cfg.sgd_lr, cfg.weight_decay)
        mean = (loss + penalty) / max(len(users), 1)
        if not math.isfinite(mean):
            raise TrainingDivergedError(
                f"{model.name}: loss became {mean} in epoch {epoch}; lower the SGD step "
                f"(now {cfg.sgd_lr:g}) or raise weight_decay")
        return mean
