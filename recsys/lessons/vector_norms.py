"""Vector length against popularity: how regularisation shapes the movie vectors. Rarely
rated movies get few gradient steps, so weight decay keeps their vectors short; under a dot
product a long vector is a built-in popularity boost (cosine similarity ignores it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.errors import BadInputError
from recsys.linalg import spearman


def norms_frame(item_factors: np.ndarray, popularity: np.ndarray) -> pd.DataFrame:
    """One row per movie: ``item`` index, ``likes`` (its popularity: the likes the model was
    fitted on) and ``length`` (the L2 norm of its vector)."""
    factors = np.asarray(item_factors, np.float64)
    popularity = np.asarray(popularity)
    if len(factors) != len(popularity):
        raise BadInputError(f"{len(factors)} item vectors but {len(popularity)} popularity values")
    return pd.DataFrame({"item": np.arange(len(factors)), "likes": popularity,
                         "length": np.linalg.norm(factors, axis=1)})


def norm_summary(frame: pd.DataFrame) -> dict[str, float]:
    """Rank correlation of length with popularity, and the median length of the least and
    the most liked tenth of the movies (and their ratio)."""
    order = frame["likes"].to_numpy().argsort(kind="stable")
    tenth = max(len(order) // 10, 1)
    lengths = frame["length"].to_numpy()
    rare, popular = np.median(lengths[order[:tenth]]), np.median(lengths[order[-tenth:]])
    rho = spearman(frame["likes"], frame["length"]) if len(frame) > 2 else np.nan
    return {"spearman": float(rho), "rare_median": float(rare),
            "popular_median": float(popular), "ratio": float(popular / max(rare, 1e-12))}


def norms_lesson(summaries: dict[str, dict[str, float]]) -> str:
    """One sentence on the lesson, from :func:`norm_summary` of each chosen run (by label)."""
    if not summaries:
        return ""
    parts = [f"{label}: {_compare_tenths(s)} (Spearman ρ = {s['spearman']:.2f})"
             for label, s in summaries.items()]
    return ("Movies with few likes in training get few gradient steps: with enough weight "
            "decay their vectors shrink towards zero while popular ones stay long, so under a "
            "dot product length works as a popularity boost (cosine ignores it); with little "
            "decay rare movies keep their random starting length — " + "; ".join(parts) + ".")


def _compare_tenths(summary: dict[str, float]) -> str:
    """The most against the least liked tenth: a ratio, unless the rare vectors are (nearly)
    zero (movies no one liked in training keep a zero vector in EASE or SVD), where a ratio
    would be a meaningless huge number."""
    if summary["rare_median"] < 0.01 * summary["popular_median"]:
        return (f"the most liked tenth's median length is {summary['popular_median']:.3g}, "
                f"the least liked tenth's is near zero ({summary['rare_median']:.2g})")
    return f"the most liked tenth is {summary['ratio']:.1f}× as long as the least liked"
