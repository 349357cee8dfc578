"""Hyperparameter search on the validation split, then the chosen configs on test.

Every trial fits on train only (``refit=False``) with early stopping on validation Recall@10
(RMSE for mf-mse) and is scored with ``evaluate_model(part="valid")``; the test split is only
touched once per model, by the chosen config, through the default protocol
(``train_run`` with ``refit=True``: pick the epoch count on validation, refit on train + valid).

Search: a seeded random sample of the grid (the current default is always trial 1), then a
refinement stage that tries one-step neighbours of the best three. Baselines with one knob
(EASE lambda, item-kNN neighbours, SVD dim) get their whole grid.

    python -m bench.tune                      # everything, both protocols (~30 min on 2 cores)
    python -m bench.tune --protocols P2 --models mf-bpr,ease
    python -m bench.tune --report-only        # rebuild TUNING.md / tuned.json from bench/out
    python -m bench.tune --small              # smoke run (< 60 s), writes under bench/out/small

Outputs: ``bench/out/trials-<P>.json`` (every trial, reused as a cache on re-runs),
``bench/tuned.json`` (chosen configs + metrics, read by ``bench.quality``) and
``bench/TUNING.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import random
import statistics
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    EPOCH_MODELS,
    PROTOCOLS,
    command_line,
    machine,
    machine_lines,
    markdown_table,
    protocol_names,
    read_json,
    timed,
    write_json,
)
from recsys.data.loading import load_movielens
from recsys.evaluation.metrics import evaluate_model
from recsys.models import create_model
from recsys.models.config import TrainConfig
from recsys.settings import to_dict
from recsys.storage.runs import prepare_split, train_run

COMMON_SAMPLED = {
    "lr": [0.002, 0.005, 0.01, 0.02],
    "weight_decay": [0.0, 0.001, 0.003, 0.01, 0.03],
    "dim": [32, 64, 128],
    "negatives": [1, 4, 8, 16],  # 16 added after 8 led the first search
    "neg_sampling": ["uniform", "popularity"],
    "batch_size": [1024, 2048, 4096],
}
SPACES: dict[str, dict[str, list[Any]]] = {
    "mf-bpr": COMMON_SAMPLED,
    "mf-bce": COMMON_SAMPLED,
    "ncf": {**COMMON_SAMPLED, "negatives": [1, 4, 8], "dim": [16, 32, 64],
            "ncf_layers": ["32,16,8", "64,32,16"]},
    "mf-mse": {
        "lr": [0.002, 0.005, 0.01, 0.02],
        "weight_decay": [0.0, 0.01, 0.03, 0.1, 0.3],
        "dim": [16, 32, 64, 128],
        "batch_size": [1024, 2048, 4096],
    },
    # iALS as in Rendle et al. (RecSys 2022): large dimensions, frequency-scaled L2 (als_nu),
    # a strong confidence (their unobserved weight alpha0 = 1 / als_alpha), few CG steps
    # (20, 50 and 5, 20 added for a second, refining pass around the leaders); recency-weighted
    # confidence (als_recency, a half-life in later positives) added on Dec 7 2026, ordered
    # from off through gentle to strong, so that a refinement step from "off" is the gentlest
    "mf-als": {"dim": [64, 128, 256, 512],
               "als_lambda": [3.0, 10.0, 20.0, 30.0, 50.0, 100.0, 300.0, 1000.0],
               "als_alpha": [1.0, 3.0, 5.0, 10.0, 20.0, 30.0, 100.0], "als_nu": [0.0, 0.5, 1.0],
               "als_cg_steps": [0, 3, 4, 8],
               "als_recency": [0.0, 50.0, 20.0, 10.0, 7.0, 5.0, 3.0, 2.0, 1.0]},
    "ease": {"ease_lambda": [10.0, 25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0,
                             600.0, 800.0, 1000.0, 2000.0, 4000.0]},
    "itemknn": {"knn_neighbours": [5, 10, 20, 50, 100, 200, 400, 1000]},
    "svd": {"dim": [4, 8, 16, 24, 32, 48, 64, 128]},
    "popularity": {},
}
DEFAULT_MODELS = ("mf-bpr", "mf-bce", "ncf", "ease", "itemknn", "svd", "mf-mse")
# Fixed for every trial: long enough for the slowest learning rate, stopped by patience.
FIXED_EMBEDDING = {"epochs": 60, "patience": 5}
SEARCHED = sorted({name for space in SPACES.values() for name in space})
OUT_DIR = BENCH_DIR / "out"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out_dir, tuned_path, report_path = _paths(args)
    if args.report_only:
        write_report(out_dir, tuned_path, report_path, command_line())
        return 0
    record_command(out_dir, command_line())
    if args.check_defaults:
        params = json.loads(args.check_defaults) if args.check_defaults != "auto" else None
        models = [m.strip() for m in args.models.split(",") if m.strip() in ("mf-bpr", "mf-bce")]
        check_defaults(load_movielens(download=not args.offline), out_dir, args.seeds,
                       params, models or ["mf-bpr"], args.patiences)
        write_report(out_dir, tuned_path, report_path, command_line())
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in SPACES]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}: choose from {', '.join(SPACES)}")
    fixed = {"epochs": 8, "patience": 3} if args.small else FIXED_EMBEDDING
    ml = load_movielens(download=not args.offline)
    for name in protocol_names(args.protocols):
        tune_protocol(ml, name, models, args, fixed, out_dir, tuned_path)
    write_report(out_dir, tuned_path, report_path, command_line())
    print(f"\nwrote {tuned_path} and {report_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.tune", description=__doc__.split("\n")[0])
    p.add_argument("--protocols", default="P1,P2", help="P1 (random), P2 (temporal)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--trials", type=int, default=26, help="random trials per model (stage 1)")
    p.add_argument("--refine", type=int, default=12, help="neighbour trials of the top 3")
    p.add_argument("--seed", type=int, default=0, help="seed of the random search")
    p.add_argument("--small", action="store_true", help="tiny search for smoke tests (< 60 s)")
    p.add_argument("--offline", action="store_true", help="never download MovieLens")
    p.add_argument("--report-only", action="store_true", help="only rebuild the outputs")
    p.add_argument("--check-defaults", nargs="?", const="auto", default=None,
                   metavar="JSON", help="test a candidate default (JSON of TrainConfig fields; "
                   "'auto' = the best mf-bpr config under every protocol) on every protocol "
                   "through the default protocol, over --seeds seeds, for --models among "
                   "mf-bpr / mf-bce")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds per candidate of --check-defaults and --confirm")
    p.add_argument("--confirm", type=int, default=0, metavar="TOP",
                   help="re-score the TOP leaders of an embedding model on --seeds seeds and "
                   "choose by the mean validation Recall@10")
    p.add_argument("--patiences", default="5,10", help="patience values for --check-defaults")
    return p


def _paths(args: argparse.Namespace) -> tuple[Path, Path, Path]:
    if args.small:
        args.trials, args.refine = min(args.trials, 3), min(args.refine, 1)
        if args.models == ",".join(DEFAULT_MODELS):
            args.models = "mf-bpr,ease"
        small = OUT_DIR / "small"
        return small, small / "tuned.json", small / "TUNING.md"
    return OUT_DIR, BENCH_DIR / "tuned.json", BENCH_DIR / "TUNING.md"


# ---------------------------------------------------------------------------- search
def tune_protocol(ml, protocol: str, models: list[str], args, fixed: dict[str, Any],
                  out_dir: Path, tuned_path: Path) -> None:
    split_config = replace(PROTOCOLS[protocol], valid_fraction=0.1)
    split = prepare_split(ml, split_config)
    print(f"\n== {protocol}: {split.describe()}", flush=True)
    trials_path = out_dir / f"trials-{protocol}.json"
    for model in models:
        trials = search(model, split, args, fixed, trials_path, protocol)
        best = max(trials, key=_objective)
        if args.confirm and model in EPOCH_MODELS and model != "mf-mse":
            best = confirm_on_seeds(model, split, trials, args, fixed, trials_path, protocol)
        print(f"   best {model}: valid recall@10 {best['valid_recall@10']:.4f} with "
              f"{best['params']}", flush=True)
        chosen = final_test(ml, split_config, split, model, best, fixed)
        _update_tuned(tuned_path, protocol, model, chosen, split_config)


def search(model: str, split, args, fixed, trials_path: Path, protocol: str) -> list[dict]:
    """Runs (or reuses) the trials of one model on one protocol; returns all of them."""
    space = SPACES[model]
    cache = {t["key"]: t for t in read_trials(trials_path) if t["model"] == model}
    extra = fixed if model in EPOCH_MODELS else {}
    results: dict[str, dict] = {}

    def run(params: dict[str, Any], stage: str) -> None:
        key = _key(model, {**params, **extra})
        if key in results:
            return
        if key in cache:
            results[key] = cache[key]
            return
        trial = run_trial(model, split, params, extra)
        trial.update(key=key, stage=stage, protocol=protocol)
        results[key] = trial
        _append_trial(trials_path, trial)
        print(f"   [{protocol} {model} {len(results):>2}] {_fmt_trial(trial)}", flush=True)

    for params in initial_candidates(model, space, args.trials, args.seed):
        run(params, "random")
    # Refine around the best of everything tried so far on this protocol (earlier runs too),
    # so a re-run with a wider grid explores from the current leaders.
    everything = {k: t for k, t in {**cache, **results}.items() if _in_space(t, space)}
    for params in refine_candidates(model, space, list(everything.values()), args.refine,
                                    args.seed, set(everything), extra):
        run(params, "refine")
    return list({**everything, **results}.values())


def confirm_on_seeds(model: str, split, trials: list[dict], args, fixed, trials_path: Path,
                     protocol: str) -> dict:
    """The best of the ``args.confirm`` leaders by validation Recall@10 averaged over
    ``args.seeds`` seeds (each seed a trial of its own, cached like the others): the leaders
    are often within one seed's noise of each other (~0.003-0.005), so one draw picks by luck."""
    extra = fixed if model in EPOCH_MODELS else {}
    cache = {t["key"]: t for t in read_trials(trials_path)}
    leaders = sorted(trials, key=_objective, reverse=True)[:args.confirm]
    means = []
    for leader in leaders:
        recalls = [leader["valid_recall@10"]]
        for seed in range(1, args.seeds):
            params = {**leader["params"], "seed": seed}
            key = _key(model, {**params, **extra})
            if key not in cache:
                cache[key] = {**run_trial(model, split, params, extra), "key": key,
                              "stage": "seed", "protocol": protocol}
                _append_trial(trials_path, cache[key])
            recalls.append(cache[key]["valid_recall@10"])
        means.append(statistics.mean(recalls))
        print(f"   [{protocol} {model} seeds] mean valid recall@10 {means[-1]:.4f} over "
              f"{len(recalls)} seeds: {_fmt_params(leader['params'])}", flush=True)
    return {**leaders[means.index(max(means))], "valid_recall@10_seeds": max(means)}


