"""Who a model serves: test Recall@10 per user-activity group (few / medium / many ratings
before the test period), from the per-user values of
:func:`recsys.evaluation.metrics.evaluate_model`.

The groups are the terciles of the evaluated users' rating counts, the same for every run of
one protocol, so the groups' recalls, weighted by their sizes, average back to the overall
Recall@10.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys.evaluation.metrics import evaluate_model

GROUPS = ("few", "medium", "many")
METRIC = "recall@10"


def ratings_before_test(split: Any) -> np.ndarray:
    """Ratings per user index in train + validation (every star, not only positives): what a
    user had given the model before the test period (int64, shape (n_users,))."""
    return split.train.user_counts() + split.valid.user_counts()


def activity_edges(activity: np.ndarray) -> tuple[float, float]:
    """The tercile edges of ``activity`` (ratings per evaluated user): few is ≤ the first,
    many is > the second."""
    low, high = np.quantile(np.asarray(activity, np.float64), [1 / 3, 2 / 3])
    return float(low), float(high)


def activity_group(activity: np.ndarray, edges: tuple[float, float]) -> np.ndarray:
    """Group index per user: 0 = few (≤ edges[0]), 1 = medium, 2 = many (> edges[1])."""
    return np.searchsorted(np.asarray(edges), np.asarray(activity), side="left")


def group_labels(edges: tuple[float, float]) -> list[str]:
    """Readable names of the three groups with their rating ranges."""
    low, high = int(edges[0]), int(edges[1])
    return [f"few (≤ {low} ratings)", f"medium ({low + 1}–{high})", f"many (> {high})"]


def recall_by_activity(per_user: np.ndarray, activity: np.ndarray,
                       edges: tuple[float, float]) -> pd.DataFrame:
    """Mean of ``per_user`` (one value per evaluated user) per activity group: rows
    ``group`` (label), ``users`` and ``recall``."""
    groups = activity_group(activity, edges)
    sizes = np.bincount(groups, minlength=len(GROUPS))
    sums = np.bincount(groups, np.asarray(per_user, np.float64), minlength=len(GROUPS))
    return pd.DataFrame({"group": group_labels(edges), "users": sizes,
                         "recall": np.where(sizes > 0, sums / np.maximum(sizes, 1), np.nan)})


def run_recall_by_activity(model: Any, split: Any) -> pd.DataFrame:
    """Test Recall@10 of a fitted model per activity group of ``split``'s evaluated users
    (re-evaluates the model on test: ~0.1-1 s on ML-100K)."""
    result = evaluate_model(model, split, k=10, part="test")
    activity = ratings_before_test(split)[result.users]
    return recall_by_activity(result.per_user[METRIC], activity, activity_edges(activity))


def pooled_recall(table: pd.DataFrame) -> float:
    """The overall recall from the groups: their recalls weighted by their sizes."""
    sizes = table["users"].to_numpy(np.float64)
    return float(np.nansum(table["recall"].to_numpy() * sizes) / sizes.sum())


def winners_sentence(board: pd.DataFrame) -> str:
    """Which run is best for each activity group, from a frame with a ``run`` and a
    ``model`` column and one column of recalls per group label."""
    groups = [c for c in board.columns if c not in ("run", "model", "overall")]
    parts = []
    for group in groups:
        best = board.loc[board[group].idxmax()]
        parts.append(f"{group.split(' (')[0]}: {best['model']} ({best[group]:.3f})")
    models = {board.loc[board[g].idxmax(), "model"] for g in groups}
    verdict = ("different models win for different users" if len(models) > 1
               else "one model wins for every group")
    sentence = f"Best per group — {'; '.join(parts)}: {verdict}."
    baseline = board[board["model"] == "popularity"]
    others = board[board["model"] != "popularity"]
    if len(baseline) and len(others):
        pop = baseline.iloc[0]
        gains = [f"{others[g].max() / max(pop[g], 1e-12) - 1:+.0%} for {g.split(' (')[0]}"
                 for g in groups]
        sentence += (" The best trained run's recall over popularity's: "
                     f"{', '.join(gains)} users.")
    return sentence
