"""Training losses: tiny pure functions of scores, one signature per kind (a model class
picks its loss in ``pair_loss`` / ``batch_loss``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Bayesian Personalised Ranking: -log sigmoid(s(u,i) - s(u,j)).

    ``positive`` has shape (B,), ``negative`` (B, n_negatives); every pair counts once.
    """
    return -F.logsigmoid(positive[:, None] - negative).mean()


def bce_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits: positives labelled 1, sampled negatives 0.

    Averaged over all B * (1 + n_negatives) examples, so more negatives weigh more.
    """
    logits = torch.cat([positive[:, None], negative], dim=1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    return F.binary_cross_entropy_with_logits(logits, labels)


def mse_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of predicted ratings."""
    return F.mse_loss(predicted, target)