def read_trials(path: Path) -> list[dict]:
    """The trials of ``path``, each with every setting its model's space now searches: one
    added to a space after a trial ran is filled in with the value the trial ran with (the
    model's default then), and the trial's key recomputed, so the cache still matches."""
    trials = read_json(path, [])
    for trial in trials:
        space = SPACES.get(trial["model"], {})
        missing = [name for name in space if name not in trial["params"]]
        if missing:
            default = to_dict(TrainConfig.for_model(trial["model"]))
            trial["params"] = {**trial["params"], **{name: default[name] for name in missing}}
            trial["key"] = _key(trial["model"], {**trial["params"], **trial.get("fixed", {})})
    return trials


def _in_space(trial: dict, space: dict[str, list]) -> bool:
    """A search trial on the grid (not one of :func:`confirm_on_seeds`' other seeds)."""
    return (trial.get("stage") != "seed"
            and all(trial["params"].get(k) in v for k, v in space.items()))


# The searched spaces of mf-bpr / mf-bce are Adam's (lr, batch size): their trials run the torch
# engine, whatever the default engine (the compiled engine reads sgd_lr: bench/BPR_ENGINE.md).
TUTORIAL_ENGINE = {"engine": "torch"}
SMALL_GRID = 20  # a one-knob grid up to this size (EASE's lambda) is searched whole


