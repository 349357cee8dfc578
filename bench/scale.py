"""Does the core scale to ML-25M? Synthetic data of that shape, each stage timed, with what
breaks reported rather than fixed.

The data: 25M ratings of 162k users on 62k items; item popularity is Zipf-like (as in
MovieLens), users' activity log-normal, ratings 0.5-5 with ~half >= 4, timestamps random.
Stages: build ``Interactions`` from a frame, temporal split, one epoch of negative sampling,
one epoch of mf-bpr (no validation), ranking a sample of users (extrapolated), then the
memory the all-users metrics and the item x item baselines would need.

    python -m bench.scale                  # full ML-25M shape (several minutes, ~6 GB RAM)
    python -m bench.scale --fraction 0.1   # a tenth of every dimension's count
    python -m bench.scale --small          # fraction 0.01, < 60 s
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import command_line, machine, machine_lines, markdown_table, timed
from bench.quality import RESULTS_PATH, write_section
from recsys.config import SplitConfig, TrainConfig
from recsys.evaluation import top_k_items
from recsys.interactions import Interactions
from recsys.models import create_model
from recsys.sampling import PositiveSet, sample_negatives
from recsys.splits import make_split

FULL = {"ratings": 25_000_095, "users": 162_541, "items": 62_423}
COLUMNS = ("stage", "seconds", "peak RSS GB", "result")
EVAL_DENSE_LIMIT_GB = 4.0  # do not try allocations the machine cannot survive


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fraction = 0.01 if args.small else args.fraction
    shape = {k: max(int(v * fraction), 100) for k, v in FULL.items()}
    rows: list[dict[str, Any]] = []

    def stage(name: str, fn, describe=lambda v: "ok"):
        save(rows, f"running: {name}")  # a killed run still leaves what it measured
        value, seconds = timed(fn)
        rows.append({"stage": name, "seconds": seconds, "peak RSS GB": _peak_gb(),
                     "result": describe(value)})
        print(f"   {name}: {seconds:.1f}s, peak {_peak_gb():.1f} GB", file=sys.stderr, flush=True)
        return value

    def save(done: list[dict[str, Any]], status: str) -> None:
        if not args.results or args.small:
            return
        body = "\n".join([
            "## Scale (`bench/scale.py`)", "", *machine_lines(machine()),
            f"- command: `{command_line()}`",
            f"- synthetic ML-25M shape x {fraction:g}: {shape['ratings']:,} ratings drawn, "
            f"{shape['users']:,} users, {shape['items']:,} items; torch threads {args.threads}",
            f"- status: {status}", "", markdown_table(done, COLUMNS), ""])
        write_section(Path(args.results), "scale", body)

    frame = stage("generate synthetic ratings", lambda: synthetic(shape, seed=0),
                  lambda f: f"{len(f):,} ratings")
    events = stage("Interactions.from_frame", lambda f=frame: Interactions.from_frame(f),
                   lambda e: f"{e.n_users:,} users x {e.n_items:,} items")
    del frame
    split = stage("make_split (temporal, no validation)",
                  lambda: make_split(events, SplitConfig(valid_fraction=0.0)),
                  lambda s: f"{len(s.train_pos):,} train / {len(s.test_pos):,} test positives")
    pos = split.train_pos
    positives = stage("PositiveSet", lambda: PositiveSet(pos.user_index, pos.item_index,
                                                         pos.n_users, pos.n_items),
                      lambda p: "dense bitmap" if p.bitmap is not None else
                      f"sorted keys (n_users x n_items = {pos.n_users * pos.n_items:,} > "
                      f"{PositiveSet.DENSE_LIMIT:,})")
    rng = np.random.default_rng(0)
    stage("sample_negatives, one epoch x 4", lambda: sample_negatives(
        pos.user_index, 4, pos.n_items, positives, rng), lambda n: f"{n.size:,} negatives")
    config = TrainConfig(epochs=1, patience=0, refit=False, threads=args.threads)
    model = stage("mf-bpr fit, 1 epoch, no validation",
                  lambda: create_model(config).fit(split),
                  lambda m: f"loss {m.history[-1]['loss']:.4f}")
    rows += ranking_rows(model, split, args.sample_users)
    rows += memory_rows(split)
    print(markdown_table(rows, COLUMNS))
    save(rows, "complete")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--fraction", type=float, default=1.0, help="share of ML-25M's counts")
    p.add_argument("--sample-users", type=int, default=5000, help="users ranked for timing")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--small", action="store_true", help="fraction 0.01 (< 60 s)")
    p.add_argument("--results", default=str(RESULTS_PATH))
    return p


def synthetic(shape: dict[str, int], seed: int) -> pd.DataFrame:
    """Ratings with Zipf-like item popularity and log-normal user activity, no duplicates."""
    rng = np.random.default_rng(seed)
    n, n_users, n_items = shape["ratings"], shape["users"], shape["items"]
    item_p = 1.0 / np.arange(1, n_items + 1) ** 0.9
    user_p = rng.lognormal(0.0, 1.2, n_users)
    draw = int(n * 1.15)
    users = rng.choice(n_users, draw, p=user_p / user_p.sum())
    items = rng.choice(n_items, draw, p=item_p / item_p.sum())
    _, first = np.unique(users.astype(np.int64) * n_items + items, return_index=True)
    keep = np.sort(rng.permutation(first)[:n])
    users, items = users[keep], items[keep]
    stars = rng.choice(np.arange(1, 11) / 2, len(keep),
                       p=[.02, .03, .03, .07, .05, .2, .13, .26, .08, .13])
    return pd.DataFrame({
        "user_id": users + 1, "item_id": items + 1, "rating": stars.astype(np.float32),
        "timestamp": rng.integers(789_652_009, 1_574_327_703, len(keep)),
    })


def ranking_rows(model, split, sample: int) -> list[dict[str, Any]]:
    users = np.flatnonzero(split.test_pos.user_counts() > 0)
    chosen = users[: min(sample, len(users))]
    seen = split.seen_at_test.to_csr()
    _, seconds = timed(lambda: top_k_items(model.score, chosen, seen, 10))
    total = seconds * len(users) / max(len(chosen), 1)
    return [{"stage": f"top_k_items, {len(chosen):,} users", "seconds": seconds,
             "peak RSS GB": _peak_gb(),
             "result": f"all {len(users):,} users extrapolated: {total:,.0f} s"}]


def memory_rows(split) -> list[dict[str, Any]]:
    """What the stages that densify would allocate (not attempted above the limit)."""
    n_users = int(np.count_nonzero(split.test_pos.user_counts()))
    n_items = split.train.n_items
    dense_eval = n_users * n_items / 1e9  # bool rel_rows.toarray() > 0, twice
    rows = [{"stage": "ranking_metrics (all users)", "seconds": None,
             "peak RSS GB": None,
             "result": f"relevant[users].toarray() > 0 allocates {n_users:,} x {n_items:,} bool "
                       f"= {dense_eval:.1f} GB (x2 with the comparison): "
                       + ("fits" if 2 * dense_eval < EVAL_DENSE_LIMIT_GB else "BREAKS (OOM)")}]
    gram = n_items * n_items * 8 / 1e9
    rows.append({"stage": "EASE fit", "seconds": None, "peak RSS GB": None,
                 "result": f"dense float64 gram + inverse: 2 x {gram:.1f} GB: "
                           + ("fits" if 2 * gram < EVAL_DENSE_LIMIT_GB else "BREAKS (OOM)")})
    knn = n_items * n_items * 4 / 1e9
    rows.append({"stage": "itemknn fit", "seconds": None, "peak RSS GB": None,
                 "result": f"_top_k_per_row densifies item x item float32: {knn:.1f} GB: "
                           + ("fits" if knn < EVAL_DENSE_LIMIT_GB else "BREAKS (OOM)")})
    return rows


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


if __name__ == "__main__":
    sys.exit(main())
