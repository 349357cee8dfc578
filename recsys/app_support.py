"""Plain-Python helpers behind the Streamlit pages: config field specs for forms, run summaries
and the leaderboard table, and the user tables a page shows. No Streamlit import here, no
metric computation: metrics come from the saved runs (``recsys.evaluation``)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import SplitConfig, TrainConfig
from recsys.data import MovieLens, movies_for
from recsys.models import MODELS
from recsys.runs import Run
from recsys.splits import Split

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
# Display names of the neighbour-quality keys (recsys.neighbours.run_neighbour_quality).
NEIGHBOUR_QUALITY_LABELS = {
    "nq_genre_lift@10": "genre agreement ×random",
    "nq_head_genre_lift@10": "genre agreement, 100 most popular",
    "nq_popularity_pct@10": "popularity percentile",
    "nq_cowatch_lift@10": "co-watch lift",
    "nq_head_cowatch_lift@10": "co-watch lift, 100 most popular",
}
BASELINES = ("popularity", "itemknn", "ease", "svd")
# Form layout: the first fields are shown, the rest go into an "advanced" expander.
MAIN_TRAIN_FIELDS = ("model", "dim", "epochs", "lr", "negatives", "neg_sampling", "alpha",
                     "weight_decay", "batch_size")


@dataclass(frozen=True)
class FieldSpec:
    """What a form needs to render one config field as a widget."""

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    label: str


def field_specs(cls: type, defaults: Any = None) -> list[FieldSpec]:
    """One :class:`FieldSpec` per dataclass field, with the default and help text it declares;
    ``defaults`` (an instance, e.g. ``TrainConfig.for_model("mf-mse")``) overrides defaults."""
    kinds = {"int": int, "float": float, "bool": bool, "str": str}
    specs = []
    for f in fields(cls):
        kind = f.type if isinstance(f.type, type) else kinds.get(str(f.type), str)
        default = f.default if f.default is not MISSING else None
        if defaults is not None:
            default = getattr(defaults, f.name)
        specs.append(FieldSpec(f.name, kind, default, f.metadata.get("help", ""),
                               f.metadata.get("choices"),
                               f.metadata.get("label", f.name.replace("_", " "))))
    return specs


def build_configs(values: dict[str, Any]) -> tuple[SplitConfig, TrainConfig]:
    """Split and train configs from one dict of form values (raises ``ValueError``); fields
    the form did not show take the chosen model's own defaults."""
    split_names = {f.name for f in fields(SplitConfig)}
    train_names = {f.name for f in fields(TrainConfig)} - {"model"}
    split = SplitConfig(**{k: v for k, v in values.items() if k in split_names})
    train = TrainConfig.for_model(values.get("model", TrainConfig.model),
                                  **{k: v for k, v in values.items() if k in train_names})
    return split, train


# ---------------------------------------------------------------------- runs & leaderboard
def protocol_key(config: SplitConfig) -> str:
    """Runs are comparable only when this string is equal (same split, threshold, seed)."""
    return f"{config.describe()} (seed {config.split_seed})"


def run_label(run: Run) -> str:
    """A short line for pickers: model, protocol and headline test metrics."""
    m = run.metrics
    return (f"{run.train_config.model} · {run.split_config.split} · "
            f"R@10 {m.get('recall@10', float('nan')):.3f} · "
            f"N@10 {m.get('ndcg@10', float('nan')):.3f} · {run.name}")


def run_row(run: Run) -> dict[str, Any]:
    """One leaderboard row: identity, test metrics as saved, and training facts."""
    cfg = run.train_config
    row: dict[str, Any] = {"run": run.name, "model": cfg.model}
    for key, label in METRIC_LABELS.items():
        row[label] = run.metrics.get(key, np.nan)
    # NaN, not None: the table shows "–" for models without dimensions or epochs.
    row["dim"] = cfg.dim if "dim" in MODELS[cfg.model].settings else np.nan
    row["epochs"] = len(run.history) or np.nan
    row["fit s"] = run.metrics.get("fit_seconds", np.nan)
    for key, label in NEIGHBOUR_QUALITY_LABELS.items():  # older runs did not measure them
        value = run.metrics.get(key)
        row[label] = value if isinstance(value, (int, float)) else np.nan
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


