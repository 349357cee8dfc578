"""Quality benchmark on MovieLens 100K: every registered model, default and tuned, plus
references (the textbook BPR-MF loop and, if importable, the ``implicit`` library's ALS / BPR).

Each row trains once through the default protocol (early stopping on validation, then refit on
train + validation; references train on train + validation directly) and reports test
Recall / Precision / NDCG / MRR / coverage @10, fit seconds and the seconds to rank all users.

References get two rows each: their library / tutorial settings (``reference``) and the best of
a small grid chosen on the VALIDATION split (``tuned``: every candidate fits on the train
positives only and is scored by validation Recall@10 with train positives masked, like
``bench.tune``; the winner is refitted on train + validation and scored once on test).
Grids: implicit ALS regularization x factors (:data:`ALS_GRID`), implicit BPR learning rate x
regularization x iterations (:data:`BPR_GRID`), textbook BPR lr in :data:`TEXTBOOK_LRS`.

    python -m bench.quality                   # P1 and P2, writes the "quality" part of RESULTS.md
    python -m bench.quality --small           # < 60 s smoke run, prints the table only
    PYTHONPATH=bench/out/pydeps python -m bench.quality   # with implicit installed out of tree

Tuned settings come from ``bench/tuned.json`` (written by ``bench.tune``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    BENCH_DIR,
    EPOCH_MODELS,
    PROTOCOLS,
    TUNED_PATH,
    command_line,
    machine,
    machine_lines,
    markdown_table,
    protocol_names,
    read_json,
    timed,
    write_json,
    write_section,
)
from bench.textbook import TextbookBPR
from bench.tune import TUTORIAL_ENGINE
from recsys.data.loading import load_movielens
from recsys.evaluation.metrics import evaluate_model, top_k_items
from recsys.models import MODELS, create_model
from recsys.models.config import TrainConfig
from recsys.storage.runs import prepare_split

METRICS = ("recall@10", "precision@10", "ndcg@10", "mrr@10", "coverage@10")
COLUMNS = ("protocol", "model", "variant", *METRICS, "fit s", "score-all s", "settings")
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
REFERENCE_COLUMNS = ("protocol", "reference", "candidate", "valid recall@10", "valid ndcg@10",
                     "fit s", "chosen")
# Reference grids, searched on validation (the issue: "tune the references fairly too").
ALS_GRID = [{"factors": f, "regularization": r, "iterations": 15}
            for f in (64, 128) for r in (0.1, 1.0, 3.0, 10.0, 30.0)]
BPR_GRID = [{"factors": 64, "learning_rate": lr, "regularization": r, "iterations": it}
            for lr in (0.01, 0.05) for r in (0.001, 0.01) for it in (100, 300)]
TEXTBOOK_LRS = (1e-3, 5e-3)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.small and args.protocols == "P1,P2":
        args.protocols = "P2"
    models = [m for m in args.models.split(",") if m] if args.models else list(MODELS)
    ml = load_movielens(download=not args.offline)
    tuned = read_json(Path(args.tuned), {})
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    trials: list[dict[str, Any]] = []
    if not args.small:
        warm_up(ml, args.threads)
    for protocol in protocol_names(args.protocols):
        rows += protocol_rows(ml, protocol, models, tuned, args, notes, trials)
    table = markdown_table(rows, COLUMNS)
    trials_md = markdown_table(trials, REFERENCE_COLUMNS) if trials else ""
    print(table)
    if trials_md:
        print("", trials_md, sep="\n")
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    if args.results:
        write_section(Path(args.results), "quality", report(table, trials_md, notes, args))
        write_json(json_path(args.results, "quality"),
                   {"command": command_line(), "small": args.small, "rows": rows,
                    "reference_trials": trials})
        print(f"wrote the quality section of {args.results}")
    return 0


def json_path(results: str | Path, name: str) -> Path:
    """Where a script keeps the raw numbers behind its RESULTS.md section (read by
    ``bench.summary``): ``out/<name>.json`` beside the markdown file."""
    return Path(results).resolve().parent / "out" / f"{name}.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    p.add_argument("--protocols", default="P1,P2", help="P1 (random), P2 (temporal)")
    p.add_argument("--models", default="", help="comma-separated subset of the registry")
    p.add_argument("--tuned", default=str(TUNED_PATH), help="tuned configs from bench.tune")
    p.add_argument("--threads", type=int, default=1,
                   help="torch / BLAS threads for every row (1 is steadiest on this machine)")
    p.add_argument("--small", action="store_true",
                   help="P2 only, 2 epochs per torch model, 1 textbook epoch (< 60 s)")
    p.add_argument("--no-references", action="store_true", help="skip textbook and implicit")
    p.add_argument("--results", default=None,
                   help=f"markdown file to write the section into (full runs: {RESULTS_PATH})")
    p.add_argument("--offline", action="store_true", help="never download MovieLens")
    return p


def protocol_rows(ml, protocol: str, models: list[str], tuned: dict, args, notes,
                  trials: list[dict]) -> list[dict]:
    split = prepare_split(ml, PROTOCOLS[protocol])
    print(f"== {protocol}: {split.describe()}", file=sys.stderr, flush=True)
    chosen = tuned.get(protocol, {}).get("models", {})
    rows = []
    for model in models:
        configs = [("default", TrainConfig.for_model(model))]
        if chosen.get(model, {}).get("params"):
            # tuned on the torch engine's knobs (bench/tune.py): fitted with that engine
            configs.append(("tuned", TrainConfig(model=model, **{**TUTORIAL_ENGINE,
                                                                  **chosen[model]["params"]})))
        for variant, config in configs:
            config = replace(config, threads=args.threads)
            if args.small and model in EPOCH_MODELS:
                config = replace(config, epochs=min(config.epochs, 2))
            rows.append(measure(protocol, model, variant, lambda c=config: create_model(c),
                                split, settings(config, variant)))
    if not args.no_references:
        epochs = 1 if args.small else 20
        reference = measure(protocol, "textbook-bpr", "reference",
                            lambda: TextbookBPR(epochs=epochs, threads=args.threads), split,
                            f"bench/textbook.py, epochs={epochs}, lr=0.001 (tutorial)")
        rows.append(reference)
        lrs = TEXTBOOK_LRS[:1] if args.small else TEXTBOOK_LRS
        rows.append(tuned_reference(
            protocol, "textbook-bpr", split, [{"lr": lr} for lr in lrs], {"lr": 1e-3},
            reference, lambda p: TextbookBPR(epochs=epochs, threads=args.threads, **p),
            lambda p: f"bench/textbook.py, epochs={epochs}, lr={p['lr']:g}", trials))
        rows += implicit_rows(protocol, split, args, notes, trials)
    return rows


class TrainOnly:
    """A view of a split whose ``seen_at_test`` is the train positives only: a reference
    fitted through it has not seen the validation positives it is then scored on."""

    def __init__(self, split) -> None:
        self.split = split

    @property
    def seen_at_test(self):
        return self.split.train_pos


def tuned_reference(protocol: str, name: str, split, grid: list[dict], default: dict,
                    reference_row: dict | None, build: Callable[[dict], Any],
                    describe: Callable[[dict], str], trials: list[dict]) -> dict[str, Any]:
    """Picks the candidate of ``grid`` with the best validation Recall@10 (fit on train
    positives only), then refits it on train + validation and scores test. When the winner is
    the reference's own setting (``default``), its reference row is reused, not refitted."""
    scored = []
    for params in grid:
        fitted, seconds = timed(lambda p=params: build(p).fit(TrainOnly(split)))
        valid = evaluate_model(fitted, split, part="valid").metrics
        scored.append((valid["recall@10"], params))
        trials.append({"protocol": protocol, "reference": name,
                       "candidate": ", ".join(f"{k}={v:g}" for k, v in params.items()),
                       "valid recall@10": valid["recall@10"], "valid ndcg@10": valid["ndcg@10"],
                       "fit s": seconds, "chosen": ""})
        print(f"   {name:>14} valid {trials[-1]['candidate']}: recall@10 "
              f"{valid['recall@10']:.4f} fit {seconds:.1f}s", file=sys.stderr, flush=True)
    best_recall, best = max(scored, key=lambda t: t[0])
    trials[len(trials) - len(grid) + scored.index((best_recall, best))]["chosen"] = "yes"
    note = (f"{describe(best)}; chosen on validation (R@10 {best_recall:.4f}, best of "
            f"{len(grid)})")
    if best == default and reference_row is not None:
        return {**reference_row, "variant": "tuned", "settings": note + " = the reference row"}
    return measure(protocol, name, "tuned", lambda: build(best), split, note)