def initial_candidates(model: str, space: dict[str, list], n: int, seed: int) -> list[dict]:
    """The current default first, then distinct random grid points (the whole grid if small)."""
    default = to_dict(TrainConfig.for_model(model))
    first = {k: default[k] for k in space}
    grid_size = 1
    for values in space.values():
        grid_size *= len(values)
    if grid_size <= max(n, SMALL_GRID):
        return [first] + [p for p in _grid(space) if p != first]
    rng = random.Random(f"{seed}-{model}")
    out, seen = [first], {_key(model, first)}
    while len(out) < min(n, grid_size):
        params = {k: rng.choice(v) for k, v in space.items()}
        if _key(model, params) not in seen:
            seen.add(_key(model, params))
            out.append(params)
    return out


def refine_candidates(model, space, trials, n, seed, tried, extra) -> list[dict]:
    """One-step neighbours (adjacent grid value of one knob) of the three best trials."""
    if n <= 0 or not trials:
        return []
    top = sorted(trials, key=_objective, reverse=True)[:3]
    rng = random.Random(f"{seed}-{model}-refine")
    candidates: list[dict] = []
    for trial in top:  # the best trial's neighbours first, in random order within each
        mine = []
        for name, values in space.items():
            at = values.index(trial["params"][name])
            for step in (-1, 1):
                if 0 <= at + step < len(values):
                    params = {**trial["params"], name: values[at + step]}
                    key = _key(model, {**params, **extra})
                    if key not in tried and params not in candidates + mine:
                        mine.append(params)
        rng.shuffle(mine)
        candidates += mine
    return candidates[:n]


