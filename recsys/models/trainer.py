"""A generic epoch loop with callbacks, validation, early stopping and divergence checks.

It knows nothing of Streamlit or the CLI: they pass ``on_epoch_end(epoch, stats)`` callbacks
(a callback that returns ``True`` asks training to stop after that epoch). What it needs of a
model is declared by :class:`Trainable`: the model starts a fit by handing the loop an
:class:`EpochRunner`, which holds that fit's scratch state (optimiser, random generator,
sampler tables, step buffers, working factors); the loop runs it and throws it away, so nothing
of a fit's scratch stays on the model.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch

from recsys.evaluation.metrics import evaluate_held_out


class EpochRunner(Protocol):
    """One fit's scratch state, able to run an epoch over it."""

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training data (Adam over batches, an ALS sweep); returns the
        mean loss and raises :class:`~recsys.errors.TrainingDivergedError` on NaN/inf."""
        ...


class Trainable(Protocol):
    """What :func:`train` needs of a model (besides what evaluation reads: ``score`` and, for
    dot-product models, its factors). The iterative models (mf-*, ncf, mf-als) implement it."""

    config: Any  # a TrainConfig: epochs, patience
    monitor: tuple[str, bool]  # the validation metric the best epoch is chosen on, higher?

    def start_training(self, train_part: Any) -> EpochRunner:
        """Fresh parameters and the scratch state of a fit on ``train_part``."""
        ...

    def snapshot(self) -> Any:
        """The parameters as they are, to :meth:`restore` later (the best epoch)."""
        ...

    def restore(self, state: Any) -> None: ...

    def check_finite(self) -> None:
        """Raises TrainingDivergedError when a parameter holds NaN/inf."""
        ...


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily sets torch's CPU thread count (1 is steadiest for small models here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(model: Trainable, train_part: Any, valid: Any = None, callbacks: Sequence[Any] = (),
          epochs: int | None = None) -> list[dict[str, Any]]:
    """Runs up to ``epochs`` (default ``model.config.epochs``) epochs of ``model``; returns
    the per-epoch stats.

    ``model.start_training(train_part)`` gives the :class:`EpochRunner` whose ``train_epoch``
    each epoch runs; it is dropped when training ends. After each epoch the model is evaluated
    on ``valid`` (a :class:`recsys.data.splits.Part`, the training positives ``train_part``
    excluded from its rankings; ``model.monitor`` names the metric and whether higher is
    better); with ``patience`` > 0 training stops when it has not improved for that many
    epochs, and the best epoch's parameters (``snapshot`` / ``restore``) are kept either way.
    """
    config = model.config
    metric, higher_is_better = model.monitor
    has_valid = valid is not None and len(valid.positives) > 0 and len(valid.ratings) > 0
    best_value, best_epoch, best_state = -math.inf, 0, None
    history: list[dict[str, Any]] = []
    runner = model.start_training(train_part)
    start = time.perf_counter()
    for epoch in range(1, (epochs or config.epochs) + 1):
        stats: dict[str, Any] = {"epoch": epoch, "loss": runner.train_epoch(epoch)}
        if has_valid:
            scores = evaluate_held_out(model, valid, train_part.positives, k=10).metrics
            stats.update({f"valid_{k}": v for k, v in scores.items()
                          if k in ("recall@10", "ndcg@10", "rmse")})
            value = scores[metric] if higher_is_better else -scores[metric]
            if value > best_value:
                best_value, best_epoch = value, epoch
                best_state = model.snapshot()
        stats["elapsed"] = time.perf_counter() - start
        stats["best_epoch"] = best_epoch or epoch
        history.append(stats)
        requested_stop = any([bool(cb(epoch, stats)) for cb in callbacks])
        stale = config.patience and has_valid and epoch - best_epoch >= config.patience
        if requested_stop or stale:
            break
    if best_state is not None:
        model.restore(best_state)
    model.check_finite()
    return history
