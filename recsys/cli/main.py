"""The ``recsys`` command line: data, train, evaluate, export, pin, prepare-class (and serving
commands).

Start-up is kept light: only :mod:`recsys.models.config` (plain dataclasses) is imported before the
arguments are parsed; torch, FAISS, pandas and the modules that use them are imported by the
command that needs them, so ``--help`` and usage errors answer at once
(``bench/CLI_STARTUP.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from recsys.cli.common import (
    check_k,
    check_new_output,
    check_writable_folder,
    load_movielens,
    load_run,
    os_message,
    print_source,
    write_new_file,
)
from recsys.data.protocol import SplitConfig
from recsys.errors import BadInputError, RecsysError
from recsys.models.config import DEFAULT_MODEL, MODEL_DEFAULTS, TrainConfig, resolve_device
from recsys.settings import field_specs

if TYPE_CHECKING:
    from recsys.data.loading import MovieLens

EXPORTS_DIR = Path("exports")  # export's default folder (gitignored), relative to where it runs
DATA_SOURCES = (
    "MovieLens 100K is read from the first source that works: --data-dir or $RECSYS_DATA_DIR; "
    "an unzipped ml-100k/ folder in the cache ($RECSYS_CACHE_DIR, default "
    "~/.cache/movielens-embeddings/), which only a successful GroupLens download (or you) puts "
    "there; the recbole==1.2.1 wheel kept in the cache's wheels/ folder; the GroupLens "
    "download; the same wheel fetched from PyPI (then kept in wheels/). Every command that "
    "loads data names its source on stderr."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except RecsysError as err:  # bad values, damaged runs, no data, diverged training
        message = str(err)
    except OSError as err:  # a file the user named cannot be read or written
        message = os_message(err)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"recsys {args.command}: error: {message}", file=sys.stderr)
    return 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors that point at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="recsys",
        description="Train, evaluate and inspect embedding recommenders on MovieLens.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("data", help="acquire and validate MovieLens; print source and counts",
                       description=DATA_SOURCES)
    _add_data_flags(p)
    p.set_defaults(handler=cmd_data)

    p = sub.add_parser("train", help="fit a model, evaluate it on test, save a run directory")
    _add_data_flags(p)
    _add_dataclass_flags(p, SplitConfig)
    _add_dataclass_flags(p, TrainConfig, model_defaults=True)
    p.add_argument("--out", type=Path,
                   help="new run directory (default: runs/<model>-<split>-<time>-<random>)")
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
    p.add_argument("--out", type=Path,
                   help="file (npz; .npz is added if missing) or directory (projector); default "
                        f"{EXPORTS_DIR}/<run name>.npz or {EXPORTS_DIR}/<run name>-projector/")
    p.add_argument("--force", action="store_true", help="replace existing output files")
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

    p = sub.add_parser(
        "prepare-class",
        help="train, pin and map every run the app's lessons need (skips what is there)",
        description="Trains on the default protocol the default model (pinned when no run is), "
                    "an mf-bpr run for the training lessons and every baseline, then computes "
                    "their maps: what every tour step and Train lesson shows. Runs already in "
                    "the folder are kept; about a minute on 2 cores the first time.")
    p.add_argument("--runs-dir", type=Path,
                   help="folder of runs (default $RECSYS_RUNS_DIR or ./runs)")
    maps = p.add_mutually_exclusive_group()
    maps.add_argument("--no-maps", action="store_true", help="train and pin only")
    maps.add_argument("--maps-only", action="store_true",
                      help="compute the maps of the class runs already trained")
    _add_data_flags(p)
    p.set_defaults(handler=cmd_prepare_class)

    from recsys.cli import serving as cli_serving  # serving commands live beside the serving core

    cli_serving.add_commands(sub, _add_data_flags)
    from recsys.cli import compare as cli_compare  # A/B and interleaving of two runs

    cli_compare.add_commands(sub, _add_data_flags)
    return parser


# ---------------------------------------------------------------------------- commands
def cmd_data(args: argparse.Namespace) -> int:
    from recsys.storage.runs import prepare_split

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
    split_config, train_config = _train_configs(args)  # all checked before any data is read
    from recsys.errors import RunError
    from recsys.jobs.manager import new_run_dir
    from recsys.storage.runs import default_runs_dir, prepare_split, train_run

    out = args.out or new_run_dir(default_runs_dir(), f"{train_config.model}-{split_config.split}")
    if os.path.lexists(out):
        raise RunError(f"--out {out} already exists: choose another --out or delete it")
    check_writable_folder(out, "--out")
    ml = _load_data(args)
    split = prepare_split(ml, split_config)
    print(split.describe(), file=sys.stderr)
    callbacks = [] if args.quiet else [_ProgressBar(train_config)]
    run = train_run(ml, split_config, train_config, out, callbacks, split=split)
    for cb in callbacks:
        cb.close()
    m = run.metrics
    line = ", ".join(f"{k} {m[k]:.4f}" for k in ("recall@10", "ndcg@10", "mrr@10", "rmse")
                     if k in m)
    print(f"{train_config.model}: {line} (test; fit {m['fit_seconds']:.2f}s) -> {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    check_k(args.k)
    from recsys.evaluation.metrics import evaluate_model
    from recsys.storage.runs import prepare_split, to_json

    run = load_run(args.run_dir)
    k = check_k(args.k, len(run.item_ids), "movies")
    ml = _load_data(args)
    run.check_dataset(ml)
    split = prepare_split(ml, run.split_config)
    result = evaluate_model(run.model, split, k=k, part="test")
    payload = {**result.to_dict(), "model": run.train_config.model, "run": str(args.run_dir)}
    if args.json:
        print(to_json(payload))
    else:
        print(f"{run.train_config.model} on {split.config.describe()}; "
              f"{result.protocol['users_evaluated']} users, K={k}")
        for name, value in result.metrics.items():
            print(f"  {name:<14} {value:.4f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out = args.out or EXPORTS_DIR / (_run_name(args.run_dir).name
                                     + ("-projector" if args.format == "projector" else ""))
    if args.format == "npz":
        if not out.name.endswith(".npz"):
            out = out.with_name(out.name + ".npz")  # what np.savez would name it anyway
        check_new_output(out, args.force)
    else:
        for name in ("vectors.tsv", "metadata.tsv"):
            check_new_output(out / name, args.force)
    import numpy as np

    from recsys.storage.export import npz_arrays, projector_tables

    run = load_run(args.run_dir)
    ml = _load_data(args)
    run.check_dataset(ml)
    if args.format == "npz":
        arrays = npz_arrays(run, ml)
        write_new_file(out, lambda f: np.savez(f, **arrays), args.force)
        print(f"wrote {out} ({', '.join(arrays)}); its `meta` says how to recompute the "
              "reported metrics from these arrays")
    else:
        items, meta = projector_tables(run, ml)
        write_new_file(out / "vectors.tsv",
                       lambda f: np.savetxt(f, items, delimiter="\t", fmt="%.6g"), args.force)
        write_new_file(out / "metadata.tsv",
                       lambda f: f.write(meta.to_csv(sep="\t", index=False).encode()), args.force)
        print(f"wrote {out}/vectors.tsv (the movie vectors of {run.train_config.model}, one row "
              f"per movie) and metadata.tsv ({len(items)} movies): load them in the TensorFlow "
              "Embedding Projector")
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    """Pins, shows or clears the app's default run; never loads MovieLens."""
    from recsys.storage.runs import default_runs_dir, pin_run, pinned_run_name, unpin_run

    if args.show or args.clear:
        if args.run_dir is not None:
            raise BadInputError("give either a run folder to pin or --show / --clear, not both")
        runs_dir = args.runs_dir or default_runs_dir()
        if args.clear:
            unpin_run(runs_dir)
            print(f"no run is pinned in {runs_dir} now")
        else:
            print(pinned_run_name(runs_dir) or "no run is pinned")
        return 0
    if args.run_dir is None:
        raise BadInputError("give the run folder to pin, e.g. `recsys pin runs/mf-bpr-...`, "
                         "or --show / --clear")
    if args.runs_dir is not None:
        raise BadInputError("--runs-dir is for --show / --clear; a pinned run's folder is the one "
                         "that holds it")
    run_dir = _run_name(args.run_dir)
    pin_run(run_dir.parent, run_dir.name)
    print(f"pinned {run_dir.name}: the app's default model for new visitors (in {run_dir.parent})")
    return 0


