"""Shared machinery of the torch models: batches, scoring, saving, factor access, and
:class:`TorchTraining`, the scratch state of one fit."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys.data.sampling import PositiveSet, popularity_cdf, sample_negatives
from recsys.data.splits import Part
from recsys.errors import TrainingDivergedError
from recsys.models.base import EpochCallback, Recommender
from recsys.models.trainer import torch_threads, train


class EmbeddingRecommender(Recommender):
    """A torch module trained by :func:`recsys.models.trainer.train` on sampled negatives.

    Subclasses set ``build_module`` and ``pair_loss`` (implicit models) or override
    ``epoch_batches`` / ``batch_loss`` (the rating model).
    """

    user_vectors = item_vectors = iterative = True
    default_lens = "cosine"
    settings = ("dim", "epochs", "lr", "negatives", "neg_sampling", "alpha", "weight_decay",
                "batch_size", "patience", "refit", "seed", "threads", "device")
    module: nn.Module

    def build_module(self, n_users: int, n_items: int) -> nn.Module:
        raise NotImplementedError

    def pair_loss(self, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _fit(self, train_part: Part, valid: Part | None, callbacks: Sequence[EpochCallback],
             epochs: int) -> list[dict[str, Any]]:
        cfg = self.config
        self.device = torch.device(cfg.device)
        with torch.random.fork_rng(devices=[]), torch_threads(cfg.threads):
            torch.manual_seed(cfg.seed)
            return train(self, train_part, valid, callbacks, epochs)

    # ------------------------------------------- the contract recsys.models.trainer.train runs
    def start_training(self, train_part: Part) -> TorchTraining:
        """A freshly initialised module and the scratch of a fit on ``train_part``."""
        cfg = self.config
        self.module = self.build_module(self.n_users, self.n_items).to(self.device)
        self.remember_start()
        data = self.training_data(train_part)
        rng = np.random.default_rng(cfg.seed)
        # The fused kernel updates all parameters in one pass: ~5x faster steps on CPU.
        optimizer = torch.optim.Adam(self.module.parameters(), lr=cfg.lr, fused=True)
        return TorchTraining(self, data, rng, optimizer)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return copy.deepcopy(self.module.state_dict())

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    def check_finite(self) -> None:
        for name, tensor in self.module.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise TrainingDivergedError(
                    f"{self.name}: parameter {name} holds NaN/inf after training; lower the "
                    "learning rate or raise weight_decay"
                )

    def training_data(self, train_part: Part) -> Any:
        """What :meth:`epoch_batches` draws from, per fit: the positive pairs, the set that
        rejects a liked item as a negative, and the popularity sampler's CDF (or None)."""
        pos = train_part.positives
        cdf = (popularity_cdf(pos.item_counts(), self.config.alpha)
               if self.config.neg_sampling == "popularity" else None)
        positives = PositiveSet(pos.user_index, pos.item_index, self.n_users, self.n_items)
        return (pos.user_index, pos.item_index), positives, cdf

    def epoch_samples(self, data: Any, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """One epoch's rows from :meth:`training_data` ``data``: (users, positives) shuffled,
        int64 (n,), and their negatives, int64 (n, negatives), drawn at once. Both engines of
        mf-bpr / mf-bce draw them here, so one seed gives both the same rows."""
        (users, items), positives, cdf = data
        order = rng.permutation(len(users))
        users, items = users[order], items[order]
        negatives = sample_negatives(users, self.config.negatives, self.n_items, positives,
                                     rng, cdf)
        return users, items, negatives

    def epoch_batches(self, training: TorchTraining) -> Iterator[tuple]:
        """One shuffled pass: (users, positives, negatives) tensors, negatives drawn at once."""
        arrays = self.epoch_samples(training.data, training.rng)
        users = arrays[0]
        tensors = [torch.from_numpy(a).to(self.device) for a in arrays]
        for start in range(0, len(users), self.config.batch_size):
            yield tuple(t[start : start + self.config.batch_size] for t in tensors)

    def train_step(self, batch: tuple, training: TorchTraining) -> float:
        """One autograd step on ``batch_loss`` with ``training``'s optimiser; the loss."""
        loss = self.batch_loss(*batch)
        training.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        adam_step(training.optimizer)
        return loss.item()

    def batch_loss(self, users, positives, negatives) -> torch.Tensor:
        items = torch.cat([positives[:, None], negatives], dim=1)  # one gather for all
        wants_penalty = self.config.weight_decay > 0
        scores, penalty = self.module.scores_and_penalty(users, items, wants_penalty)
        loss = self.pair_loss(scores[:, 0], scores[:, 1:])
        if self.config.weight_decay:
            loss = loss + self.config.weight_decay * penalty
        return loss

    def score(self, users: np.ndarray) -> np.ndarray:
        with torch.no_grad(), torch_threads(self.config.threads):
            users_t = torch.as_tensor(np.asarray(users, np.int64), device=self.device)
            return self.module.score_all(users_t).float().cpu().numpy()

    def _params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def _load_params(self, params: dict[str, np.ndarray]) -> None:
        self.device = torch.device("cpu")
        self.module = self.build_module(self.n_users, self.n_items)
        self.module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
        self.module.eval()


@dataclass(eq=False)
class TorchTraining:
    """The scratch state of one torch fit, made by :meth:`EmbeddingRecommender.start_training`
    and dropped by the training loop when the fit ends: what :meth:`~EmbeddingRecommender.
    epoch_batches` draws from (``data``), the random generator of shuffles and negatives, the
    Adam optimiser, and step buffers kept between steps (``workspace``: up to ~100 MB at
    ML-25M size, which a finished model need not hold)."""

    model: EmbeddingRecommender
    data: Any
    rng: np.random.Generator | None
    optimizer: Any  # a torch.optim.Optimizer, or anything with its step()
    workspace: dict[Any, Any] = field(default_factory=dict)

    def train_epoch(self, epoch: int) -> float:
        """One shuffled pass of Adam steps over the model's batches; the mean batch loss."""
        model = self.model
        model.module.train()
        loss_sum, n_batches = 0.0, 0
        for batch in model.epoch_batches(self):
            loss = model.train_step(batch, self)
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"{model.name}: loss became {loss} in epoch {epoch}; lower the "
                    f"learning rate (now {model.config.lr:g}) or raise weight_decay"
                )
            loss_sum += loss
            n_batches += 1
        model.module.eval()
        return loss_sum / max(n_batches, 1)

    def buffer(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A ``shape`` view of a tensor kept between steps. A fresh 100 MB tensor per step (the
        (B, K, d) gather at ML-25M size) costs more in page faults than the gather itself."""
        view = self.workspace.get((name, shape))
        if view is None:
            numel = math.prod(shape)
            buffer = self.workspace.get(name)
            if buffer is None or buffer.numel() < numel:
                buffer = self.workspace[name] = torch.empty(numel, dtype=like.dtype,
                                                            device=like.device)
            view = self.workspace[(name, shape)] = buffer[:numel].view(shape)
        return view


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``; for torch's fused Adam on CPU, its kernel called directly.

    ``Optimizer.step`` spends ~0.1 ms a call on hooks, profiler records and regrouping the
    tensors by device, as long as the kernel itself on ML-100K's tables (~8% of the default
    fit). Once the first step has created the state, this passes the same tensors and options
    to the same kernel, so the parameters are bit-identical (``tests/test_bpr_speed_paths.py``).
    Anything else (other optimisers, amsgrad, weight decay, a GPU) takes ``step()``.
    """
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(optimizer, torch.optim.Adam) or len(groups) != 1:
        optimizer.step()
        return
    group = groups[0]
    params = [p for p in group["params"] if p.grad is not None]
    states = [optimizer.state.get(p) for p in params]
    plain = group.get("fused") and not any(
        group.get(k) for k in ("amsgrad", "weight_decay", "maximize", "decoupled_weight_decay",
                               "differentiable", "capturable"))
    if not (plain and params and all(states) and params[0].device.type == "cpu"):
        optimizer.step()  # also the first step, which creates the state
        return
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(
        params, [p.grad for p in params], [s["exp_avg"] for s in states],
        [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"],
        beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False,
        grad_scale=None, found_inf=None)