def run_trial(model: str, split, params: dict[str, Any], extra: dict[str, Any]) -> dict:
    """Fits on train only and scores validation."""
    config = TrainConfig(model=model, threads=1, refit=False, **{**TUTORIAL_ENGINE, **params},
                         **extra)
    fitted, seconds = timed(lambda: create_model(config).fit(*split.fit_parts()))
    valid = evaluate_model(fitted, split, part="valid").metrics
    history = fitted.history
    return {
        "model": model,
        "params": params,
        "fixed": extra,
        "valid_recall@10": valid["recall@10"],
        "valid_ndcg@10": valid["ndcg@10"],
        "valid_rmse": valid.get("rmse"),
        "best_epoch": history[-1]["best_epoch"] if history else None,
        "epochs_run": len(history),
        "fit_seconds": round(seconds, 2),
    }


def final_test(ml, split_config, split, model: str, best: dict, fixed) -> dict:
    """The chosen and the default config through the default protocol, scored on test."""
    extra = fixed if model in EPOCH_MODELS else {}
    chosen_cfg = TrainConfig(model=model, threads=1, refit=True,
                             **{**TUTORIAL_ENGINE, **best["params"]}, **extra)
    default_cfg = TrainConfig.for_model(model, threads=1)
    out: dict[str, Any] = {
        "params": {**best["params"], **extra},
        "valid_recall@10": best["valid_recall@10"],
        "valid_ndcg@10": best["valid_ndcg@10"],
        "valid_rmse": best.get("valid_rmse"),
        "best_epoch": best["best_epoch"],
    }
    if "valid_recall@10_seeds" in best:  # chosen by confirm_on_seeds
        out["valid_recall@10_seeds"] = best["valid_recall@10_seeds"]
    for label, cfg in (("test", chosen_cfg), ("default_test", default_cfg)):
        run = train_run(ml, split_config, cfg, split=split)
        out[label] = {k: run.metrics[k] for k in ("recall@10", "ndcg@10", "precision@10",
                                                   "mrr@10", "coverage@10", "fit_seconds")}
        if "rmse" in run.metrics:
            out[label]["rmse"] = run.metrics["rmse"]
        out[label]["refit_epochs"] = run.model.refit_epochs
        print(f"   {label:>12} {model}: test recall@10 {out[label]['recall@10']:.4f} "
              f"ndcg@10 {out[label]['ndcg@10']:.4f}", flush=True)
    return out


