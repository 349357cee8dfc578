"""Why does tuned mf-bpr stop where it does? Knobs the config does not expose, on validation.

Starting from the tuned mf-bpr config of each protocol (``bench/tuned.json``), each experiment
changes one thing: the init scale, an L2 penalty on the (otherwise unregularised) item biases,
no item bias, more negatives, the popularity-sampling exponent, longer training, more patience.
Every experiment is fitted on train only with several seeds (mean and spread of validation
Recall@10, so that differences can be told from seed noise); the best ones are then scored on
test through the default protocol (refit on train + validation).

    python -m bench.investigate                    # P1 and P2, 3 seeds (~15 min on 2 cores)
    python -m bench.investigate --small            # smoke run

Writes ``bench/INVESTIGATION.md`` (``--small``: under ``bench/out/small``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.common import (
    BENCH_DIR,
    PROTOCOLS,
    TUNED_PATH,
    command_line,
    machine,
    machine_lines,
    markdown_table,
    protocol_names,
    read_json,
    timed,
    write_section,
)
from recsys.data.loading import load_movielens
from recsys.evaluation.metrics import evaluate_model
from recsys.models.config import TrainConfig
from recsys.models.embedding import TorchTraining
from recsys.models.mf import MFBPR
from recsys.models.modules import MatrixFactorization
from recsys.storage.runs import prepare_split


class VariantBPR(MFBPR):
    """mf-bpr with the knobs under investigation (defaults reproduce MFBPR exactly)."""

    init_std: float = 0.1
    bias_l2: float = 0.0  # dense L2 on the item biases, applied every step
    item_bias: bool = True

    def build_module(self, n_users: int, n_items: int) -> MatrixFactorization:
        module = super().build_module(n_users, n_items)
        if self.init_std != 0.1:
            nn.init.normal_(module.user.weight, std=self.init_std)
            nn.init.normal_(module.item.weight, std=self.init_std)
        return module

    def train_step(self, batch: tuple, training: TorchTraining) -> float:
        if self.bias_l2 or not self.item_bias:
            training = replace(training, optimizer=_BiasControl(
                training.optimizer, self.module.item_bias.weight, self.bias_l2, self.item_bias))
        return super().train_step(batch, training)


class _BiasControl:
    """Wraps the optimiser: adds ``l2 * b`` to the item-bias gradient, or zeroes it (no bias)."""

    def __init__(self, optimizer, bias: torch.Tensor, l2: float, keep: bool) -> None:
        self.optimizer, self.bias, self.l2, self.keep = optimizer, bias, l2, keep

    def step(self) -> None:
        if not self.keep:
            self.bias.grad.zero_()
        elif self.l2:
            self.bias.grad.add_(self.bias.detach(), alpha=self.l2)
        self.optimizer.step()


@dataclass(frozen=True)
class Experiment:
    name: str
    config: dict[str, Any]  # TrainConfig overrides on top of the tuned config
    attrs: dict[str, Any]  # VariantBPR class attributes


EXPERIMENTS = [
    Experiment("tuned (baseline)", {}, {}),
    Experiment("init std 0.01", {}, {"init_std": 0.01}),
    Experiment("init std 0.03", {}, {"init_std": 0.03}),
    Experiment("init std 0.3", {}, {"init_std": 0.3}),
    Experiment("item-bias L2 1e-3 (dense)", {}, {"bias_l2": 1e-3}),
    Experiment("item-bias L2 1e-2 (dense)", {}, {"bias_l2": 1e-2}),
    Experiment("no item bias", {}, {"item_bias": False}),
    Experiment("negatives 16", {"negatives": 16}, {}),
    Experiment("popularity alpha 0.5", {"neg_sampling": "popularity", "alpha": 0.5}, {}),
    Experiment("popularity alpha 1.0", {"neg_sampling": "popularity", "alpha": 1.0}, {}),
    Experiment("patience 10", {"patience": 10}, {}),
    Experiment("lr / 2, 150 epochs, patience 10",
               {"lr": "half", "epochs": 150, "patience": 10}, {}),
    Experiment("dim 128", {"dim": 128}, {}),
    Experiment("weight decay x3", {"weight_decay": "triple"}, {}),
    Experiment("patience 10 + dim 128", {"patience": 10, "dim": 128}, {}),
    Experiment("patience 10 + init std 0.3", {"patience": 10}, {"init_std": 0.3}),
]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tuned = read_json(TUNED_PATH, {})
    experiments = EXPERIMENTS[:3] if args.small else EXPERIMENTS
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        experiments = [EXPERIMENTS[0]] + [e for e in EXPERIMENTS[1:] if e.name in wanted]
    seeds = [42] if args.small else list(range(42, 42 + args.seeds))
    ml = load_movielens(download=not args.offline)
    sections = []
    for protocol in protocol_names(args.protocols):
        base = _base_config(tuned, protocol, args.small)
        split = prepare_split(ml, PROTOCOLS[protocol])
        print(f"== {protocol}: base {base}", file=sys.stderr, flush=True)
        rows = [run_experiment(e, base, split, seeds, protocol) for e in experiments]
        ranked = sorted(rows, key=lambda r: -r["valid R@10 mean"])
        baseline = next(r for r in rows if r["experiment"] == EXPERIMENTS[0].name)
        for row in [*ranked[: args.test_top], baseline]:
            if "test R@10 mean" not in row:
                test_experiment(row, base, split, seeds)
        sections.append((protocol, base, rows))
    write(sections, seeds, args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.investigate",
                                description=__doc__.split("\n")[0])
    p.add_argument("--protocols", default="P2,P1")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--test-top", type=int, default=4,
                   help="also score this many best experiments (+ baseline) on test")
    p.add_argument("--only", default="", help="comma-separated experiment names (plus the "
                   "baseline); written as a follow-up section of INVESTIGATION.md")
    p.add_argument("--small", action="store_true")
    p.add_argument("--offline", action="store_true")
    return p


def _base_config(tuned: dict, protocol: str, small: bool) -> TrainConfig:
    params = tuned.get(protocol, {}).get("models", {}).get("mf-bpr", {}).get("params", {})
    config = TrainConfig(model="mf-bpr", threads=1, refit=False, **params)
    return replace(config, epochs=3, patience=0) if small else config


def _config(base: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    resolved = dict(overrides)
    if resolved.get("lr") == "half":
        resolved["lr"] = base.lr / 2
    if resolved.get("weight_decay") == "triple":
        resolved["weight_decay"] = base.weight_decay * 3 or 0.003
    if "epochs" in resolved and base.epochs < 10:  # --small
        resolved["epochs"] = base.epochs
    return replace(base, **resolved)


def _model(experiment: Experiment, config: TrainConfig) -> Callable[[], VariantBPR]:
    cls = type("Variant", (VariantBPR,), dict(experiment.attrs))
    return lambda: cls(config)


def run_experiment(e: Experiment, base, split, seeds, protocol) -> dict[str, Any]:
    recalls, ndcgs, epochs, seconds = [], [], [], []
    config = _config(base, e.config)
    for seed in seeds:
        build = _model(e, replace(config, seed=seed))
        fitted, s = timed(lambda b=build: b().fit(*split.fit_parts()))
        valid = evaluate_model(fitted, split, part="valid").metrics
        recalls.append(valid["recall@10"])
        ndcgs.append(valid["ndcg@10"])
        epochs.append(fitted.history[-1]["best_epoch"])
        seconds.append(s)
    row = {"experiment": e.name, "valid R@10 mean": float(np.mean(recalls)),
           "valid R@10 std": float(np.std(recalls)), "valid N@10 mean": float(np.mean(ndcgs)),
           "best epochs": "/".join(str(x) for x in epochs), "fit s": float(np.mean(seconds)),
           "_experiment": e}
    print(f"   [{protocol}] {e.name:>34}: valid recall@10 {row['valid R@10 mean']:.4f} "
          f"± {row['valid R@10 std']:.4f}  epochs {row['best epochs']}", file=sys.stderr,
          flush=True)
    return row


def test_experiment(row: dict[str, Any], base, split, seeds) -> None:
    """Default protocol (refit on train + valid for the best epoch count), test metrics."""
    e = row["_experiment"]
    config = replace(_config(base, e.config), refit=True)
    recalls, ndcgs = [], []
    for seed in seeds:
        fitted = _model(e, replace(config, seed=seed))().fit(*split.fit_parts())
        test = evaluate_model(fitted, split, part="test").metrics
        recalls.append(test["recall@10"])
        ndcgs.append(test["ndcg@10"])
    row["test R@10 mean"] = float(np.mean(recalls))
    row["test R@10 std"] = float(np.std(recalls))
    row["test N@10 mean"] = float(np.mean(ndcgs))
    print(f"      test recall@10 {row['test R@10 mean']:.4f} ± {row['test R@10 std']:.4f}",
          file=sys.stderr, flush=True)


def write(sections, seeds, args) -> None:
    out = BENCH_DIR / "out" / "small" if args.small else BENCH_DIR
    cols = ["experiment", "valid R@10 mean", "valid R@10 std", "valid N@10 mean",
            "best epochs", "test R@10 mean", "test R@10 std", "test N@10 mean", "fit s"]
    lines = [
        "# mf-bpr investigation: knobs beyond TrainConfig",
        "",
        "Generated by `bench/investigate.py`. Each experiment changes one thing relative to the "
        f"tuned mf-bpr config of the protocol; seeds {seeds} (mean and std over seeds). "
        "Validation columns: fit on train only; test columns (best experiments only): default "
        "protocol, refit on train + validation for the best epoch count.",
        "",
        *machine_lines(machine()),
        f"- command: `{command_line()}`",
        "",
    ]
    for protocol, base, rows in sections:
        ranked = sorted(rows, key=lambda r: -r["valid R@10 mean"])
        lines += [f"## {protocol}: {PROTOCOLS[protocol].describe()}", "",
                  f"Base: lr={base.lr:g}, weight_decay={base.weight_decay:g}, dim={base.dim}, "
                  f"negatives={base.negatives}, {base.neg_sampling}, batch={base.batch_size}, "
                  f"epochs<={base.epochs}, patience={base.patience}", "",
                  markdown_table(ranked, cols), ""]
    out.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if args.only:  # a follow-up: its own section after the main run's tables
        (BENCH_DIR / "out" / "INVESTIGATION-only.md").write_text(text)
        write_section(out / "INVESTIGATION.md", "follow-up",
                      text.replace("# mf-bpr investigation", "# Follow-up", 1))
    else:
        (out / "INVESTIGATION.md").write_text(text)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
