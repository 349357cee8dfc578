"""The ``recsys`` command line: data, train, evaluate, export, pin (and serving commands)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from recsys.config import MODEL_DEFAULTS, SplitConfig, TrainConfig
from recsys.data import DataUnavailableError, MovieLens, load_movielens, movies_for
from recsys.evaluation import evaluate_model
from recsys.runs import (
    RunError,
    default_runs_dir,
    load_run,
    pin_run,
    pinned_run_name,
    prepare_split,
    train_run,
    unpin_run,
)
from recsys.trainer import TrainingDivergedError

# OSError: a file the user named cannot be read or written (permissions, a full disk).
EXPECTED_ERRORS = (ValueError, RunError, DataUnavailableError, TrainingDivergedError,
                   OSError, KeyError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except EXPECTED_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"recsys {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys",
        description="Train, evaluate and inspect embedding recommenders on MovieLens.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("data", help="acquire and validate MovieLens; print source and counts")
    _add_data_flags(p)
    p.set_defaults(handler=cmd_data)

    p = sub.add_parser("train", help="fit a model, evaluate it on test, save a run directory")
    _add_data_flags(p)
    _add_dataclass_flags(p, SplitConfig)
    _add_dataclass_flags(p, TrainConfig, model_defaults=True)
    p.add_argument("--out", type=Path, help="run directory (default: runs/<model>-<split>-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="recompute a run's test metrics")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--k", type=int, default=10, help="cut-off K (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_data_flags(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("export", help="write a run's embeddings as .npz or for the TF Projector")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", choices=("npz", "projector"), default="npz")
    p.add_argument("--out", type=Path, required=True, help="file (npz) or directory (projector)")
    _add_data_flags(p)
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("pin", help="make a run the app's default model for new visitors")
    p.add_argument("run_dir", type=Path, nargs="?",
                   help="the run to pin; the pin is kept in the folder that holds it")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--show", action="store_true", help="print the pinned run's name")
    action.add_argument("--clear", action="store_true", help="remove the pin")
    p.add_argument("--runs-dir", type=Path,
                   help="folder of runs for --show / --clear (default $RECSYS_RUNS_DIR or ./runs)")
    p.set_defaults(handler=cmd_pin)

    try:
        from recsys import cli_serving  # serving commands live beside the serving core
    except ImportError:
        pass
    else:
        cli_serving.add_commands(sub, _add_data_flags)
    return parser


# ---------------------------------------------------------------------------- commands
def cmd_data(args: argparse.Namespace) -> int:
    ml = _load_data(args)
    events = prepare_split(ml).train  # validates the events on the way
    print(f"source:   {ml.source}")
    print(f"dataset:  {ml.name} (fingerprint {ml.fingerprint()})")
    print(f"ratings:  {len(ml.ratings):,} from {ml.n_users:,} users on {ml.n_items:,} movies "
          f"({len(ml.movies):,} in the catalogue)")
    print(f"users table: {len(ml.users):,} rows; ratings {ml.ratings['rating'].min():g}-"
          f"{ml.ratings['rating'].max():g}")
    del events
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    split_config = _dataclass_from_args(SplitConfig, args)
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name) is not None and f.name != "model"}
    train_config = TrainConfig.for_model(args.model, **given)
    ml = _load_data(args)
    out = args.out or default_runs_dir() / (
        f"{train_config.model}-{split_config.split}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    if out.exists():
        raise RunError(f"{out} already exists: choose another --out or delete it")
    split = prepare_split(ml, split_config)
    print(split.describe(), file=sys.stderr)
    callbacks = [] if args.quiet else [_progress_bar(train_config)]
    run = train_run(ml, split_config, train_config, out, callbacks, split=split)
    for cb in callbacks:
        cb.close()
    m = run.metrics
    line = ", ".join(f"{k} {m[k]:.4f}" for k in ("recall@10", "ndcg@10", "mrr@10", "rmse")
                     if k in m)
    print(f"{train_config.model}: {line} (test; fit {m['fit_seconds']:.2f}s) -> {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    run = load_run(args.run_dir)
    ml = _load_data(args)
    run.check_dataset(ml)
    split = prepare_split(ml, run.split_config)
    result = evaluate_model(run.model, split, k=args.k, part="test")
    payload = {**result.to_dict(), "model": run.train_config.model, "run": str(args.run_dir)}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(f"{run.train_config.model} on {split.config.describe()}; "
              f"{result.protocol['users_evaluated']} users, K={args.k}")
        for name, value in result.metrics.items():
            print(f"  {name:<14} {value:.4f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    run = load_run(args.run_dir)
    ml = _load_data(args)
    run.check_dataset(ml)
    items = run.model.item_factors()
    if items is None:
        raise ValueError(f"{run.train_config.model} has no item embeddings to export; "
                         "export an mf-*, ncf, svd or ease run")
    movies = movies_for(ml, run.item_ids)
    if args.format == "npz":
        split = prepare_split(ml, run.split_config)
        arrays: dict[str, Any] = {
            "item_factors": items,
            "user_ids": run.user_ids,
            "item_ids": run.item_ids,
            "titles": movies["title"].to_numpy(str),
            "train_pairs": split.train_pos.raw_pairs(),
            "test_pairs": split.test_pos.raw_pairs(),
        }
        users = run.model.user_factors()
        if users is not None:
            arrays["user_factors"] = users
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.out, **arrays)
        print(f"wrote {args.out} ({', '.join(arrays)})")
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        np.savetxt(args.out / "vectors.tsv", items, delimiter="\t", fmt="%.6g")
        meta = movies[["title", "genres", "year", "popularity"]].copy()
        meta["title"] = meta["title"].str.replace("\t", " ")
        meta.to_csv(args.out / "metadata.tsv", sep="\t", index=False)
        print(f"wrote {args.out}/vectors.tsv and metadata.tsv ({len(items)} movies): load them "
              "in the TensorFlow Embedding Projector")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    """Pins, shows or clears the app's default run; never loads MovieLens."""
    if args.show or args.clear:
        if args.run_dir is not None:
            raise ValueError("give either a run folder to pin or --show / --clear, not both")
        runs_dir = args.runs_dir or default_runs_dir()
        if args.clear:
            unpin_run(runs_dir)
            print(f"no run is pinned in {runs_dir} now")
        else:
            print(pinned_run_name(runs_dir) or "no run is pinned")
        return 0
    if args.run_dir is None:
        raise ValueError("give the run folder to pin, e.g. `recsys pin runs/mf-bpr-...`, "
                         "or --show / --clear")
    if args.runs_dir is not None:
        raise ValueError("--runs-dir is for --show / --clear; a pinned run's folder is the one "
                         "that holds it")
    run_dir = Path(os.path.normpath(args.run_dir))
    if run_dir.name in ("", ".."):  # "." or "runs/x/..": name the folder itself
        run_dir = Path(os.path.abspath(args.run_dir))
    pin_run(run_dir.parent, run_dir.name)
    print(f"pinned {run_dir.name}: the app's default model for new visitors (in {run_dir.parent})")
    return 0