def _objective(trial: dict) -> float:
    if trial["model"] == "mf-mse":
        return -trial["valid_rmse"]
    return trial["valid_recall@10"]


def _grid(space: dict[str, list]) -> list[dict]:
    combos: list[dict] = [{}]
    for name, values in space.items():
        combos = [{**c, name: v} for c in combos for v in values]
    return combos


def _key(model: str, params: dict[str, Any]) -> str:
    return json.dumps([model, sorted(params.items())])


def _fmt_trial(t: dict) -> str:
    p = " ".join(f"{k}={v}" for k, v in t["params"].items())
    rmse = f" rmse {t['valid_rmse']:.4f}" if t.get("valid_rmse") is not None else ""
    return (f"valid recall@10 {t['valid_recall@10']:.4f}{rmse}  epoch {t['best_epoch']}/"
            f"{t['epochs_run']}  {t['fit_seconds']:.1f}s  {p}")


@contextlib.contextmanager
def _locked(path: Path):
    """Serialises read-modify-write of a JSON file between concurrent tune processes."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(OUT_DIR / f"{path.name}.lock", "w") as lock:  # under bench/out: never committed
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _append_trial(path: Path, trial: dict) -> None:
    with _locked(path):
        trials = read_json(path, [])
        trials.append(trial)
        write_json(path, trials)


def _update_tuned(path: Path, protocol: str, model: str, chosen: dict, split_config) -> None:
    with _locked(path):
        tuned = read_json(path, {})
        section = tuned.setdefault(protocol, {"split": to_dict(split_config), "models": {}})
        section["models"][model] = chosen
        write_json(path, tuned)


def record_command(out_dir: Path, command: str) -> None:
    path = out_dir / "commands.json"
    with _locked(path):
        write_json(path, read_json(path, []) + [command])


# ---------------------------------------------------------------------------- report
def write_report(out_dir: Path, tuned_path: Path, report_path: Path, command: str) -> None:
    tuned = read_json(tuned_path, {})
    earlier = _earlier_sections(report_path)
    commands = read_json(out_dir / "commands.json", [])
    commands = [c for c in earlier.get("commands", []) if c not in commands] + commands
    lines = [
        "# Hyperparameter tuning on the validation split",
        "",
        "Generated by `bench/tune.py`; do not edit by hand. Trials fit on train only "
        "(`refit=False`, threads=1) and are ranked by validation Recall@10 (mf-mse: validation "
        "RMSE). Embedding models run up to "
        f"{FIXED_EMBEDDING['epochs']} epochs with patience {FIXED_EMBEDDING['patience']} "
        "(the best epoch is restored). The chosen config is then trained once with the "
        "default protocol (`train_run`, refit on train + valid for the best epoch count) and "
        "scored on test, next to the model's current defaults.",
        "",
        *machine_lines(machine()),
        f"- this report: `{command}`; the runs behind it, in order:",
        *[f"  - `{c}`" for c in commands],
        "",
    ]
    lines += targets(tuned)
    for protocol in sorted(tuned):
        section = tuned[protocol]
        split_desc = PROTOCOLS[protocol].describe()
        lines += [f"## {protocol}: {split_desc}", "", "### Chosen configs on test", ""]
        rows = []
        for model, c in section["models"].items():
            rows.append({
                "model": model,
                "chosen params": _fmt_params(c["params"]),
                "valid R@10": c["valid_recall@10"],
                "valid N@10": c["valid_ndcg@10"],
                "test R@10": c["test"]["recall@10"],
                "test N@10": c["test"]["ndcg@10"],
                "test RMSE": c["test"].get("rmse"),
                "default test R@10": c["default_test"]["recall@10"],
                "default test N@10": c["default_test"]["ndcg@10"],
                "refit epochs": c["test"].get("refit_epochs"),
                "fit s": c["test"]["fit_seconds"],
            })
        cols = ["model", "chosen params", "valid R@10", "valid N@10", "test R@10", "test N@10",
                "test RMSE", "default test R@10", "default test N@10", "refit epochs", "fit s"]
        lines += [markdown_table(rows, cols), ""]
        trials = read_trials(out_dir / f"trials-{protocol}.json")
        for model in section["models"]:
            mine = sorted((t for t in trials if t["model"] == model and t.get("stage") != "seed"),
                          key=_objective, reverse=True)
            if not mine:  # trials run in another checkout: keep the table already reported
                lines += earlier.get(f"### {protocol} {model}:", [])
                continue
            lines += [f"### {protocol} {model}: top 10 of {len(mine)} trials", ""]
            top = [{"#": i + 1, **{k: t["params"].get(k, "") for k in SPACES[model]},
                    "valid R@10": t["valid_recall@10"], "valid N@10": t["valid_ndcg@10"],
                    "valid RMSE": t.get("valid_rmse"), "best epoch": t["best_epoch"],
                    "fit s": t["fit_seconds"], "stage": t["stage"]}
                   for i, t in enumerate(mine[:10])]
            cols = ["#", *SPACES[model], "valid R@10", "valid N@10"]
            cols += ["valid RMSE"] if model == "mf-mse" else []
            cols += ["best epoch", "fit s", "stage"]
            lines += [markdown_table(top, cols), ""]
    lines += (recommended_defaults(out_dir) or
              earlier.get("## Candidate defaults: mf-bpr configs good under every protocol", []))
    lines += (defaults_check_lines(out_dir) or
              earlier.get("### Candidate defaults on test (`--check-defaults`)", []))
    lines += ["See `bench/INVESTIGATION.md` (from `bench/investigate.py`) for knobs outside "
              "TrainConfig (init scale, item-bias L2, more negatives, longer training) with "
              "several seeds.", ""]
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text("\n".join(lines) + "\n")


def _earlier_sections(report_path: Path) -> dict[str, list[str]]:
    """The report as it stands, cut at its headings: ``bench/out`` is not committed, so what
    was tuned or checked in another checkout keeps its section when this one re-tunes other
    models. Keys: ``### P1 mf-bpr:`` for a "top 10 trials" table, else the heading line, and
    ``commands`` for the list of runs behind the report."""
    if not report_path.exists():
        return {}
    sections: dict[str, list[str]] = {"commands": []}
    current: list[str] | None = None
    for line in report_path.read_text().splitlines():
        if line.startswith("  - `"):
            sections["commands"].append(line[len("  - `"):].rstrip("`"))
        if line.startswith("See `bench/INVESTIGATION.md`"):
            current = None  # the closing line, written again
        elif line.startswith("#"):
            key = line.split(": top 10 of ")[0] + ":" if ": top 10 of " in line else line
            current = sections.setdefault(key, [])
        if current is not None:
            current.append(line)
    return sections


TARGETS = {"P1": 0.25, "P2": 0.13}  # test Recall@10 the best embedding model should reach


def targets(tuned: dict) -> list[str]:
    rows = []
    for protocol in sorted(tuned):
        models = tuned[protocol]["models"]
        embedding = {m: c for m, c in models.items() if m in EPOCH_MODELS and m != "mf-mse"}
        if not embedding:
            continue
        best = max(embedding, key=lambda m: embedding[m]["test"]["recall@10"])
        recall = embedding[best]["test"]["recall@10"]
        target = TARGETS.get(protocol, float("nan"))
        ease = models.get("ease", {}).get("default_test", {}).get("recall@10")
        rows.append({"protocol": protocol, "best embedding model": best, "test R@10": recall,
                     "target": target, "met": "yes" if recall >= target else
                     f"no (short by {target - recall:.4f})", "EASE default test R@10": ease})
    if not rows:
        return []
    cols = ["protocol", "best embedding model", "test R@10", "target", "met",
            "EASE default test R@10"]
    return ["## Targets (one seed; seed-to-seed std of test R@10 is ~0.003-0.005, see "
            "INVESTIGATION.md)", "", markdown_table(rows, cols), "", *ease_level(tuned)]


def ease_level(tuned: dict) -> list[str]:
    """Issue 24's target: the embedding model with the best *validation* Recall@10 reaches
    EASE's test Recall@10 and NDCG@10 (EASE's lambda also chosen on validation). Fit time
    against EASE's is measured interleaved by ``bench/als_speed.py --against-ease``
    (bench/ALS.md): the fit seconds here ran beside other trials."""
    rows = []
    for protocol in sorted(tuned):
        models = tuned[protocol]["models"]
        embedding = {m: c for m, c in models.items() if m in EPOCH_MODELS and m != "mf-mse"}
        if not embedding or "ease" not in models:
            continue
        pick = max(embedding, key=lambda m: embedding[m]["valid_recall@10"])
        mine, ease = embedding[pick]["test"], models["ease"]["test"]
        seeds = embedding[pick].get("valid_recall@10_seeds")
        rows.append({"protocol": protocol, "chosen on validation": pick,
                     "params": _fmt_params(embedding[pick]["params"]),
                     "valid R@10": embedding[pick]["valid_recall@10"],
                     "valid R@10, mean of seeds": seeds if seeds is not None else "",
                     "test R@10": mine["recall@10"], "EASE test R@10": ease["recall@10"],
                     "test N@10": mine["ndcg@10"], "EASE test N@10": ease["ndcg@10"],
                     "both reached": "yes" if (mine["recall@10"] >= ease["recall@10"] and
                                               mine["ndcg@10"] >= ease["ndcg@10"]) else "no"})
    if not rows:
        return []
    return ["### At EASE level? (the embedding model with the best validation Recall@10)", "",
            markdown_table(rows, list(rows[0])), ""]


def _candidate_default(out_dir: Path, model: str = "mf-bpr") -> dict[str, Any] | None:
    per_protocol = {p: {t["key"]: t for t in read_trials(out_dir / f"trials-{p}.json")
                        if t["model"] == model} for p in PROTOCOLS}
    if not all(per_protocol.values()):
        return None
    best = {p: max(t["valid_recall@10"] for t in ts.values()) for p, ts in per_protocol.items()}
    shared = set.intersection(*(set(t) for t in per_protocol.values()))
    key = max(shared, key=lambda k: sum(per_protocol[p][k]["valid_recall@10"] / best[p]
                                        for p in per_protocol))
    return next(iter(per_protocol.values()))[key]["params"]


def check_defaults(ml, out_dir: Path, n_seeds: int, params: dict[str, Any] | None,
                   models: list[str], patiences: str) -> None:
    """A candidate default through the default protocol (refit) on test, several seeds."""
    params = params or _candidate_default(out_dir)
    if params is None:
        raise SystemExit("run the mf-bpr search on every protocol first")
    for protocol, split_config in PROTOCOLS.items():
        split = prepare_split(ml, split_config)
        for model in models:
            for patience in (int(p) for p in patiences.split(",")):
                row = _seeded_test(ml, split_config, split, model, params, patience, n_seeds)
                row["protocol"] = protocol
                print(f"   {model} {protocol} patience {patience}: test recall@10 "
                      f"{row['test R@10 mean']:.4f} ± {row['test R@10 std']:.4f}", flush=True)
                _store_check(out_dir / "defaults-check.json", row)


def _seeded_test(ml, split_config, split, model, params, patience, n_seeds) -> dict[str, Any]:
    recalls, ndcgs, seconds = [], [], []
    for seed in range(42, 42 + n_seeds):
        config = TrainConfig(model=model, threads=1, epochs=60, patience=patience, seed=seed,
                             **params)
        run = train_run(ml, split_config, config, split=split)
        recalls.append(run.metrics["recall@10"])
        ndcgs.append(run.metrics["ndcg@10"])
        seconds.append(run.metrics["fit_seconds"])
    return {"model": model, "params": params, "patience": patience, "seeds": n_seeds,
            "test R@10 mean": statistics.mean(recalls),
            "test R@10 std": statistics.pstdev(recalls),
            "test N@10 mean": statistics.mean(ndcgs), "fit s mean": statistics.mean(seconds)}


def _store_check(path: Path, row: dict[str, Any]) -> None:
    """Adds ``row`` to the checks file, replacing an earlier row of the same setting."""
    def ident(r: dict[str, Any]) -> tuple:
        return (r.get("model", "mf-bpr"), r["protocol"], json.dumps(r["params"], sort_keys=True),
                r["patience"])

    with _locked(path):
        rows = [r for r in read_json(path, []) if ident(r) != ident(row)]
        write_json(path, rows + [row])


def defaults_check_lines(out_dir: Path) -> list[str]:
    rows = read_json(out_dir / "defaults-check.json", [])
    if not rows:
        return []
    for r in rows:
        r.setdefault("model", "mf-bpr")
        r["config"] = ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()))
    rows.sort(key=lambda r: (r["config"], r["model"], r["protocol"], r["patience"]))
    cols = ["config", "model", "protocol", "patience", "seeds", "test R@10 mean",
            "test R@10 std", "test N@10 mean", "fit s mean"]
    return ["### Candidate defaults on test (`--check-defaults`)", "",
            "Default protocol (refit on train + valid), epochs<=60, threads=1, seeds 42...",
            "", markdown_table(rows, cols), ""]


def recommended_defaults(out_dir: Path, model: str = "mf-bpr") -> list[str]:
    """The ``model`` config tried on every protocol with the best mean validation recall
    relative to each protocol's best: one default that is good under both protocols."""
    per_protocol = {}
    for protocol in PROTOCOLS:
        trials = [t for t in read_trials(out_dir / f"trials-{protocol}.json")
                  if t["model"] == model]
        if trials:
            per_protocol[protocol] = {t["key"]: t for t in trials}
    if len(per_protocol) < 2:
        return []
    shared = set.intersection(*(set(t) for t in per_protocol.values()))
    best = {p: max(t["valid_recall@10"] for t in ts.values()) for p, ts in per_protocol.items()}

    def relative(key: str) -> float:
        return sum(ts[key]["valid_recall@10"] / best[p] for p, ts in per_protocol.items()) / len(
            per_protocol)

    ranked = sorted(shared, key=relative, reverse=True)[:5]
    rows = [{"#": i + 1, **next(iter(per_protocol.values()))[k]["params"],
             **{f"{p} valid R@10": per_protocol[p][k]["valid_recall@10"] for p in per_protocol},
             **{f"{p} best epoch": per_protocol[p][k]["best_epoch"] for p in per_protocol},
             "mean share of best": relative(k)} for i, k in enumerate(ranked)]
    cols = ["#", *SPACES[model], *[f"{p} valid R@10" for p in per_protocol],
            *[f"{p} best epoch" for p in per_protocol], "mean share of best"]
    return [f"## Candidate defaults: {model} configs good under every protocol", "",
            f"Among the {len(shared)} {model} configs tried under all of "
            f"{', '.join(per_protocol)}, ranked by validation Recall@10 relative to each "
            "protocol's best, averaged.", "", markdown_table(rows, cols), ""]


def _fmt_params(params: dict[str, Any]) -> str:
    defaults = to_dict(TrainConfig())
    shown = {k: v for k, v in params.items() if k in SEARCHED or v != defaults.get(k)}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


assert {f.name for f in fields(TrainConfig)} >= set(SEARCHED)

if __name__ == "__main__":
    sys.exit(main())