def history_frame(history: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> pd.DataFrame:
    """Per-epoch stats as a frame with an ``epoch`` column (empty frame for no history)."""
    frame = pd.DataFrame(list(history))
    if frame.empty:
        return pd.DataFrame(columns=["epoch", "loss"])
    if "epoch" not in frame:
        frame["epoch"] = np.arange(1, len(frame) + 1)
    return frame


# ---------------------------------------------------------------------- users & movies
def catalogue(ml: MovieLens, run: Run) -> pd.DataFrame:
    """Movies aligned with the run's item indices (row i = item index i)."""
    return movies_for(ml, run.item_ids)


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


def user_history(ml: MovieLens, run: Run, split: Split, user_index: int) -> pd.DataFrame:
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
    table["part"] = history_parts(run, split, user_index, table["item_id"].to_numpy())
    return table.sort_values("date", ascending=False, kind="stable").reset_index(drop=True)


def history_parts(run: Run, split: Split, user_index: int, item_ids: np.ndarray) -> np.ndarray:
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


def seen_items(run: Run, user_index: int) -> np.ndarray:
    """Item indices the model treats as already seen for this user (excluded by default)."""
    if run.model.seen is None:
        return np.zeros(0, np.int64)
    return run.model.seen[user_index].indices.astype(np.int64)


def mark_hits(frame: pd.DataFrame, held_out_ids: np.ndarray) -> pd.DataFrame:
    """A copy of a recommendation frame with a ``test hit`` column (movie is held out)."""
    out = frame.copy()
    out.insert(1, "test hit", out["item_id"].isin(set(np.asarray(held_out_ids).tolist())))
    return out


def item_indices(run: Run, item_ids) -> np.ndarray:
    """Item indices of raw movie ids in ``run`` (ValueError for an unknown id)."""
    ids = np.asarray(item_ids, np.int64)
    pos = np.searchsorted(run.item_ids, ids)
    if len(ids) and (pos.max() >= len(run.item_ids) or (run.item_ids[pos] != ids).any()):
        raise ValueError("some movie ids are not in this run's catalogue")
    return pos


def map_frame(frame: pd.DataFrame, movies: pd.DataFrame) -> pd.DataFrame:
    """A copy of a projection frame for display: ``popularity`` becomes the number of ratings
    (from ``movies``, aligned with item indices: one meaning of popularity across the app),
    ``genre`` is the first listed genre and ``year`` a float (missing years stay NaN)."""
    out = frame.copy()
    out["popularity"] = movies["popularity"].to_numpy(np.int64)
    if "genres" in out:
        out["genre"] = out["genres"].fillna("").str.split("|").str[0].replace("", "unknown")
    if "year" in out:
        out["year"] = out["year"].astype("Float64").astype(float)
    return out


def selected_ids(event: Any) -> list[int]:
    """Raw item ids of the points selected in a Plotly chart event (a dict or the state
    object), read from each point's ``customdata`` ([id] or {"0": id} from the browser)."""
    if not event:
        return []
    selection = event["selection"] if isinstance(event, dict) else event.selection
    points = selection["points"] if isinstance(selection, dict) else selection.points
    ids = []
    for point in points or ():
        data = point.get("customdata")
        if isinstance(data, dict):
            data = data.get("0", next(iter(data.values()), None))
        elif isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is not None:
            ids.append(int(data))
    return list(dict.fromkeys(ids))


def norm_popularity_correlation(frame: pd.DataFrame) -> float:
    """Spearman rank correlation of vector length and popularity on a projection frame."""
    return float(frame[["popularity", "norm"]].corr(method="spearman").iloc[0, 1])


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A display copy: "Action|Comedy" genres as "Action, Comedy" (attrs dropped)."""
    out = frame.copy()
    out.attrs = {}
    if "genres" in out:
        out["genres"] = out["genres"].fillna("").astype(str).str.replace("|", ", ")
    return out


def neighbour_quality_table(measured: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per similar-movie list (name -> ``nq_*`` dict), with readable column names."""
    rows = [{"list": name, **{label: quality.get(key)
                               for key, label in NEIGHBOUR_QUALITY_LABELS.items()}}
            for name, quality in measured.items()]
    return pd.DataFrame(rows).round(2)
