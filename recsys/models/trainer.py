"""A generic epoch loop with callbacks, validation, early stopping and divergence checks.

It knows nothing of Streamlit or the CLI: they pass ``on_epoch_end(epoch, stats)`` callbacks
(a callback that returns ``True`` asks training to stop after that epoch).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from recsys.evaluation.metrics import evaluate_held_out


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Temporarily sets torch's CPU thread count (1 is steadiest for small models here)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(model: Any, train_part: Any, valid: Any = None, callbacks: Sequence[Any] = (),
          epochs: int | None = None) -> list[dict[str, Any]]:
    """Runs up to ``epochs`` (default ``model.config.epochs``) epochs of ``model``; returns
    the per-epoch stats.

    The model supplies ``train_epoch(epoch) -> float`` (one pass: Adam over batches for the
    torch models, one sweep for ALS; it returns the mean loss and raises
    :class:`TrainingDivergedError` on NaN/inf), ``snapshot()`` / ``restore(state)`` of its
    parameters and ``check_finite()``. After each epoch the model is evaluated on ``valid``
    (a :class:`recsys.data.splits.Part`, the training positives ``train_part`` excluded from its
    rankings; ``model.monitor`` names the metric and whether higher is better); with
    ``patience`` > 0 training stops when it has not improved for that many epochs, and the best
    epoch's parameters are restored either way.
    """
    config = model.config
    metric, higher_is_better = model.monitor
    has_valid = valid is not None and len(valid.positives) > 0 and len(valid.ratings) > 0
    best_value, best_epoch, best_state = -math.inf, 0, None
    history: list[dict[str, Any]] = []
    start = time.perf_counter()
    for epoch in range(1, (epochs or config.epochs) + 1):
        stats: dict[str, Any] = {"epoch": epoch, "loss": model.train_epoch(epoch)}
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
