"""Does the core scale to ML-25M? Synthetic data of that shape, each stage timed, with what
breaks reported rather than fixed.

The data: 25M ratings of 162k users on 62k items; item popularity is Zipf-like (as in
MovieLens), users' activity log-normal, ratings 0.5-5 with ~half >= 4, timestamps random.
Stages: build ``Interactions`` from a frame, temporal split, one epoch of negative sampling,
one epoch of mf-bpr (no validation) with a batch size suited to the size (``--batch-size``,
default 65,536: the 1,024 of ML-100K would mean ~8,500 optimiser steps per epoch over dense
embedding tables of 14M parameters), ranking a sample of users (extrapolated;
``top_k_items`` and the blocked ``recsys.evaluation.topk.top_k_dot``), the ranking metrics on that
sample, EASE's up-front memory check and item-kNN's blocked similarity (a few blocks timed,
extrapolated).

    python -m bench.scale                  # full ML-25M shape (~10 minutes, ~6 GB RAM)
    python -m bench.scale --fraction 0.1   # a tenth of every dimension's count
    python -m bench.scale --small          # fraction 0.01, < 60 s
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.common import (
    command_line,
    machine,
    machine_lines,
    markdown_table,
    timed,
    write_json,
)
from bench.quality import RESULTS_PATH, json_path, write_section
from recsys.data.interactions import Interactions
from recsys.data.protocol import SplitConfig
from recsys.data.sampling import PositiveSet, sample_negatives
from recsys.data.splits import make_split
from recsys.evaluation.metrics import ranking_metrics, top_k_items
from recsys.evaluation.topk import top_k_dot
from recsys.linalg import SimilarityBlocks
from recsys.models import create_model
from recsys.models.config import TrainConfig

FULL = {"ratings": 25_000_095, "users": 162_541, "items": 62_423}
COLUMNS = ("stage", "seconds", "cpu s", "peak RSS GB", "result")
EVAL_DENSE_LIMIT_GB = 4.0  # do not try allocations the machine cannot survive


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fraction = 0.01 if args.small else args.fraction
    shape = {k: max(int(v * fraction), 100) for k, v in FULL.items()}
    rows: list[dict[str, Any]] = []

    def stage(name: str, fn, describe=lambda v: "ok"):
        save(rows, f"running: {name}")  # a killed run still leaves what it measured
        started = time.process_time()
        value, seconds = timed(fn)
        rows.append({"stage": name, "seconds": seconds, "cpu s": time.process_time() - started,
                     "peak RSS GB": _peak_gb(), "result": describe(value)})
        print(f"   {name}: {seconds:.1f}s, peak {_peak_gb():.1f} GB", file=sys.stderr, flush=True)
        return value

    config = TrainConfig(epochs=1, patience=0, refit=False, threads=args.threads,
                         batch_size=args.batch_size)

    def save(done: list[dict[str, Any]], status: str) -> None:
        if not args.results or args.small:
            return
        peak = max([r["peak RSS GB"] or 0.0 for r in done], default=0.0)
        body = "\n".join([
            "## Scale (`bench/scale.py`)", "", *machine_lines(machine()),
            f"- command: `{command_line()}`",
            f"- synthetic ML-25M shape x {fraction:g}: {shape['ratings']:,} ratings drawn, "
            f"{shape['users']:,} users, {shape['items']:,} items; torch threads {args.threads}; "
            f"mf-bpr batch size {config.batch_size:,} (lr {config.lr:g}, dim {config.dim}, "
            f"{config.negatives} negatives)",
            f"- status: {status}; measured peak RSS of the whole run: {peak:.2f} GB; "
            f"1-min load now {os.getloadavg()[0]:.2f} (`cpu s` is this process's own CPU time: "
            "under load from other work it is the fairer number)",
            "", markdown_table(done, COLUMNS), "",
            "- EASE needs a dense item x item gram and its inverse, O(n_items^2): at 62k items "
            "it refuses up front with the bytes it needs and the bytes available (row "
            "above) instead of being killed. item-kNN builds its top-k similarity in blocks "
            "of item rows, so its memory is O(block x n_items + n_items x k). Ranking every "
            "user is compute-bound (extrapolated above); `recsys.evaluation.topk.top_k_dot` is the "
            "blocked form for factor models.", ""])
        write_section(Path(args.results), "scale", body)
        write_json(json_path(args.results, "scale"),
                   {"command": command_line(), "fraction": fraction, "shape": shape,
                    "batch_size": config.batch_size, "status": status, "peak_rss_gb": peak,
                    "rows": done})

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
                      lambda p: describe_positive_set(p, pos.n_users * pos.n_items))
    rng = np.random.default_rng(0)
    stage(f"sample_negatives, one epoch x {config.negatives}", lambda: sample_negatives(
        pos.user_index, config.negatives, pos.n_items, positives, rng),
        lambda n: f"{n.size:,} negatives")
    positives = None  # noqa: F841  (the model builds its own; free this one)
    steps = (f"batch {config.batch_size:,}" if config.engine == "torch"
             else "one SGD step per sample")
    model = stage(f"mf-bpr fit ({config.engine} engine), 1 epoch, {steps}, no validation",
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
    p.add_argument("--batch-size", type=int, default=65536,
                   help="mf-bpr positives per optimiser step (TrainConfig's 1,024 suits ML-100K)")
    p.add_argument("--small", action="store_true", help="fraction 0.01 (< 60 s)")
    p.add_argument("--results", default=str(RESULTS_PATH))
    return p


def describe_positive_set(p: PositiveSet, n_pairs: int) -> str:
    if getattr(p, "bytes", None) is not None:
        return f"byte map, {p.bytes.nbytes / 1e9:.2f} GB"
    if getattr(p, "bits", None) is not None:
        return f"bit map of {n_pairs:,} pairs, {p.bits.nbytes / 1e9:.2f} GB"
    return f"sorted keys ({n_pairs:,} pairs > {PositiveSet.BIT_LIMIT:,})"


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
    scale = len(users) / max(len(chosen), 1)
    (top, _), seconds, cpu = _cpu_timed(lambda: top_k_items(model.score, chosen, seen, 10))
    (fast, _), fast_seconds, fast_cpu = _cpu_timed(lambda: top_k_dot(
        model.user_factors(), model.item_factors(), chosen, seen, 10, model.item_biases()))
    same = "same items" if np.array_equal(fast, top) else \
        f"{(fast == top).mean():.4%} of the items equal (float ties)"
    relevant = split.test_pos.to_csr()
    counts = split.seen_at_test.item_counts()
    metrics, metric_seconds = timed(lambda: ranking_metrics(
        top, relevant, chosen, 10, counts, relevant.shape[0])[0])
    return [{"stage": f"top_k_items, {len(chosen):,} users", "seconds": seconds,
             "cpu s": cpu, "peak RSS GB": _peak_gb(),
             "result": f"all {len(users):,} users extrapolated: {seconds * scale:,.0f} s "
                       f"(CPU {cpu * scale:,.0f} s)"},
            {"stage": f"recsys.evaluation.topk.top_k_dot, {len(chosen):,} users",
             "seconds": fast_seconds,
             "cpu s": fast_cpu, "peak RSS GB": _peak_gb(),
             "result": f"all {len(users):,} users extrapolated: {fast_seconds * scale:,.0f} s "
                       f"(CPU {fast_cpu * scale:,.0f} s; {cpu / fast_cpu:.1f}x top_k_items "
                       f"in CPU time; {same})"},
            {"stage": f"ranking_metrics, {len(chosen):,} users", "seconds": metric_seconds,
             "peak RSS GB": _peak_gb(),
             "result": f"recall@10 {metrics['recall@10']:.4f} (1 epoch); sorted-key lookup, "
                       f"memory O(users x k): all {len(users):,} users ~"
                       f"{len(users) * 10 * 17 / 1e6:.0f} MB: fits"}]


def memory_rows(split, sample_blocks: int = 3) -> list[dict[str, Any]]:
    """EASE: its up-front memory check (it refuses rather than being killed). item-kNN: its
    blocked top-k similarity, a few blocks timed and the whole extrapolated."""
    rows: list[dict[str, Any]] = []
    try:
        _, seconds = timed(lambda: create_model(TrainConfig(model="ease")).fit(split))
        result = "fitted"
    except ValueError as err:
        seconds, result = None, f"refuses up front: {err}"
    rows.append({"stage": "EASE fit", "seconds": seconds, "peak RSS GB": _peak_gb(),
                 "result": result})
    parts, prep_seconds = timed(lambda: SimilarityBlocks(split.train_pos.to_csr()))
    starts = list(parts.block_starts())
    picked = starts[:: max(1, len(starts) // sample_blocks)][:sample_blocks]
    k = TrainConfig().knn_neighbours
    _, block_seconds, block_cpu = _cpu_timed(
        lambda: [parts.top_k_rows(start, k) for start in picked])
    total = prep_seconds + block_cpu / len(picked) * len(starts)
    kept_gb = parts.n_items * k * 8 / 1e9
    rows.append({"stage": f"itemknn similarity, {len(picked)} of {len(starts)} blocks",
                 "seconds": block_seconds, "cpu s": block_cpu, "peak RSS GB": _peak_gb(),
                 "result": f"blocked top-{k}: {parts.rows_per_block} items x {parts.n_items:,} "
                           f"per block; whole fit extrapolated {total:,.0f} s (CPU), keeps "
                           f"~{kept_gb:.2f} GB (was a dense {parts.n_items**2 * 4 / 1e9:.1f} GB)"})
    return rows


def _cpu_timed(fn) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds."""
    started = time.process_time()
    value, seconds = timed(fn)
    return value, seconds, time.process_time() - started


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


if __name__ == "__main__":
    sys.exit(main())
