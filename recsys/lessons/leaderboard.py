"""The leaderboard: which saved runs are comparable, one row per run with its test metrics
as saved (nothing is recomputed here), and whether a run beats popularity."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys.data.protocol import SplitConfig
from recsys.models import MODELS, model_names
from recsys.settings import to_dict
from recsys.storage.runs import Run

# Display names of the saved metric keys, in leaderboard order.
METRIC_LABELS = {
    "recall@10": "Recall@10",
    "precision@10": "Precision@10",
    "ndcg@10": "NDCG@10",
    "mrr@10": "MRR@10",
    "coverage@10": "Coverage@10",
    "novelty@10": "Novelty@10",
    "rmse": "RMSE",
}
# Display names of the neighbour-quality keys (recsys.evaluation.neighbours.run_neighbour_quality).
NEIGHBOUR_QUALITY_LABELS = {
    "nq_genre_lift@10": "genre agreement ×random",
    "nq_head_genre_lift@10": "genre agreement, 100 most popular",
    "nq_popularity_pct@10": "popularity percentile",
    "nq_cowatch_lift@10": "co-watch lift",
    "nq_head_cowatch_lift@10": "co-watch lift, 100 most popular",
}
BASELINES = model_names(iterative=False)  # fitted in one go: the bars a trained model must beat


# ---------------------------------------------------------------------- runs & leaderboard
def protocol_key(config: SplitConfig) -> str:
    """Runs are comparable only when this string is equal (same split, threshold, seed)."""
    return f"{config.describe()} (seed {config.split_seed})"


def run_row(run: Run) -> dict[str, Any]:
    """One leaderboard row: identity, test metrics as saved, and training facts."""
    cfg = run.train_config
    row: dict[str, Any] = {"run": run.name, "model": cfg.model}
    # NaN for anything that is not a number (a metric the run did not record, or a damaged
    # value): the table shows "–" and sorting never fails.
    for key, label in {**METRIC_LABELS, **NEIGHBOUR_QUALITY_LABELS}.items():
        row[label] = _number(run.metrics.get(key))
    row["dim"] = cfg.dim if "dim" in MODELS[cfg.model].settings else np.nan
    row["epochs"] = len(run.history) or np.nan
    row["fit s"] = _number(run.metrics.get("fit_seconds"))
    row["protocol"] = protocol_key(run.split_config)
    return row


def leaderboard(runs: list[Run], protocol: str) -> pd.DataFrame:
    """Rows of the runs with ``protocol``, best Recall@10 first."""
    rows = [run_row(r) for r in runs if protocol_key(r.split_config) == protocol]
    if not rows:
        return pd.DataFrame(columns=["run", "model", *METRIC_LABELS.values()])
    board = pd.DataFrame(rows).drop(columns="protocol")
    for column in ("dim", "epochs"):  # text, so a missing value reads "–", not "None"
        board[column] = board[column].map(lambda v: "–" if pd.isna(v) else str(int(v)))
    if board["RMSE"].isna().all():
        board = board.drop(columns="RMSE")
    return board.sort_values("Recall@10", ascending=False, kind="stable").reset_index(drop=True)


def verdict(board: pd.DataFrame, run_name: str) -> tuple[bool | None, str]:
    """Whether ``run_name`` beats the best popularity run of the same board on Recall@10 and
    NDCG@10, as (beats, sentence). ``beats`` is None when there is nothing to compare."""
    mine = board[board["run"] == run_name]
    pop = board[board["model"] == "popularity"]
    if mine.empty:
        return None, f"Run {run_name} is not on this protocol's leaderboard."
    if pop.empty:
        return None, ("No popularity baseline on this protocol yet: train the baselines to see "
                      "whether the model beats it.")
    me, base = mine.iloc[0], pop.sort_values("Recall@10").iloc[-1]
    if me["model"] == "popularity":
        return None, "The selected run *is* the popularity baseline."
    r_gain = me["Recall@10"] / max(base["Recall@10"], 1e-12) - 1
    beats = bool(me["Recall@10"] > base["Recall@10"] and me["NDCG@10"] > base["NDCG@10"])
    word = "beats" if beats else "does NOT beat"
    return beats, (
        f"{me['model']} ({run_name}) {word} popularity on the same protocol: "
        f"Recall@10 {me['Recall@10']:.3f} vs {base['Recall@10']:.3f} ({r_gain:+.0%}), "
        f"NDCG@10 {me['NDCG@10']:.3f} vs {base['NDCG@10']:.3f}."
    )


EMBEDDING_MODELS = model_names(item_vectors=True, user_vectors=True)  # vectors for both sides
# What tuning on validation found (bench/TUNING.md, bench/ALS.md; issue 24), said beside
# the live comparison so no one reads the default runs as the ceiling.
TUNED_AGAINST_EASE = (
    "Tuned on validation (bench/ALS.md): on the temporal split (the default) mf-als with "
    "recency-weighted confidence (als_recency 2: a like's extra confidence halves with every "
    "two later likes of the same user) beats EASE on both test metrics, Recall@10 0.154 vs "
    "0.141 and NDCG@10 0.172 vs 0.158, in 0.6x EASE's fit time (median of 3 runs). On the "
    "random split, where the order of a user's likes says nothing about the held-out ones, "
    "validation keeps recency off: the tuned mf-als beats EASE's Recall@10 (0.250 vs 0.248) "
    "in half its fit time and stays 0.001 below its NDCG@10 (0.319 vs 0.320; 0.324 on "
    "average over 3 seeds).")


def against_ease(board: pd.DataFrame) -> str | None:
    """One plain sentence: which embedding model on this board comes closest to EASE (the
    strongest linear baseline), whether it reaches EASE's Recall@10 *and* NDCG@10, and at what
    fit time. None without an EASE run or an embedding-model run on the board."""
    ease = board[board["model"] == "ease"].sort_values("Recall@10").tail(1)
    embedded = board[board["model"].isin(EMBEDDING_MODELS)].dropna(subset=["Recall@10"])
    if ease.empty or embedded.empty:
        return None
    base, best = ease.iloc[0], embedded.sort_values("Recall@10").iloc[-1]
    at_level = bool(best["Recall@10"] >= base["Recall@10"] and best["NDCG@10"] >= base["NDCG@10"])
    cost = ""
    if np.isfinite(best["fit s"]) and np.isfinite(base["fit s"]) and base["fit s"] > 0:
        cost = f", fitted in {best['fit s'] / base['fit s']:.1f}x EASE's time"
    level = ("is at EASE's level" if at_level else
             "reaches EASE's Recall@10 but not its NDCG@10"
             if best["Recall@10"] >= base["Recall@10"] else "is below EASE")
    return (f"The best embedding model here, {best['model']} ({best['run']}), {level}: "
            f"Recall@10 {best['Recall@10']:.3f} vs {base['Recall@10']:.3f}, NDCG@10 "
            f"{best['NDCG@10']:.3f} vs {base['NDCG@10']:.3f}{cost}.")


def curve_runs(runs: list[Run], protocol: str) -> tuple[list[Run], list[Run]]:
    """Runs with training curves (a per-epoch history), split into those on ``protocol`` and
    those on other protocols (never drawn on the same chart)."""
    with_curves = [r for r in runs if r.history]
    return ([r for r in with_curves if protocol_key(r.split_config) == protocol],
            [r for r in with_curves if protocol_key(r.split_config) != protocol])


def curves_frame(runs: list[Run], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Long frame of the runs' per-epoch ``loss`` and ``valid_recall@10`` (NaN when a run did
    not record it), one row per run and epoch, with a ``label`` per run."""
    frames = []
    for run in runs:
        frame = pd.DataFrame(list(run.history))
        if frame.empty:
            continue
        if "epoch" not in frame:
            frame["epoch"] = np.arange(1, len(frame) + 1)
        frame = frame.reindex(columns=["epoch", "loss", "valid_recall@10"])
        frame.insert(0, "label", (labels or {}).get(run.name, run.name))
        frame.insert(0, "run", run.name)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", "label", "epoch", "loss", "valid_recall@10"])
    return pd.concat(frames, ignore_index=True)