def warm_up(ml, threads: int) -> None:
    """An untimed one-epoch fit, so torch's first-call set-up is not billed to the first row."""
    split = prepare_split(ml, PROTOCOLS["P2"])
    create_model(TrainConfig(epochs=1, refit=False, threads=threads)).fit(*split.fit_parts())


def measure(protocol: str, model: str, variant: str, build: Callable[[], Any], split,
            note: str) -> dict[str, Any]:
    """Fits ``build()`` on ``split``, scores test and times ranking every user's top 10."""
    fitted, fit_seconds = timed(lambda: build().fit(split))
    metrics = evaluate_model(fitted, split, part="test").metrics
    users = np.arange(split.train.n_users)
    seen = split.seen_at_test.to_csr()
    _, score_seconds = timed(lambda: top_k_items(fitted.score, users, seen, 10))
    row = {"protocol": protocol, "model": model, "variant": variant,
           **{m: metrics[m] for m in METRICS},
           "fit s": fit_seconds, "score-all s": score_seconds, "settings": note}
    print(f"   {model:>14} {variant:>9}: recall@10 {row['recall@10']:.4f} "
          f"ndcg@10 {row['ndcg@10']:.4f} fit {fit_seconds:.1f}s", file=sys.stderr, flush=True)
    return row


def settings(config: TrainConfig, variant: str) -> str:
    """The knobs that matter for ``config.model``, compactly."""
    c = config
    if c.model == "popularity":
        return "-"
    if c.model == "ease":
        return f"lambda={c.ease_lambda:g}"
    if c.model == "itemknn":
        return f"neighbours={c.knn_neighbours}"
    if c.model == "svd":
        return f"dim={c.dim}"
    if c.model == "mf-als":
        return (f"dim={c.dim} lambda={c.als_lambda:g} alpha={c.als_alpha:g} nu={c.als_nu:g} "
                f"cg_steps={c.als_cg_steps or 'exact'} sweeps<={c.epochs}")
    text = f"dim={c.dim} lr={c.lr:g} wd={c.weight_decay:g} bs={c.batch_size} ep<={c.epochs}"
    if c.model != "mf-mse":
        text += f" neg={c.negatives} {c.neg_sampling}"
    if c.model == "ncf":
        text += f" layers={c.ncf_layers}"
    return text


