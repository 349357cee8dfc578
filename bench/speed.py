"""Speed benchmark on MovieLens 100K (temporal protocol P2): fit time of the default config
against the textbook BPR-MF loop, evaluation throughput and serving latencies.

Fits run in interleaved repetitions (A, B, C, D, A, B, ...) so that load from other processes
hits every variant alike; the table reports medians. Rows:

- ``default model``: the default model (mf-als) with its own defaults (validation every
  sweep, early stopping, refit); ``mf-als loop only``: its sweeps alone, no validation;
  ``implicit ALS``: the library's ALS with the same factors, iterations, lambda and alpha;
- ``recsys default``: ``TrainConfig()`` (mf-bpr, the compiled engine on the CPU) as shipped
  (validation every epoch, early stopping, then a refit on train + validation for the best
  epoch count);
- ``recsys loop + validation``: ``patience=0, refit=False`` (all epochs, validation each one);
- ``recsys loop only``: the same on a split with ``valid_fraction=0``, i.e. no validation at
  all: like-for-like with the textbook loop (same positives, same epochs, no evaluation);
- ``mf-bpr torch loop only``: the same with ``engine="torch"`` (Adam on batches, the tutorial's
  version and the GPU engine);
- ``textbook``: :mod:`bench.textbook` (per-sample ``Dataset`` + ``DataLoader``, autograd);
- ``implicit BPR`` (when ``implicit`` imports): the library's Cython BPR, factors 64,
  100 iterations, 1 thread, on the same positives as the loop-only row.

    python -m bench.speed                  # 3 repetitions, writes the "speed" part of RESULTS.md
    python -m bench.speed --small          # 1 repetition, 2 epochs (< 60 s), prints only
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    PROTOCOLS,
    command_line,
    machine,
    machine_lines,
    markdown_table,
    median,
    timed,
    write_json,
)
from bench.quality import RESULTS_PATH, FactorScores, json_path, write_section
from bench.textbook import TextbookBPR
from recsys.data.loading import load_movielens
from recsys.evaluation.metrics import evaluate_model
from recsys.models import create_model
from recsys.models.config import DEFAULT_MODEL, TrainConfig, resolve_device
from recsys.storage.runs import prepare_split, train_run

FIT_COLUMNS = ("variant", "what runs", "median fit s", "min s", "max s", "runs",
               "cpu s", "textbook / this (cpu)", "test recall@10")
LATENCY_COLUMNS = ("operation", "calls", "median ms", "p95 ms", "notes")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reps, epochs = (1, 2) if args.small else (args.reps, TrainConfig().epochs)
    ml = load_movielens(download=not args.offline)
    split = prepare_split(ml, PROTOCOLS["P2"])
    no_valid = prepare_split(ml, replace(PROTOCOLS["P2"], valid_fraction=0.0))
    fit_rows = fit_table(split, no_valid, reps, epochs, args.threads)
    eval_rows = evaluation_rows(split, args.threads, 3 if args.small else 10)
    notes: list[str] = []
    serving = serving_rows(ml, args.threads, 20 if args.small else 200, notes)
    fit_md = markdown_table(fit_rows, FIT_COLUMNS)
    lat_md = markdown_table(eval_rows + serving, LATENCY_COLUMNS)
    print(fit_md, "", lat_md, *[f"note: {n}" for n in notes], sep="\n")
    if args.results:
        body = report(fit_md, lat_md, notes + closing_notes(fit_rows), args, reps, epochs)
        write_section(Path(args.results), "speed", body)
        write_json(json_path(args.results, "speed"),
                   {"command": command_line(), "small": args.small, "reps": reps,
                    "epochs": epochs, "fit": fit_rows, "latency": eval_rows + serving,
                    "config": {k: getattr(TrainConfig(), k) for k in
                               ("engine", "lr", "sgd_lr", "weight_decay", "batch_size",
                                "negatives", "dim", "threads", "epochs", "patience")}})
        print(f"wrote the speed section of {args.results}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions per variant")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every variant")
    p.add_argument("--small", action="store_true", help="1 repetition, 2 epochs (< 60 s)")
    p.add_argument("--results", default=None,
                   help=f"markdown file to write the section into (full runs: {RESULTS_PATH})")
    p.add_argument("--offline", action="store_true", help="never download MovieLens")
    return p


# ---------------------------------------------------------------------------- fit time
def fit_table(split, no_valid, reps: int, epochs: int, threads: int) -> list[dict[str, Any]]:
    base = TrainConfig(threads=threads, epochs=epochs)
    loop = replace(base, patience=0, refit=False)
    als = TrainConfig.for_model("mf-als", threads=threads)
    als = replace(als, epochs=2) if epochs < base.epochs else als
    als_loop = replace(als, patience=0, refit=False)
    variants: list[tuple[str, str, Callable[[], Any], Any]] = [
        (f"default model ({DEFAULT_MODEL})", f"TrainConfig.for_model({DEFAULT_MODEL!r}): "
         f"{als.epochs} sweeps, validation each sweep, early stop, refit",
         lambda: create_model(TrainConfig.for_model(DEFAULT_MODEL, threads=threads,
                                                    epochs=als.epochs)), split),
        ("mf-als loop only", f"{als.epochs} sweeps, patience=0, refit=False, valid_fraction=0",
         lambda: create_model(als_loop), no_valid),
        ("recsys default", f"TrainConfig() (mf-bpr, {base.engine} engine, threads={threads}): "
         "validation each epoch, early stop, refit", lambda: create_model(base), split),
        ("recsys loop + validation", f"{base.engine} engine, patience=0, refit=False",
         lambda: create_model(loop), split),
        ("recsys loop only", f"{base.engine} engine, {epochs} epochs x {base.negatives} "
         "negatives, patience=0, refit=False, valid_fraction=0",
         lambda: create_model(loop), no_valid),
        ("mf-bpr torch loop only", f"engine=torch (Adam, batch {base.batch_size}), {epochs} "
         "epochs, patience=0, refit=False, valid_fraction=0",
         lambda: create_model(replace(loop, engine="torch")), no_valid),
        ("textbook", f"bench/textbook.py, {epochs} epochs, no validation",
         lambda: TextbookBPR(epochs=epochs, threads=threads), no_valid),
    ]
    try:
        import implicit
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking
    except ImportError:
        pass
    else:
        iters = 5 if epochs < TrainConfig().epochs else 100
        variants.append((
            "implicit ALS", f"implicit {implicit.__version__} ALS, factors={als.dim}, "
            f"iterations={als.epochs}, regularization={als.als_lambda:g}, "
            f"alpha={als.als_alpha:g} (mf-als's), 1 thread, no validation",
            lambda: FactorScores("implicit-als", lambda: AlternatingLeastSquares(
                factors=als.dim, iterations=als.epochs, regularization=als.als_lambda,
                alpha=als.als_alpha, random_state=42, num_threads=threads), threads),
            no_valid))
        variants.append((
            "implicit BPR", f"implicit {implicit.__version__} BPR, factors=64, "
            f"iterations={iters}, 1 thread, no validation",
            lambda: FactorScores("implicit-bpr", lambda: BayesianPersonalizedRanking(
                factors=64, iterations=iters, random_state=42, num_threads=threads), threads),
            no_valid))
    warm_up(split, threads)
    seconds: dict[str, list[float]] = {v[0]: [] for v in variants}
    cpu: dict[str, list[float]] = {v[0]: [] for v in variants}
    recall: dict[str, float] = {}
    for rep in range(reps):
        for name, _, build, data in variants:
            started = time.process_time()  # CPU seconds: less sensitive to other load
            fitted, s = timed(lambda b=build, d=data: b().fit(d))
            cpu[name].append(time.process_time() - started)
            seconds[name].append(s)
            recall[name] = evaluate_model(fitted, data, part="test").metrics["recall@10"]
            print(f"   rep {rep + 1}/{reps} {name:>26}: {s:6.2f}s recall@10 "
                  f"{recall[name]:.4f}", file=sys.stderr, flush=True)
    textbook = median(cpu["textbook"])
    return [{
        "variant": name, "what runs": what, "median fit s": median(seconds[name]),
        "min s": min(seconds[name]), "max s": max(seconds[name]), "runs": len(seconds[name]),
        "cpu s": median(cpu[name]),
        "textbook / this (cpu)": textbook / median(cpu[name]), "test recall@10": recall[name],
    } for name, what, _, _ in variants]


def warm_up(split, threads: int) -> None:
    """One untimed short fit + evaluation per engine, so lazy imports, torch's first-call
    set-up and numba's compilation (or its cache load) do not land on whichever variant
    happens to run first."""
    for engine in ("compiled", "torch"):
        config = TrainConfig(threads=threads, epochs=1, refit=False, engine=engine)
        model = create_model(config).fit(split)
    evaluate_model(model, split, part="test")
    TextbookBPR(epochs=1, threads=threads).fit(split)


# ---------------------------------------------------------------------------- latency
def latency(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    """Median and 95th percentile in ms of ``fn(i)`` for i in range(n) (after one warm-up)."""
    fn(0)
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def evaluation_rows(split, threads: int, reps: int) -> list[dict[str, Any]]:
    rows = []
    for model in ("mf-bpr", "ease"):
        fitted = create_model(TrainConfig(model=model, threads=threads, epochs=2)).fit(split)
        med, p95 = latency(lambda _i, f=fitted: evaluate_model(f, split, part="test"), reps)
        users = int(np.count_nonzero(split.test_pos.user_counts()))
        rows.append({"operation": f"evaluate_model, test, {model}", "calls": reps,
                     "median ms": med, "p95 ms": p95,
                     "notes": f"{users} users x {split.train.n_items} items, all metrics @10; "
                              f"{users / med * 1000:,.0f} users/s"})
    return rows


def serving_rows(ml, threads: int, calls: int, notes: list[str]) -> list[dict[str, Any]]:
    """Latency of the serving layer (recsys.serving: catalog, index, funnel), when present."""
    try:
        from recsys.serving.catalog import Catalog, recommend, similar_movies
        from recsys.serving.funnel import FunnelConfig, run_funnel
        from recsys.serving.index import VectorIndex
    except ImportError as err:
        notes.append(f"TODO serving latency rows: the serving modules do not import ({err})")
        return []
    run = train_run(ml, PROTOCOLS["P2"], TrainConfig(threads=threads))
    ctx = Catalog.build(run, ml)
    user_ids, item_ids = run.user_ids, run.item_ids
    pick_user = lambda i: int(user_ids[(i * 7919) % len(user_ids)])  # noqa: E731
    pick_item = lambda i: int(item_ids[(i * 104729) % len(item_ids)])  # noqa: E731
    items = run.model.item_factors()
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    flat = VectorIndex(items, metric="cosine", kind="flat")
    ivf = VectorIndex(items, metric="cosine", kind="ivf", nprobe=8)
    n = len(items)
    cases = [
        ("recommend (serving.recommend, mf-bpr, k=10)", lambda i: recommend(ctx, pick_user(i)),
         "DataFrame out, seen masked"),
        ("similar movies (serving.similar_movies, k=10)",
         lambda i: similar_movies(ctx, pick_item(i)), "FAISS cosine + co-occurrence lists"),
        ("funnel (funnel.run_funnel, defaults)",
         lambda i: run_funnel(ctx, pick_user(i), FunnelConfig()), "300 candidates + neighbours"),
        ("nearest items: FAISS flat, 1 query", lambda i: flat.search(items[i % n], 11),
         f"{n} items, dim {items.shape[1]}"),
        ("nearest items: FAISS IVF nprobe=8, 1 query", lambda i: ivf.search(items[i % n], 11),
         f"nlist={ivf.nlist}"),
        ("nearest items: numpy argsort, 1 query",
         lambda i: np.argsort(-(unit @ unit[i % n]))[:11], "full sort of cosines"),
        ("nearest items: FAISS flat, all items batched / item",
         lambda i: flat.search(items, 11), f"one search for all {n} items; cost per item"),
        ("nearest items: numpy argsort, all items batched / item",
         lambda i: np.argsort(-(unit @ unit.T), axis=1)[:, :11],
         f"one matrix product + sort for all {n} items; cost per item"),
    ]
    try:
        from recsys.serving.coldstart import cold_start, fold_in
    except ImportError as err:
        notes.append(f"TODO fold-in latency: recsys.serving.coldstart does not import ({err})")
    else:
        liked = lambda i: [pick_item(i + j) for j in range(5)]  # noqa: E731
        cases[3:3] = [
            ("fold-in (coldstart.fold_in, 5 liked movies)", lambda i: fold_in(ctx, liked(i)),
             "ridge solve against frozen item factors"),
            ("cold start list (coldstart.cold_start, 5 liked, k=10)",
             lambda i: cold_start(ctx, liked(i)), "fold-in + ranking + DataFrame"),
        ]
    rows = []
    for name, fn, note in cases:
        batched = "batched" in name
        med, p95 = latency(fn, max(calls // 20, 3) if batched else calls)
        rows.append({"operation": name, "calls": max(calls // 20, 3) if batched else calls,
                     "median ms": med / n if batched else med,
                     "p95 ms": p95 / n if batched else p95, "notes": note})
    return rows


# Ideas measured while making the fits faster (issue 13), side by side with the plain version.
DID_NOT_PAY = [
    "mf-als, one padded d x d solve per row (as before): 2.2x the CPU time of the L x L "
    "(Woodbury) solves for rows with fewer positives than dimensions (kept: the L x L form)",
    "mf-als, chunks padded to the global longest row: slower than the d x d solves; "
    "chunks of rows within 25% of each other's length are what made the L x L form pay",
    "mf-als, batched Cholesky for the d x d systems: no faster than LU in torch (not kept); "
    "for the L x L systems ~20% faster (kept)",
    "mf-als CG, warm-started from the last sweep's vectors: no fewer steps to the 1e-6 "
    "tolerance (156 vs 145 steps over 15 sweeps), and state between sweeps (not kept)",
    "mf-als CG, a looser tolerance as implicit's fixed 3 steps: 1e-5 takes 5 steps instead "
    "of 7 but leaves a 2.7e-5 relative error, 30x the exact float32 solve's (not kept: the "
    "pinned results are the exact solution)",
    "mf-bpr, lazy / sparse Adam: changes the optimiser's results (pinned), not built; reusing "
    "the gradient buffers between steps instead of allocating them: ~15% of the loop (kept)",
    "mf-bpr step, bmm for dLoss/dp (B x 1 x K times B x K x d): 2.4x the mul-and-sum at "
    "ML-100K batch size; bmm for the outer products g_j p: 17x the broadcast multiply; einsum: "
    "3x the K addcmul_ slices that were kept",
    "mf-bpr step, index_put_(accumulate=True) instead of index_add_ for the item gradient: "
    "1.8x slower at ML-100K batch size, 1.3x at ML-25M's",
    "mf-bpr step, the item gradient as a sparse (items x batch) matrix product: building the "
    "CSR matrix each step (0.5 ms) costs more than the index_add_ it replaces (0.14 ms)",
    "mf-bpr step, foreach Adam instead of the fused kernel: 2.4x slower",
    "mf-bpr on ML-100K against implicit BPR, torch engine: what is left is per-call overhead "
    "(~40 torch calls per step, 880 steps); hence the compiled engine (kept, below), with "
    "the torch engine kept as the tutorial's version and for GPUs",
    "mf-bpr step, grad_p as one bmm of (B,1,K) by (B,K,d): 0.2x the K addcmul_ slices; as a "
    "multiply then sum over K: 0.6x",
    "mf-bpr step, scores as multiply + sum / linalg.vecdot / einsum / multiply + mv(ones): "
    "0.8x / 0.85x / 0.5x / 0.8x of bmm; the item bias folded in with baddbmm: 0.95x",
    "mf-bpr step, gradient scatter by scatter_add_ / scatter_reduce_: 1.0x of index_add_; "
    "int32 indices 0.35x; a sparse COO product 0.4x; one combined user + item index_add_ "
    "0.8x; item indices sorted first (ML-25M): the scatter 2.2x faster but the sort and the "
    "row permutation cost more than it saves",
    "mf-bpr step, item weight decay as 2wd/B x count x W via bincount: 0.85x at ML-100K and "
    "changes the rounding (pinned)",
    "mf-bpr, larger batches (2048-8192, lr 0.005-0.02; measured, defaults unchanged): an "
    "epoch only ~1.25x cheaper, as the step's cost grows with rows, not calls; no setting "
    "beat batch 1024 / lr 0.005 on test Recall@10 beyond noise (P2 best 0.1229 vs 0.1223, "
    "P1 best 0.2238 vs 0.2260)",
    "ML-25M positive-pair bit map (1.27 GB) built from sorted keys with bitwise_or.reduceat: "
    "1.0x (page faults on first touch dominate); MADV_HUGEPAGE on it: inconclusive; "
    "THP_MEM_ALLOC_ENABLE=1 for torch: 1.0x on the step",
]
KEPT = [
    "mf-bpr / mf-bce compiled engine (recsys.models.compiled_sgd; numba, per-sample SGD on "
    "the same loss, draws and L2 as the torch engine; mf-bpr's default on the CPU): inner loops "
    "in float32 with reassociation allowed (vectorised dot products): 20 ML-100K epochs "
    "0.67 -> 0.29 CPU s in the kernel (bench/BPR_ENGINE.md)",
    "mf-als half sweep as conjugate gradient on all rows at once, on the system whitened by "
    "Y^T Y + lambda I (eigenvalues in [1, 1 + alpha]: ~7 steps to a relative residual of "
    "1e-6 at alpha = 1; each step one sampled_addmm and one sparse product over the "
    "positives): 33 -> 6 ms per user half at ML-100K, max relative error 1.0e-6 against the "
    "float64 solution (the exact float32 path: 8.4e-7); test and validation metrics "
    "identical to 6 digits on P1 and P2; rows not converged within the textbook step bound "
    "take the exact solve (tests/test_speed_paths.py)",
    "mf-als CG operator, torch.addmm(z, dots, W, alpha) instead of z + alpha * (dots @ W): "
    "0.139 vs 0.149 ms + an add per step",
    "mf-als CG on the CPU, each row's whole CG in one numba loop (recsys.models.compiled_cg: "
    "the row's vectors in L1, one walk over its positives per operator, the right-hand side "
    "and the start's residual in one walk, each row stopping at its own tolerance): a "
    "half-step at 128 factors, 3 steps, 14-22 -> 8.6-9.7 ms; 15 sweeps 0.50 -> 0.28 CPU s at "
    "128 factors, 0.19 -> 0.14 at 64; same test metrics to 4 digits (bench/ALS.md); a "
    "process's first fit pays ~0.5 s of numba set-up",
    "mf-bpr step (closed-form BPR/BCE gradients, dense Adam as before, same parameters as "
    "autograd to float rounding: tests/test_models.py): scores by bmm instead of a broadcast "
    "multiply-and-sum (ML-25M batch: 52 -> 14 ms), dLoss/dp by K addcmul_ slices instead of a "
    "(B, K, d) temporary (61 -> 12 ms), dLoss/dq written in place into the gathered q",
    "mf-bpr step, the (B, K, d) and (B, d) gathers into buffers kept between steps: a fresh "
    "84 MB tensor per step page-faults (gather 44 ms; into a kept buffer 15 ms); ML-25M-shape "
    "step 285 -> 129 ms (CPU) with the line above",
    "negative sampling, PositiveSet.contains in chunks of 16k rows: one epoch of ML-25M "
    "negatives 6.7 -> 3.4 CPU s, the same draws",
    "negative sampling, each resample round re-checks only the entries it redrew (the same "
    "draws, tests/test_bpr_speed_paths.py): one epoch of ML-25M negatives 3.8 -> 0.8 CPU s; "
    "ML-100K loop 1.06x",
    "mf-bpr step, the parameter tables and their gradients looked up once per fit (detached "
    "aliases, no nn.Module look-ups or no_grad per step), buffer views cached per shape, "
    "fewer ops in the BPR gradient: ML-100K loop 1.07x",
    "mf-bpr / mf-bce / mf-mse, torch's fused Adam kernel called directly once its state "
    "exists (recsys.models.embedding.adam_step; bit-identical parameters, tested against "
    "Optimizer.step): ML-100K loop 1.12x; the three together 1.257 -> 0.994 CPU s (1.27x)",
    "validation and test ranking of factor models (mf-als, svd, mf-bpr, mf-bce) through "
    "recsys.evaluation.topk.top_k_dot: per validation at ML-100K mf-als 45 -> 13 ms, "
    "mf-bpr 16 -> 11 ms "
    "(CPU), the same lists and scores (tests/test_speed_paths.py)",
]


def closing_notes(rows: list[dict[str, Any]]) -> list[str]:
    """The ratios the issue asks for, from this run's CPU seconds."""
    cpu = {row["variant"]: row["cpu s"] for row in rows}
    out = []
    default = next((v for v in cpu if v.startswith("default model")), None)
    if default and "implicit ALS" in cpu:
        out.append(f"{default}: {cpu[default]:.2f} CPU s for the whole fit (validation and "
                   f"refit included); its sweeps alone {cpu['mf-als loop only']:.2f} "
                   f"CPU s = {cpu['mf-als loop only'] / cpu['implicit ALS']:.1f}x implicit ALS's "
                   f"{cpu['implicit ALS']:.2f} (implicit: 3 conjugate-gradient steps per row; "
                   "ours: CG on the whitened system to a relative residual of 1e-6, about 7 "
                   "steps, the exact solution to float32 precision)")
    if "implicit BPR" in cpu:
        loop, torch_loop = cpu["recsys loop only"], cpu["mf-bpr torch loop only"]
        out.append(f"mf-bpr loop only ({TrainConfig().engine} engine): {loop:.2f} CPU s = "
                   f"{loop / cpu['implicit BPR']:.2f}x implicit BPR's {cpu['implicit BPR']:.2f} "
                   f"CPU s (epochs and iterations in the rows) and {loop / torch_loop:.2f}x "
                   f"the torch engine's {torch_loop:.2f}; textbook / mf-bpr default "
                   f"{cpu['textbook'] / cpu['recsys default']:.1f}x, textbook / loop only "
                   f"{cpu['textbook'] / loop:.1f}x, textbook / torch loop only "
                   f"{cpu['textbook'] / torch_loop:.1f}x")
    return (out + [f"kept: {idea}" for idea in KEPT]
            + [f"did not pay: {idea}" for idea in DID_NOT_PAY])


def report(fit_md: str, lat_md: str, notes: list[str], args, reps: int, epochs: int) -> str:
    lines = [
        "## Speed (`bench/speed.py`)",
        "",
        *machine_lines(machine()),
        f"- command: `{command_line()}`",
        f"- device: {resolve_device('auto')} (what `--device auto` picks on this machine; "
        "every variant here runs on the CPU); 1-min load at the end "
        f"{os.getloadavg()[0]:.2f}",
        f"- P2 ({PROTOCOLS['P2'].describe()}); the default model ({DEFAULT_MODEL}) with its "
        f"defaults, and mf-bpr's defaults with {epochs} epochs; torch threads "
        f"{args.threads}; {reps} interleaved repetitions per variant, medians. "
        "The 2 CPUs may be shared with other work (see the load above), so absolute "
        "seconds are noisy; compare the ratios and the CPU seconds (`cpu s`, the process's "
        "own CPU time, less sensitive to other load). `textbook / this (cpu)` > 1 means faster "
        "than the textbook loop.",
        "",
        "### Fit time",
        "",
        fit_md,
        "",
        "### Evaluation and serving latency",
        "",
        lat_md,
        "",
        *[f"- note: {n}" for n in notes],
    ]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