def cmd_prepare_class(args: argparse.Namespace) -> int:
    """Prepares the class set (:mod:`recsys.jobs.class_set`), one line per step."""
    from recsys.jobs.class_set import prepare_class
    from recsys.storage.runs import default_runs_dir

    runs_dir = args.runs_dir or default_runs_dir()
    check_writable_folder(runs_dir / "default", "--runs-dir")
    ml = _load_data(args)
    start = time.perf_counter()

    def report(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%} {time.perf_counter() - start:5.1f} s] {message}", flush=True)

    status = prepare_class(ml, runs_dir, report, maps=not args.no_maps,
                           train=not args.maps_only)
    for entry in status.missing:
        print(f"not trained: {entry.folder} ({entry.model})", file=sys.stderr)
    return 0 if status.complete else 1


# ---------------------------------------------------------------------------- helpers
def _run_name(run_dir: Path) -> Path:
    """``run_dir`` normalised so that its ``.name`` is the run's folder name, also for "." or
    "runs/x/.."."""
    path = Path(os.path.normpath(run_dir))
    return Path(os.path.abspath(run_dir)) if path.name in ("", "..") else path


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path,
                   help="folder with a GroupLens MovieLens layout (else $RECSYS_DATA_DIR, the "
                        "cache, the GroupLens download, the recbole wheel: see `recsys data "
                        "--help`)")
    p.add_argument("--no-download", action="store_true", help="never touch the network")