# ---------------------------------------------------------------------------- helpers
def _add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path,
                   help="folder with a GroupLens MovieLens layout (else $RECSYS_DATA_DIR, cache, "
                        "download, recbole wheel)")
    p.add_argument("--no-download", action="store_true", help="never touch the network")


def _load_data(args: argparse.Namespace) -> MovieLens:
    ml = load_movielens(args.data_dir, download=not args.no_download, progress=True)
    print(f"data: {ml.name} from {ml.source}", file=sys.stderr)
    return ml


def _add_dataclass_flags(p: argparse.ArgumentParser, cls: type,
                         model_defaults: bool = False) -> None:
    """One flag per field. With ``model_defaults`` unset flags stay None (except --model), so
    the chosen model's own defaults apply (``TrainConfig.for_model``)."""
    group = p.add_argument_group(cls.__name__)
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default)
        default = None if model_defaults and f.name != "model" else f.default
        own = [f"{m}: {d[f.name]}" for m, d in MODEL_DEFAULTS.items() if f.name in d]
        note = f"; {', '.join(own)}" if model_defaults and own else ""
        help_text = f"{f.metadata.get('help', '')} (default {f.default}{note})"
        if kind is bool:
            group.add_argument(flag, dest=f.name, default=default, help=help_text,
                               action=argparse.BooleanOptionalAction)
        else:
            group.add_argument(flag, dest=f.name, type=kind, default=default,
                               choices=f.metadata.get("choices"), help=help_text)


def _dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


class _progress_bar:
    """tqdm bar advanced by the trainer's epoch callback."""

    def __init__(self, config: TrainConfig) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=config.epochs, desc=config.model, unit="epoch", file=sys.stderr)

    def __call__(self, epoch: int, stats: dict[str, Any]) -> None:
        if stats.get("phase") == "refit":  # a second bar for the refit on train + validation
            if epoch == 1:
                self.bar.close()
                from tqdm import tqdm

                self.bar = tqdm(total=stats["refit_epochs"], desc="refit on train+valid",
                                unit="epoch", file=sys.stderr)
            self.bar.set_postfix({"loss": f"{stats['loss']:.4f}"})
            self.bar.update(1)
            return
        shown = {"loss": f"{stats['loss']:.4f}"}
        for key in ("valid_recall@10", "valid_rmse"):
            if key in stats:
                shown[key.replace("valid_", "val_")] = f"{stats[key]:.4f}"
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


if __name__ == "__main__":
    sys.exit(main())