class FactorScores:
    """Adapter: user x item factor matrices as a ``fit``/``score`` recommender."""

    def __init__(self, name: str, make: Callable[[], Any], threads: int) -> None:
        self.name, self.make, self.threads = name, make, threads

    def fit(self, split) -> FactorScores:
        from threadpoolctl import threadpool_limits

        user_items = split.seen_at_test.to_csr().astype(np.float32)
        with threadpool_limits(self.threads):
            model = self.make()
            model.fit(user_items, show_progress=False)
        self.users = np.asarray(model.user_factors, np.float32)
        self.items = np.asarray(model.item_factors, np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.users[users] @ self.items.T


def implicit_rows(protocol: str, split, args, notes: list[str], trials: list[dict]) -> list[dict]:
    try:
        import implicit
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
    except ImportError:
        notes.append("implicit is not importable: its ALS / BPR rows are skipped "
                     "(install it out of tree: pip install --target bench/out/pydeps implicit, "
                     "then run with PYTHONPATH=bench/out/pydeps)")
        return []
    als_iters, bpr_iters = (2, 5) if args.small else (15, 100)
    version = f"implicit {implicit.__version__}"
    specs = [
        ("implicit-als", lambda: AlternatingLeastSquares(
            factors=64, iterations=als_iters, random_state=42, num_threads=args.threads),
         f"{version}, factors=64, iterations={als_iters}, other defaults"),
        ("implicit-bpr", lambda: BayesianPersonalizedRanking(
            factors=64, iterations=bpr_iters, random_state=42, num_threads=args.threads),
         f"{version}, factors=64, iterations={bpr_iters}, other defaults"),
    ]
    rows = [measure(protocol, name, "reference", lambda n=name, m=make: FactorScores(
        n, m, args.threads), split, note) for name, make, note in specs]
    als_grid, bpr_grid = ALS_GRID, BPR_GRID
    if args.small:  # two candidates each, fewer iterations: a smoke test of the machinery
        als_grid = [{**p, "iterations": als_iters} for p in ALS_GRID[2:4]]
        bpr_grid = [{**p, "iterations": bpr_iters} for p in BPR_GRID[:2]]
    for name, cls, grid, default, row in (
        ("implicit-als", AlternatingLeastSquares, als_grid,
         {"factors": 64, "regularization": 0.01, "iterations": als_iters}, rows[0]),
        ("implicit-bpr", BayesianPersonalizedRanking, bpr_grid,
         {"factors": 64, "learning_rate": 0.01, "regularization": 0.01,
          "iterations": bpr_iters}, rows[1]),
    ):
        rows.append(tuned_reference(
            protocol, name, split, grid, default, row,
            lambda p, n=name, c=cls: FactorScores(n, lambda: c(
                **p, random_state=42, num_threads=args.threads), args.threads),
            lambda p: f"{version}, " + ", ".join(f"{k}={v:g}" for k, v in p.items()),
            trials))
    return rows


def report(table: str, trials_md: str, notes: list[str], args) -> str:
    lines = [
        "## Quality (`bench/quality.py`)",
        "",
        *machine_lines(machine()),
        f"- command: `{command_line()}`",
        f"- every row: one seed (42), {args.threads} thread(s); torch models use the default "
        "protocol (early stopping on validation Recall@10, then refit on train + validation "
        "for the best epoch count); references train on train + validation. `fit s` is one "
        "run on a shared machine: see the speed section for medians. `score-all s` = ranking "
        "the top 10 of every user (seen items masked).",
        "- P1 = " + PROTOCOLS["P1"].describe() + "; P2 = " + PROTOCOLS["P2"].describe(),
        "- `reference` rows: library defaults / tutorial settings; `tuned` reference rows: the "
        "best candidate of a small grid by VALIDATION Recall@10 (fit on train positives, train "
        "positives masked), refitted on train + validation; test is touched once. Every "
        "candidate is listed under *Reference tuning* below.",
        "",
        table,
        "",
        *(["### Reference tuning (validation split)", "", trials_md, ""] if trials_md else []),
        *[f"- note: {n}" for n in dict.fromkeys(notes)],
    ]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
