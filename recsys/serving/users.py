"""A run's users as tables: who they are, what they rated, and where each rating sits in the
evaluation protocol (train, validation, a held-out test like)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.loading import MovieLens
from recsys.data.splits import Split
from recsys.storage.runs import Run


def user_table(ml: MovieLens, run: Run) -> pd.DataFrame:
    """One row per user index of the run: id, demographics and number of ratings."""
    users = pd.DataFrame({"user_index": np.arange(len(run.user_ids)), "user_id": run.user_ids})
    info = ml.users.drop_duplicates("user_id")
    users = users.merge(info, on="user_id", how="left")
    counts = ml.ratings["user_id"].value_counts()
    users["ratings"] = counts.reindex(users["user_id"], fill_value=0).to_numpy(np.int64)
    return users


def user_labels(users: pd.DataFrame) -> dict[int, str]:
    """Picker labels by raw user id, e.g. "user 42 · 25M · student · 120 ratings"."""
    return {int(row["user_id"]): user_label(row) for _, row in users.iterrows()}


def user_label(row: pd.Series) -> str:
    parts = [f"user {row['user_id']}"]
    if pd.notna(row.get("age")):
        parts.append(f"{row['age']}{row.get('gender') or ''}")
    if isinstance(row.get("occupation"), str):
        parts.append(row["occupation"])
    parts.append(f"{row['ratings']} ratings")
    return " · ".join(parts)


def user_ratings(ml: MovieLens, run: Run, split: Split, user_index: int) -> pd.DataFrame:
    """The user's ratings, newest first, with the split part each one belongs to."""
    user_id = int(run.user_ids[user_index])
    rated = ml.ratings[ml.ratings["user_id"] == user_id]
    movies = ml.movies.drop_duplicates("item_id").set_index("item_id")
    table = pd.DataFrame({
        "item_id": rated["item_id"].to_numpy(np.int64),
        "title": movies["title"].reindex(rated["item_id"]).to_numpy(),
        "rating": rated["rating"].to_numpy(),
        "date": pd.to_datetime(rated["timestamp"].to_numpy(), unit="s").date,
        "genres": movies["genres"].reindex(rated["item_id"]).fillna("").str.replace("|", ", "),
    })
    table["part"] = rating_parts(run, split, user_index, table["item_id"].to_numpy())
    return table.sort_values("date", ascending=False, kind="stable").reset_index(drop=True)


def rating_parts(run: Run, split: Split, user_index: int, item_ids: np.ndarray) -> np.ndarray:
    """Where each of the user's rated movies sits in the protocol: "train", "validation",
    "test · liked" (a held-out positive: what a hit is scored on) or "test · not liked" (a
    rating below the positive threshold in the test part, e.g. after the user's test
    cut-off). For a random split the parts are random draws, not periods."""
    parts = np.full(len(item_ids), "train", dtype=object)
    for interactions, label in ((split.valid, "validation"),
                                (split.test, "test · not liked"),
                                (split.test_pos, "test · liked")):
        mine = interactions.item_index[interactions.user_index == user_index]
        parts[np.isin(item_ids, run.item_ids[mine])] = label
    return parts


def held_out_items(run: Run, split: Split, user_index: int) -> np.ndarray:
    """Raw movie ids of the user's held-out test positives (the answers a hit is scored on)."""
    test = split.test_pos
    items = test.item_index[test.user_index == user_index]
    return np.asarray(run.item_ids[items], np.int64)


def mark_hits(frame: pd.DataFrame, held_out_ids: np.ndarray) -> pd.DataFrame:
    """A copy of a recommendation frame with a ``test hit`` column (movie is held out)."""
    out = frame.copy()
    out.insert(1, "test hit", out["item_id"].isin(set(np.asarray(held_out_ids).tolist())))
    return out
