"""Cold start, measured: how well a new user's list is ranked from n likes, by fold-in,
content, popularity and their blends, for users the model never saw.

Protocol. The default temporal split (``SplitConfig()``) is built on MovieLens 100K. A seeded
permutation of all users (``USER_SEED``) sets 20% aside as *validation* cold users and another
20% as *test* cold users; every event of those users (train, validation and test parts) is
removed, and each model is trained by ``train_run`` on what remains (the other 60% of users,
with their usual early stopping and refit). The frozen model then meets each cold user as new:
their positives (rating >= 4, all parts) sorted by time (ties by item index), the earliest n
revealed as likes, the rest held out; users with fewer than n + 1 positives are skipped for
that n. Rankings exclude the revealed movies; Recall@10 and NDCG@10 are those of
``recsys.evaluation.metrics``. Collaborative and content scores are z-scored per user over the
rankable movies (as ``recsys.serving.coldstart.cold_start`` does) and blended
``w * collaborative + (1 - w) * content``; popularity is the training positives per movie.
The w per n is chosen on validation users and reported on test users.

    python -m bench.coldstart                       # all models, writes bench/COLDSTART.md
    python -m bench.coldstart --small               # < 1 min smoke run, prints the tables
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bench.common import (
    BENCH_DIR,
    command_line,
    machine,
    machine_lines,
    markdown_table,
    timed,
    write_json,
    write_section,
)
from recsys.data.interactions import Interactions
from recsys.data.loading import load_movielens, movies_for
from recsys.data.protocol import SplitConfig
from recsys.data.splits import Split
from recsys.evaluation.metrics import evaluate_scores
from recsys.models.config import TrainConfig
from recsys.serving.coldstart import collaborative_scores, profile_scores, tfidf, zscore_rows
from recsys.storage.runs import prepare_split, train_run

LIST_LENGTH = 10
LIKES = (1, 2, 3, 5, 10, 20)
WEIGHTS = tuple(np.round(np.linspace(0, 1, 11), 1))
USER_SEED, COLD_SHARE = 0, 0.2
MODELS = ("mf-bpr", "mf-als", "mf-bce", "mf-mse", "svd", "itemknn", "ease")


def cold_users(n_users: int, seed: int = USER_SEED, share: float = COLD_SHARE):
    """Two disjoint seeded random sets of user indices (validation, test), ``share`` each."""
    order = np.random.default_rng(seed).permutation(n_users)
    size = int(round(share * n_users))
    return np.sort(order[:size]), np.sort(order[size:2 * size])


def without_users(split: Split, users: np.ndarray) -> Split:
    """``split`` with every event of ``users`` removed from every part (same id mapping)."""
    def keep(part: Interactions) -> Interactions:
        return part.subset(~np.isin(part.user_index, users))
    parts = (split.train, split.valid, split.test, split.train_pos, split.valid_pos,
             split.test_pos)
    return Split(split.config, *(keep(p) for p in parts))


def reveal(positives: Interactions, n: int):
    """Each user's earliest ``n`` positives as likes, the rest held out.

    Returns the kept users (those with > n positives), the revealed item indices (B, n) and
    the held-out positives as a (B, n_items) CSR matrix, row j for user j.
    """
    order = np.lexsort((positives.item_index, positives.timestamps, positives.user_index))
    users, items = positives.user_index[order], positives.item_index[order]
    starts = np.searchsorted(users, users)  # first position of each event's user
    rank = np.arange(len(users)) - starts
    counts = np.bincount(users, minlength=positives.n_users)
    kept = np.flatnonzero(counts > n)
    row = np.full(positives.n_users, -1)
    row[kept] = np.arange(len(kept))
    chosen = row[users] >= 0
    shown = chosen & (rank < n)
    revealed = items[shown].reshape(len(kept), n)  # sorted by user, n each
    rest = chosen & (rank >= n)
    held_out = sp.csr_matrix((np.ones(rest.sum(), np.float32), (row[users[rest]], items[rest])),
                             shape=(len(kept), positives.n_items))
    return kept, revealed, held_out


def measure(model, content: sp.csr_matrix, positives: Interactions, item_counts: np.ndarray,
            likes=LIKES, weights=WEIGHTS, k: int = LIST_LENGTH) -> pd.DataFrame:
    """Recall@k and NDCG@k of collaborative, content, popularity and blended lists for the
    users of ``positives`` folded in from n likes, one row per (n, method, w); "per_user"
    holds the users' Recall@k (the same users, in the same order, for every row of one n)."""
    rows = []
    for n in likes:
        users, revealed, held_out = reveal(positives, n)
        if len(users) == 0:
            continue
        banned = np.zeros(held_out.shape, bool)
        np.put_along_axis(banned, revealed, True, axis=1)
        collab = zscore_rows(collaborative_scores(model, revealed)[0], banned)
        text = zscore_rows(profile_scores(content, revealed), banned)
        lists = {("collaborative", 1.0): collab, ("content", 0.0): text,
                 ("popularity", np.nan): np.broadcast_to(item_counts, held_out.shape)}
        lists.update({("blend", w): w * collab + (1 - w) * text for w in weights})
        for (method, w), scores in lists.items():
            metrics = _metrics(scores, held_out, sp.csr_matrix(banned), item_counts, k)
            rows.append({"likes": n, "users": len(users), "method": method, "w": w, **metrics})
    return pd.DataFrame(rows)


