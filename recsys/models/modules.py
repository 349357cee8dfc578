"""Torch modules: matrix factorisation with biases, and NCF (GMF + MLP).

Each module scores ``items`` of shape (B,) or (B, n) for ``users`` of shape (B,) and returns,
from the same gathered embeddings, an L2 penalty: the mean squared norm of the user vector plus
the summed squared norms of the item vectors of one example (per-example L2, as in BPR).
"""

from __future__ import annotations

import torch
from torch import nn


def _penalty(user_vectors: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
    items = item_vectors.pow(2).sum(-1)
    items = items.sum(-1) if item_vectors.dim() == 3 else items
    return (user_vectors.pow(2).sum(-1) + items).mean()


class MatrixFactorization(nn.Module):
    """score(u, i) = <p_u, q_i> + b_i + b_u (+ a global mean for rating prediction)."""

    def __init__(self, n_users: int, n_items: int, dim: int, global_mean: float = 0.0) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def scores_and_penalty(self, users: torch.Tensor, items: torch.Tensor, penalty: bool = True):
        p, q = self.user(users), self.item(items)
        if items.dim() == 2:
            # Broadcast multiply-and-sum: far faster on CPU than bmm of many tiny matrices.
            dot = (q * p.unsqueeze(1)).sum(-1)
            user_bias = self.user_bias(users)
        else:
            dot = (p * q).sum(-1)
            user_bias = self.user_bias(users).squeeze(-1)
        scores = dot + self.item_bias(items).squeeze(-1) + user_bias + self.global_mean
        return scores, _penalty(p, q) if penalty else None

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.scores_and_penalty(users, items, penalty=False)[0]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """(B, n_items) scores of every item: one matrix product."""
        return (
            self.user(users) @ self.item.weight.T
            + self.item_bias.weight.T
            + self.user_bias(users)
            + self.global_mean
        )


class NeuralCF(nn.Module):
    """NeuMF (He et al. 2017): a GMF path (element-wise product) and an MLP path over separate
    embeddings, concatenated into one logit."""

    def __init__(self, n_users: int, n_items: int, dim: int, layers: tuple[int, ...]) -> None:
        super().__init__()
        half = max(layers[0] // 2, 1)
        self.gmf_user = nn.Embedding(n_users, dim)
        self.gmf_item = nn.Embedding(n_items, dim)
        self.mlp_user = nn.Embedding(n_users, half)
        self.mlp_item = nn.Embedding(n_items, half)
        self.first = nn.Linear(2 * half, layers[1] if len(layers) > 1 else 2 * half)
        blocks, width = [], self.first.out_features
        for size in layers[2:]:
            blocks += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.mlp = nn.Sequential(*blocks)
        self.out = nn.Linear(dim + width, 1)
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, std=0.1)

    def _output_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The output layer's weights on the GMF features and on the MLP features."""
        w = self.out.weight[0]
        dim = self.gmf_user.embedding_dim
        return w[:dim], w[dim:]

    def _logits(self, gmf_u, gmf_i, first_u, first_i) -> torch.Tensor:
        """Shared tail. The first MLP layer on [u, i] is split as W_u u + W_i i, and the output
        layer on [gmf, mlp] as w_g . gmf + w_m . mlp, so no wide concatenation is built."""
        w_gmf, w_mlp = self._output_weights()
        hidden = self.mlp(torch.relu(first_u + first_i))
        return ((gmf_u * w_gmf) * gmf_i).sum(-1) + hidden @ w_mlp + self.out.bias

    def _first_layer_parts(self, user_vec, item_vec):
        half = user_vec.shape[-1]
        w_user, w_item = self.first.weight[:, :half], self.first.weight[:, half:]
        return user_vec @ w_user.T + self.first.bias, item_vec @ w_item.T

    def scores_and_penalty(self, users: torch.Tensor, items: torch.Tensor, penalty: bool = True):
        gu, gi = self.gmf_user(users), self.gmf_item(items)
        mu, mi = self.mlp_user(users), self.mlp_item(items)
        first_u, first_i = self._first_layer_parts(mu, mi)
        if items.dim() == 2:
            gu, first_u = gu.unsqueeze(1), first_u.unsqueeze(1)
        scores = self._logits(gu, gi, first_u, first_i)
        if not penalty:
            return scores, None
        return scores, _penalty(gu.squeeze(1) if gu.dim() == 3 else gu, gi) + _penalty(mu, mi)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.scores_and_penalty(users, items, penalty=False)[0]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """(B, n_items) logits: the GMF part is one matrix product, the MLP part is batched."""
        w_gmf, w_mlp = self._output_weights()
        gmf = (self.gmf_user(users) * w_gmf) @ self.gmf_item.weight.T
        first_u, first_i = self._first_layer_parts(self.mlp_user(users), self.mlp_item.weight)
        hidden = self.mlp(torch.relu(first_u.unsqueeze(1) + first_i.unsqueeze(0)))
        return gmf + hidden @ w_mlp + self.out.bias
