"""Exporting a run: arrays from which anyone can recompute its test metrics without this
package (factors, biases, id mappings and every pair the evaluation used or masked), and the
TensorFlow Embedding Projector's two TSV files."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.loading import MovieLens, movies_for
from recsys.data.splits import Split
from recsys.errors import BadInputError
from recsys.models import model_names
from recsys.models.base import BIASED_SCORES
from recsys.settings import to_dict
from recsys.storage.runs import Run, prepare_split

RECIPE = (
    "score[u, i] = user_factors[u] @ item_factors[i] + item_bias[i] + user_bias[u] "
    "+ global_mean (the last two are constant per user and do not change a ranking)",
    "row u of user_factors / user_bias is raw user id user_ids[u]; row i of item_factors / "
    "item_bias is raw movie id item_ids[i]; *_pairs are raw (user_id, movie_id) rows",
    "test metrics: rank every movie for each user with at least one test pair, after setting "
    "the score of the user's train_pairs and valid_pairs movies to -inf (the model knew both: "
    "it was refitted on train + validation when refit is true, and evaluation masks both "
    "anyway)",
    "take the top k; recall@k = hits / (the user's test pairs); ndcg@k = sum over hits at "
    "rank r (1-based) of 1/log2(r + 1), divided by the same sum over ranks 1..min(k, the "
    "user's test pairs); average both over those users",
    "validation metrics of the model before its refit are not reproducible from these arrays "
    "(the refit replaced it)",
)


def npz_arrays(run: Run, ml: MovieLens, split: Split | None = None) -> dict[str, np.ndarray]:
    """A run's arrays for ``np.savez``: enough to recompute its test Recall/NDCG@k.

    Returns
    -------
    ``item_factors`` (n_items, d) float32, ``user_factors`` (n_users, d) float32 when the
    model has user vectors, ``item_bias`` (n_items,) and ``user_bias`` (n_users,) float32
    (zeros for models without), ``user_ids`` / ``item_ids`` int64 (row -> raw id),
    ``titles`` str, ``train_pairs`` / ``valid_pairs`` / ``test_pairs`` (n, 2) int64 raw
    (user_id, movie_id), and ``meta``: a 0-d str array of JSON with the recipe, the run's
    metrics, configs and whether the factors reproduce the model's scores (``score_is_dot``;
    false for ncf and ease, whose scores are not a dot product of these vectors).
    """
    run.check_dataset(ml)
    split = split or prepare_split(ml, run.split_config)
    if not (np.array_equal(split.train.item_ids, run.item_ids)
            and np.array_equal(split.train.user_ids, run.user_ids)):
        raise BadInputError("the run's id mappings differ from the split's: retrain the run")
    model = run.model
    items = _item_factors(run)
    item_bias, user_bias, global_mean = _biases(model)
    arrays: dict[str, np.ndarray] = {"item_factors": np.asarray(items, np.float32)}
    users = model.user_factors()
    if users is not None:
        arrays["user_factors"] = np.asarray(users, np.float32)
    arrays.update({
        "item_bias": item_bias,
        "user_bias": user_bias,
        "user_ids": np.asarray(run.user_ids, np.int64),
        "item_ids": np.asarray(run.item_ids, np.int64),
        "titles": movies_for(ml, run.item_ids)["title"].to_numpy(str),
        "train_pairs": split.train_pos.raw_pairs(),
        "valid_pairs": split.valid_pos.raw_pairs(),
        "test_pairs": split.test_pos.raw_pairs(),
    })
    meta = _meta(run, split, global_mean, _score_is_dot(model, arrays, global_mean))
    arrays["meta"] = np.array(json.dumps(meta, indent=1))
    return arrays


def projector_tables(run: Run, ml: MovieLens) -> tuple[np.ndarray, pd.DataFrame]:
    """What the TensorFlow Embedding Projector loads: the item factors (one row per movie,
    written as ``vectors.tsv``) and a metadata table (title, genres, year, popularity =
    number of ratings; ``metadata.tsv``), rows aligned."""
    run.check_dataset(ml)
    items = _item_factors(run)
    meta = movies_for(ml, run.item_ids)[["title", "genres", "year", "popularity"]].copy()
    meta["title"] = meta["title"].str.replace("\t", " ")
    return items, meta


def _item_factors(run: Run) -> np.ndarray:
    items = run.model.item_factors()
    if items is None:
        raise BadInputError(f"{run.train_config.model} has no item embeddings to export; "
                         f"export a run of {', '.join(model_names(item_vectors=True))}")
    return items


def _biases(model: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(item bias, user bias, global mean): the MF module's, zeros for other models."""
    item_bias = np.zeros(model.n_items, np.float32)
    user_bias = np.zeros(model.n_users, np.float32)
    if model.score_kind in BIASED_SCORES:  # the MF models' score parts (as serving.score_parts)
        item_bias = np.asarray(model.item_biases(), np.float32)
        user_bias = np.asarray(model.user_biases(), np.float32)
    return item_bias, user_bias, model.global_mean()


def _score_is_dot(model: Any, arrays: dict[str, np.ndarray], global_mean: float) -> bool:
    """Whether the exported recipe gives the model's own scores (checked on a few users)."""
    if "user_factors" not in arrays:
        return False
    users = np.arange(min(64, model.n_users))
    dot = (arrays["user_factors"][users].astype(np.float64) @ arrays["item_factors"].T
           + arrays["item_bias"] + arrays["user_bias"][users, None] + global_mean)
    return bool(np.allclose(dot, model.score(users), rtol=1e-4, atol=1e-4))


def _meta(run: Run, split: Split, global_mean: float, score_is_dot: bool) -> dict[str, Any]:
    k = int(run.metrics.get("protocol", {}).get("k", 10))
    return {
        "model": run.train_config.model,
        "score_is_dot": score_is_dot,
        "recipe": list(RECIPE) if score_is_dot else [
            f"{run.train_config.model}'s scores are not a dot product of these vectors: the "
            "factors give its similarity space, not its metrics", *RECIPE[1:]],
        "global_mean": global_mean,
        "k": k,
        "refit": bool(run.train_config.refit),
        "masked_at_test": ["train_pairs", "valid_pairs"],
        "relevant_at_test": "test_pairs",
        "test_metrics": {name: run.metrics.get(f"{name}@{k}")
                         for name in ("recall", "ndcg", "precision", "mrr", "hit")},
        "split": {**to_dict(run.split_config), "description": split.config.describe()},
        "train": to_dict(run.train_config),
        "dataset": run.dataset,
    }