def setting_labels(runs: list[Run]) -> dict[str, str]:
    """A short legend label per run: its model and the settings (that the model reads) in
    which it differs from the other runs of the same model, e.g. "mf-bpr · lr=0.01"."""
    settings = {r.name: to_dict(r.train_config) for r in runs}
    labels = {}
    for run in runs:
        model = run.train_config.model
        peers = [settings[r.name] for r in runs if r.train_config.model == model]
        differing = [k for k in MODELS[model].settings if k not in ("device", "threads")
                     and len({repr(p.get(k)) for p in peers}) > 1]
        shown = [f"{k}={_setting_text(settings[run.name].get(k))}" for k in differing]
        labels[run.name] = " · ".join([model, *shown])
    if len(set(labels.values())) < len(labels):  # same settings: tell them apart by name
        labels = {name: f"{label} · {name}" for name, label in labels.items()}
    return labels


def contrasting_runs(runs: list[Run], field: str) -> list[str]:
    """Names of two runs of one model that differ in setting ``field`` and in as few other
    settings as possible (then: the most different ``field``, relative to the larger value),
    e.g. a small and a large weight decay with all else equal; else the first two runs."""
    best: tuple[int, float] | None = None
    chosen = [r.name for r in runs[:2]]
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            if a.train_config.model != b.train_config.model:
                continue
            va, vb = getattr(a.train_config, field), getattr(b.train_config, field)
            if va == vb:
                continue
            da, db = to_dict(a.train_config), to_dict(b.train_config)
            others = sum(da[k] != db.get(k) for k in MODELS[a.train_config.model].settings
                         if k not in (field, "device", "threads"))
            rank = (others, -abs(va - vb) / max(abs(va), abs(vb)))
            if best is None or rank < best:
                best, chosen = rank, [a.name, b.name] if va < vb else [b.name, a.name]
    return chosen


def neighbour_quality_table(measured: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per similar-movie list (name -> ``nq_*`` dict), with readable column names."""
    rows = [{"list": name, **{label: quality.get(key)
                               for key, label in NEIGHBOUR_QUALITY_LABELS.items()}}
            for name, quality in measured.items()]
    return pd.DataFrame(rows).round(2)


def _setting_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else np.nan