def _metrics(scores, held_out, banned, item_counts, k) -> dict:
    result = evaluate_scores(lambda rows: scores[rows], held_out, banned, item_counts, k)
    return {**{m: result.metrics[m] for m in (f"recall@{k}", f"ndcg@{k}")},
            "per_user": result.per_user[f"recall@{k}"]}


def choose_weights(valid: pd.DataFrame, k: int = LIST_LENGTH) -> dict[int, float]:
    """Per n, the blend weight with the best validation Recall@k (the largest w on ties)."""
    blends = valid[valid["method"] == "blend"].sort_values(["likes", "w"], ascending=False)
    best = blends.loc[blends.groupby("likes")[f"recall@{k}"].idxmax()]
    return {int(n): float(w) for n, w in zip(best["likes"], best["w"], strict=True)}


def report(test: pd.DataFrame, schedule: dict[int, float], k: int = LIST_LENGTH) -> pd.DataFrame:
    """Test rows of the single methods, the blend at the chosen w, the best w on test
    (hindsight) and the old rule's w = min(1, n / 5) (for reference): one row per (n, method),
    with the paired gain in Recall@10 over fold-in alone and its standard error."""
    single = test[test["method"] != "blend"]
    blends = test[test["method"] == "blend"]
    chosen = blends[blends["w"] == blends["likes"].map(schedule)].assign(method="blend (chosen)")
    oracle = blends.loc[blends.groupby("likes")[f"recall@{k}"].idxmax()].assign(
        method="blend (best on test)")
    old = blends[np.isclose(blends["w"], np.minimum(1.0, blends["likes"] / 5))].assign(
        method="blend (old rule w = n/5)")
    table = pd.concat([single, chosen, oracle, old]).sort_values(["likes", "method"])
    collab = table[table["method"] == "collaborative"].set_index("likes")["per_user"]
    gain = [r - collab[n] for n, r in zip(table["likes"], table["per_user"], strict=True)]
    return table.assign(gain=[g.mean() for g in gain],  # paired, over the same users
                        gain_se=[g.std(ddof=1) / np.sqrt(len(g)) for g in gain])


def run_model(name: str, ml, split: Split, train_split: Split, users, small: bool):
    """Trains ``name`` without the cold users and measures it on both cold sets."""
    config = TrainConfig.for_model(name, threads=1)
    if small:
        config = replace(config, epochs=min(config.epochs, 3))
    run, seconds = timed(lambda: train_run(ml, SplitConfig(), config, split=train_split))
    content = tfidf(movies_for(ml, split.train.item_ids))
    counts = train_split.seen_at_test.item_counts()
    everything = split.seen_at_test.concat(split.test_pos)
    likes, weights = ((1, 5), (0.0, 0.5, 1.0)) if small else (LIKES, WEIGHTS)
    parts = {}
    for part, chosen in zip(("valid", "test"), users, strict=True):
        positives = everything.subset(np.isin(everything.user_index, chosen))
        parts[part] = measure(run.model, content, positives, counts, likes, weights)
    schedule = choose_weights(parts["valid"])
    return {"model": name, "fit_seconds": seconds, "warm_recall@10": run.metrics["recall@10"],
            "schedule": schedule, "valid": parts["valid"],
            "test": report(parts["test"], schedule)}