def _load_data(args: argparse.Namespace) -> MovieLens:
    ml = load_movielens(args.data_dir, download=not args.no_download, progress=True)
    print_source(ml)
    return ml


def _train_configs(args: argparse.Namespace) -> tuple[SplitConfig, TrainConfig]:
    """The split and train configs of ``recsys train``, every value checked (errors name the
    flag), and the device known to exist on this machine."""
    try:
        split_config = _dataclass_from_args(SplitConfig, args)
        given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if getattr(args, f.name) is not None and f.name != "model"}
        train_config = TrainConfig.for_model(args.model, **given)
        resolve_device(train_config.device)
    except ValueError as err:
        raise BadInputError(_name_flags(str(err))) from err
    return split_config, train_config


def _name_flags(message: str) -> str:
    """A config message in CLI words: a leading field name becomes its flag."""
    for f in (*fields(SplitConfig), *fields(TrainConfig)):
        for prefix in (f"{f.name} ", f"unknown {f.name} "):
            if message.startswith(prefix):
                flag = "--" + f.name.replace("_", "-")
                return message.replace(f.name, flag, 1)
    return message


def _add_dataclass_flags(p: argparse.ArgumentParser, cls: type,
                         model_defaults: bool = False) -> None:
    """One flag per field, typed and documented by :func:`recsys.settings.field_specs` (as the
    app's form). With ``model_defaults`` unset flags stay None (except --model), so the chosen
    model's own defaults apply (``TrainConfig.for_model``)."""
    group = p.add_argument_group(cls.__name__)
    for spec in field_specs(cls):
        flag = "--" + spec.name.replace("_", "-")
        default = None if model_defaults and spec.name != "model" else spec.default
        if spec.name == "model":
            default = DEFAULT_MODEL
        own = [f"{m}: {d[spec.name]}" for m, d in MODEL_DEFAULTS.items() if spec.name in d]
        note = f"; {', '.join(own)}" if model_defaults and own else ""
        shown = default if spec.name == "model" else spec.default
        help_text = f"{spec.help} (default {shown}{note})"
        if spec.kind is bool:
            group.add_argument(flag, dest=spec.name, default=default, help=help_text,
                               action=argparse.BooleanOptionalAction)
        else:
            group.add_argument(flag, dest=spec.name, type=spec.kind, default=default,
                               choices=spec.choices, help=help_text)


def _dataclass_from_args(cls: type, args: argparse.Namespace) -> Any:
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


class _ProgressBar:
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
