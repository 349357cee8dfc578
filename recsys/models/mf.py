"""Matrix factorisation: BPR and BCE on sampled negatives, MSE on explicit ratings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recsys.models.embedding import EmbeddingRecommender, TorchTraining, adam_step
from recsys.models.losses import bce_loss, bpr_loss, mse_loss
from recsys.models.modules import MatrixFactorization

if TYPE_CHECKING:  # numba's import (~0.3 CPU s) waits for the first compiled fit
    from recsys.models.compiled_sgd import CompiledTraining


class _MF(EmbeddingRecommender):
    folds_in = True
    score_kind = "dot+bias"
    module: MatrixFactorization

    def build_module(self, n_users: int, n_items: int) -> MatrixFactorization:
        return MatrixFactorization(n_users, n_items, self.config.dim)

    def user_factors(self) -> np.ndarray:
        return self.module.user.weight.detach().cpu().numpy()

    def item_factors(self) -> np.ndarray:
        return self.module.item.weight.detach().cpu().numpy()

    def user_biases(self) -> np.ndarray:
        return self.module.user_bias.weight.detach().cpu().numpy().ravel()

    def item_biases(self) -> np.ndarray:
        return self.module.item_bias.weight.detach().cpu().numpy().ravel()

    def global_mean(self) -> float:
        return float(self.module.global_mean)


class _SampledMF(_MF):
    """MF on (user, positive, negatives) batches with hand-written gradients.

    Autograd on CPU spends most of a step on broadcast multiplies and embedding backward; the
    closed-form gradient of a dot-product model needs half the passes over memory, which makes
    the default fit about twice as fast. ``tests/test_models.py`` checks it against autograd.
    """

    uses_user_bias = True
    # Its vectors share a strong popularity direction: removing it gives lists that agree
    # with genres and co-likes, where cosine leaks blockbusters (bench/NEIGHBOURS.md).
    default_lens = "debiased"
    settings = (*EmbeddingRecommender.settings, "engine", "sgd_lr")
    setting_help = {
        "lr": "torch engine: Adam learning rate (the compiled engine reads sgd_lr)",
        "batch_size": "torch engine: positives per Adam step (the compiled engine steps after "
                      "every sample)",
    }

    @classmethod
    def migrate_config(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Configs saved before the compiled engine existed were trained by torch."""
        return values if "engine" in values else {**values, "engine": "torch"}

    def start_training(self, train_part: Any) -> TorchTraining | CompiledTraining:
        """The torch engine's scratch (Adam on batches), or for ``engine="compiled"`` the
        compiled engine's: the same initial module, updated in place through numpy views."""
        if self.config.engine != "compiled":
            return super().start_training(train_part)
        from recsys.models.compiled_sgd import CompiledTraining
        self.module = self.build_module(self.n_users, self.n_items)
        self.remember_start()
        m = self.module
        tables = tuple(t.detach().numpy().reshape(shape) for t, shape in (
            (m.user.weight, (self.n_users, -1)), (m.item.weight, (self.n_items, -1)),
            (m.item_bias.weight, (-1,)), (m.user_bias.weight, (-1,))))
        rng = np.random.default_rng(self.config.seed)
        return CompiledTraining(self, self.training_data(train_part), rng, tables)

    def _tables(self, training: TorchTraining) -> tuple[torch.Tensor, ...]:
        """The parameters and their gradient buffers as plain tensors, found once per fit (kept
        in ``training``'s workspace): on ML-100K, ``nn.Module`` look-ups and ``no_grad`` cost as
        much as a step's small ops.

        (user, item, item bias (n_items,), user bias (n_users, 1) or None) and the same four
        gradients. The parameters are detached aliases (same storage, no autograd); the user
        bias of mf-bpr keeps ``grad`` None, so Adam leaves it untouched."""
        workspace = training.workspace
        if "tables" not in workspace:
            m = self.module
            params = [m.user.weight, m.item.weight, m.item_bias.weight]
            if self.uses_user_bias:  # else its grad stays None: Adam leaves it untouched
                params.append(m.user_bias.weight)
            for param in params:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
            missing = [None] * (4 - len(params))
            weights = [param.detach() for param in params] + missing
            grads = [param.grad for param in params] + missing
            weights[2], grads[2] = weights[2].view(-1), grads[2].view(-1)  # item bias (n_items,)
            workspace["tables"] = (*weights, *grads)
        return workspace["tables"]

    def score_gradient(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss value and dLoss/dscores for scores (B, 1 + n_negatives), positive first."""
        raise NotImplementedError

    def train_step(self, batch: tuple, training: TorchTraining) -> float:
        """One Adam step with the closed-form gradient of the batch loss (no autograd).

        For user u with vector p and the items j of its row (the positive first) with vectors
        q_j and biases b_j, s_j = <p, q_j> + b_j (+ b_u for mf-bce). With g_j = dLoss/ds_j
        from :meth:`score_gradient` and the per-example L2 term wd * (|p|^2 + sum_j |q_j|^2) / B:

            dLoss/dp   = sum_j g_j q_j + 2 wd/B p
            dLoss/dq_j = g_j p + 2 wd/B q_j
            dLoss/db_j = g_j,   dLoss/db_u = sum_j g_j

        A user or item in several rows of the batch gets the sum (``index_add_``). The (B, K, d)
        products are written once, into buffers kept between steps (``training.buffer``); Adam
        then updates every row as with autograd (:func:`~recsys.models.embedding.adam_step`).
        """
        users, positives, negatives = batch
        wd = self.config.weight_decay
        user_w, item_w, item_b, user_b, user_g, item_g, item_b_g, user_b_g = self._tables(training)
        items = torch.cat([positives[:, None], negatives], dim=1)  # (B, K): positive first
        flat, n, dim = items.view(-1), len(users), user_w.shape[1]
        p = torch.index_select(user_w, 0, users, out=training.buffer("p", (n, dim), user_w))
        q = torch.index_select(item_w, 0, flat, out=training.buffer("q", (len(flat), dim), item_w))
        q = q.view(*items.shape, dim)  # (B, K, d)
        scores = torch.bmm(q, p.unsqueeze(2)).squeeze(2)  # <p, q_j>: 4x the mul-and-sum
        scores += item_b.index_select(0, flat).view(items.shape)
        if user_b is not None:
            scores += user_b.index_select(0, users)
        loss, grad = self.score_gradient(scores)
        if wd:
            flat_p, flat_q = p.view(-1), q.view(-1)
            loss = loss + wd * float(flat_p @ flat_p + flat_q @ flat_q) / n
        grad_p = torch.mul(p, 2 * wd / n, out=training.buffer("grad_p", p.shape, p))
        for j in range(items.shape[1]):  # K slices of (B, d): no (B, K, d) temporary
            grad_p.addcmul_(q[:, j], grad[:, j : j + 1])
        grad_q = q.mul_(2 * wd / n).addcmul_(grad.unsqueeze(-1), p.unsqueeze(1))  # reuses q
        user_g.zero_().index_add_(0, users, grad_p)
        item_g.zero_().index_add_(0, flat, grad_q.view(len(flat), dim))
        item_b_g.zero_().index_add_(0, flat, grad.view(-1))
        if user_b_g is not None:
            user_b_g.zero_().index_add_(0, users, grad.sum(1, keepdim=True))
        adam_step(training.optimizer)
        return float(loss)


class MFBPR(_SampledMF):
    name = "mf-bpr"
    blend_by_likes = {1: 0.9, 2: 0.9, 3: 0.8, 5: 0.8, 10: 0.6, 20: 0.8}
    description = "Dot product + item bias, trained to rank a liked item above a sampled one (BPR)."
    uses_user_bias = False  # it cancels in s(u, i) - s(u, j): its gradient is exactly zero

    def pair_loss(self, positive, negative):
        return bpr_loss(positive, negative)

    def score_gradient(self, scores):
        """With diff_k = s_pos - s_neg_k: loss = mean softplus(-diff) (= -log sigmoid(diff)),
        dLoss/ds_neg_k = sigmoid(-diff_k) / count and dLoss/ds_pos = -sum_k of those."""
        minus_diff = scores[:, 1:] - scores[:, :1]  # (B, K-1): each negative minus the positive
        count = minus_diff.numel()
        loss = torch.nn.functional.softplus(minus_diff).sum() / count
        negatives = torch.sigmoid(minus_diff).div_(count)
        return loss, torch.cat([negatives.sum(1, keepdim=True).neg_(), negatives], dim=1)


class MFBCE(_SampledMF):
    name = "mf-bce"
    blend_by_likes = {1: 1.0, 2: 1.0, 3: 0.9, 5: 0.7, 10: 0.6, 20: 0.6}
    description = "Dot product + user/item biases, liked vs sampled items as a yes/no task (BCE)."

    def pair_loss(self, positive, negative):
        return bce_loss(positive, negative)

    def score_gradient(self, scores):
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        count = scores.numel()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)
        return loss, (torch.sigmoid(scores) - labels) / count


class MFMSE(_MF):
    """Explicit rating prediction: r(u, i) = mu + b_u + b_i + <p_u, q_i>, squared error + L2."""

    name = "mf-mse"
    blend_by_likes = {1: 0.9, 2: 0.8, 3: 0.9, 5: 0.8, 10: 0.7, 20: 0.7}
    settings = ("dim", "epochs", "lr", "weight_decay", "batch_size", "patience", "refit",
                "seed", "threads", "device")
    description = "Predicts star ratings (global mean + biases + dot), squared error; RMSE."
    score_kind = "rating"
    monitor = ("rmse", False)

    def build_module(self, n_users: int, n_items: int) -> MatrixFactorization:
        return MatrixFactorization(n_users, n_items, self.config.dim, self._global_mean)

    def training_data(self, train_part: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, stars) of every training rating."""
        train = train_part.ratings
        return train.user_index, train.item_index, train.ratings

    def _fit(self, train_part, valid, callbacks, epochs):
        ratings = train_part.ratings
        self._global_mean = float(ratings.ratings.mean()) if len(ratings) else 0.0
        return super()._fit(train_part, valid, callbacks, epochs)

    def epoch_batches(self, training: TorchTraining) -> Iterator[tuple]:
        order = training.rng.permutation(len(training.data[0]))
        tensors = [torch.from_numpy(a[order]).to(self.device) for a in training.data]
        for start in range(0, len(order), self.config.batch_size):
            yield tuple(t[start : start + self.config.batch_size] for t in tensors)

    def batch_loss(self, users, items, ratings) -> torch.Tensor:
        predicted, penalty = self.module.scores_and_penalty(
            users, items, self.config.weight_decay > 0
        )
        loss = mse_loss(predicted, ratings)
        if self.config.weight_decay:
            loss = loss + self.config.weight_decay * penalty
        return loss

    def predict_ratings(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted stars for (user, item) index pairs, clipped to the 0.5-5 scale."""
        with torch.no_grad():
            pred = self.module(torch.as_tensor(users), torch.as_tensor(items))
        return np.clip(pred.cpu().numpy(), 0.5, 5.0)

    def _load_params(self, params) -> None:
        self._global_mean = float(params.get("global_mean", 0.0))
        super()._load_params(params)
