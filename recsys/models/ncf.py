"""Neural collaborative filtering (NeuMF, He et al. 2017) trained with BCE on sampled negatives."""

from __future__ import annotations

import numpy as np

from recsys.models.embedding import EmbeddingRecommender
from recsys.models.losses import bce_loss
from recsys.models.modules import NeuralCF


class NCF(EmbeddingRecommender):
    name = "ncf"
    settings = (*EmbeddingRecommender.settings, "ncf_layers")
    description = "GMF (element-wise product) + MLP over embeddings, fused into one logit (BCE)."
    score_kind = "mlp"
    module: NeuralCF

    def build_module(self, n_users: int, n_items: int) -> NeuralCF:
        return NeuralCF(n_users, n_items, self.config.dim, self.config.layer_sizes())

    def pair_loss(self, positive, negative):
        return bce_loss(positive, negative)

    def user_factors(self) -> np.ndarray:
        return self.module.gmf_user.weight.detach().cpu().numpy()

    def item_factors(self) -> np.ndarray:
        """The GMF path's item embeddings: the part of NCF that is a similarity space."""
        return self.module.gmf_item.weight.detach().cpu().numpy()
