"""Cached numbers of the Train page's lessons (negative sampling, curves, norms, who the model
serves). Keyed by the run folder's path plus the mtime of its weights, like ``ui.shared``, so
a retrained folder is never served stale; the maths lives in ``recsys``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from recsys import negative_mix as nm
from recsys import segments
from recsys import vector_norms as vn
from recsys.config import SplitConfig
from recsys.runs import Run
from ui import shared


def _stamp(run: Run) -> int:
    return (Path(run.path) / "weights.npz").stat().st_mtime_ns


@st.cache_data(show_spinner=False, max_entries=64)
def negative_mix(split_config: SplitConfig, negatives: int, neg_sampling: str,
                 alpha: float) -> pd.DataFrame:
    """Positives and one epoch of sampled negatives by popularity decile, on the training
    positives of ``split_config``'s split (drawn with seed 0, so the chart is stable)."""
    split = shared.split_for(split_config)
    return nm.negative_mix(split.train_pos, negatives, neg_sampling, alpha, seed=0)


@st.cache_data(show_spinner=False, max_entries=256)
def _recall_by_activity(path: str, stamp: int) -> pd.DataFrame:
    run = shared.run_by_path(path)
    return segments.run_recall_by_activity(run.model, shared.split_for(run.split_config))


def recall_by_activity(run: Run) -> pd.DataFrame:
    """Test Recall@10 of ``run`` per user-activity tercile (cached per run)."""
    return _recall_by_activity(str(run.path), _stamp(run))


def activity_board(runs: list[Run]) -> pd.DataFrame:
    """One row per run: ``run``, ``model``, ``overall`` and a recall column per group."""
    rows = []
    for run in runs:
        table = recall_by_activity(run)
        rows.append({"run": run.name, "model": run.train_config.model,
                     **dict(zip(table["group"], table["recall"], strict=True)),
                     "overall": segments.pooled_recall(table)})
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False, max_entries=64)
def _norms(path: str, stamp: int) -> pd.DataFrame:
    run = shared.run_by_path(path)
    movies = shared.catalogue(run)
    # the likes the saved model was fitted on: train + validation after a refit, else train
    split = shared.split_for(run.split_config)
    fitted_on = split.seen_at_test if run.train_config.refit else split.train_pos
    frame = vn.norms_frame(run.model.item_factors(), fitted_on.item_counts())
    frame["title"] = movies["title"].to_numpy()
    return frame


def norms(run: Run) -> pd.DataFrame:
    """Per movie of ``run``: likes in training, vector length and title (cached per run)."""
    return _norms(str(run.path), _stamp(run))