def markdown(results: list[dict], info: dict, users, elapsed: float, seed: int) -> str:
    """The generated section of COLDSTART.md: machine, tables, chosen schedules."""
    lines = [*machine_lines(info), f"- command: `{command_line()}`, {elapsed:.0f} s",
             f"- cold users: {len(users[0])} validation / {len(users[1])} test (seed "
             f"{seed}), removed from training entirely", ""]
    for res in results:
        lines += [f"### {res['model']}", "",
                  f"Trained on the other users in {res['fit_seconds']:.1f} s (warm test "
                  f"Recall@10 {res['warm_recall@10']:.4f}). Chosen on validation: "
                  f"`{res['schedule']}`.", "", "Test Recall@10 (NDCG@10), users per n:", "",
                  _wide(res["test"]), "", "Validation Recall@10 of the blend by w:", "",
                  _grid(res["valid"]), ""]
    return "\n".join(lines) + "\n"


def _wide(table: pd.DataFrame) -> str:
    cell = table.assign(cell=[f"{r:.4f} ({g:.4f})" + (f" w={w:g}" if "blend" in m else "")
                              for r, g, w, m in zip(table["recall@10"], table["ndcg@10"],
                                                    table["w"], table["method"], strict=True)])
    wide = cell.pivot(index="method", columns="likes", values="cell")
    users = table.groupby("likes")["users"].first()
    columns = ["method", *[f"n={n} ({users[n]})" for n in wide.columns]]
    rows = [{"method": m, **{c: v for c, v in zip(columns[1:], wide.loc[m], strict=True)}}
            for m in wide.index]
    chosen = table[table["method"] == "blend (chosen)"].set_index("likes")
    rows.append({"method": "chosen - collaborative (paired SE)",
                 **{c: f"{chosen.loc[n, 'gain']:+.4f} ({chosen.loc[n, 'gain_se']:.4f})"
                    for c, n in zip(columns[1:], wide.columns, strict=True)}})
    return markdown_table(rows, columns)


def constants(results: list[dict]) -> str:
    """The schedules, for each model class's ``blend_by_likes``, and the test curve as Python,
    for ``recsys/serving/coldstart.py``."""
    lines = [f'# {r["model"]}: blend_by_likes = {r["schedule"]}' for r in results]
    lines += ["CURVE = {"]
    for r in results:
        lines.append(f'    "{r["model"]}": {{"collaborative": ({_curve(r, "collaborative")}), '
                     f'"blend": ({_curve(r, "blend (chosen)")})}},')
    lines += ["}", "MODEL_FREE_CURVE = {"]  # content and popularity use no model
    lines += [f'    "{m}": ({_curve(results[0], m)}),' for m in ("content", "popularity")]
    return "\n".join([*lines, "}"])


def _curve(result: dict, method: str) -> str:
    """One method's test Recall@10 at every count of likes, as Python tuple contents."""
    test = result["test"].set_index(["method", "likes"])["recall@10"]
    return ", ".join(f"{test[method, n]:.4f}" for n in LIKES)


def _grid(valid: pd.DataFrame) -> str:
    blends = valid[valid["method"] == "blend"]
    wide = blends.pivot(index="w", columns="likes", values="recall@10")
    columns = ["w", *[f"n={n}" for n in wide.columns]]
    rows = [{"w": f"{w:g}", **{c: float(v) for c, v in zip(columns[1:], wide.loc[w],
                                                             strict=True)}}
            for w in wide.index]
    return markdown_table(rows, columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="mf-bpr and mf-als, 3 epochs, "
                        "n in (1, 5), w in (0, 0.5, 1); prints only")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--results", default=str(BENCH_DIR / "COLDSTART.md"))
    parser.add_argument("--user-seed", type=int, default=USER_SEED,
                        help="seed of the cold users (another seed checks the schedule's noise)")
    args = parser.parse_args(argv)
    info = machine()
    ml = load_movielens(progress=False)
    split = prepare_split(ml, SplitConfig())
    users = cold_users(split.train.n_users, args.user_seed)
    train_split = without_users(split, np.concatenate(users))
    names = ("mf-bpr", "mf-als") if args.small else tuple(args.models.split(","))
    results, elapsed = timed(lambda: [run_model(name, ml, split, train_split, users,
                                                args.small) for name in names])
    body = markdown(results, info, users, elapsed, args.user_seed)
    print(body)
    print(constants(results) if not args.small else "")
    if not args.small:
        write_section(Path(args.results), "coldstart", body)
        write_json(Path(args.results).resolve().parent / "out" / "coldstart.json", [
            {**{k: v for k, v in r.items() if k not in ("valid", "test")},
             "valid": r["valid"].drop(columns="per_user").to_dict("records"),
             "test": r["test"].drop(columns="per_user").to_dict("records")}
            for r in results])
    return 0


if __name__ == "__main__":
    sys.exit(main())
