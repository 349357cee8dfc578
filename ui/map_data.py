"""Cached data of the Embedding map page: the training replay in the map's frame, semantic
axes and a movie's neighbours. Maths in ``recsys``; here only caching per run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from recsys import neighbours, projection, replay, serving
from recsys.runs import Run
from ui import shared
from ui.map_figures import Colouring, map_figure, replay_figure


@dataclass(frozen=True, eq=False)
class ReplayView:
    """The replay of a run placed in its PCA map: ``coords`` (t, n, 2) float32 for
    ``epochs`` (t,), ``lengths`` (t, n) vector lengths, the recorded ``phase``, the file's
    size in bytes and how long placing took."""

    epochs: np.ndarray
    coords: np.ndarray
    lengths: np.ndarray
    phase: str
    file_bytes: int
    seconds: float


def _weights_stamp(run: Run) -> int:
    """Part of every cache key: when the run's weights were written (ns)."""
    return (Path(run.path) / "weights.npz").stat().st_mtime_ns


def _replay_stamp(run: Run) -> int:
    try:
        return (Path(run.path) / replay.FILE).stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(show_spinner="Placing the training snapshots on the map…", max_entries=8)
def _replay_view(path: str, stamp: int, replay_stamp: int) -> ReplayView | str | None:
    import time

    started = time.perf_counter()
    run = shared.run_by_path(path)
    final = run.model.item_factors()
    try:
        recorded = replay.load_replay(path, *final.shape)
    except replay.ReplayError as err:
        return str(err)
    if recorded is None:
        return None
    pca = shared.projection(run, "pca")
    coords = replay.replay_coordinates(recorded, final, pca.pca_mean, pca.pca_components)
    lengths = np.linalg.norm(recorded.items.astype(np.float32), axis=2)
    return ReplayView(recorded.epochs, coords.astype(np.float32), lengths, recorded.phase,
                      (Path(path) / replay.FILE).stat().st_size, time.perf_counter() - started)


def replay_view(run: Run) -> ReplayView | str | None:
    """The run's replay in its PCA frame; None when the run has none, the reason (a str) when
    its replay.npz is damaged. Never raises for a bad file."""
    return _replay_view(str(run.path), _weights_stamp(run), _replay_stamp(run))


@st.cache_resource(show_spinner=False, max_entries=32)
def _replay_chart(path: str, stamp: int, replay_stamp: int, colouring: Colouring,
                  movie: int | None) -> go.Figure:
    recorded = _replay_view(path, stamp, replay_stamp)
    frame = shared.projection_frame(shared.run_by_path(path), "pca")
    return replay_figure(frame, colouring, recorded.coords, recorded.epochs, recorded.lengths,
                         movie=movie, phase=recorded.phase)


def replay_chart(run: Run, colouring: Colouring, movie: int | None) -> go.Figure:
    """The replay figure of ``run`` (:func:`replay_view` must have returned a ReplayView):
    built once per colouring and movie, ~0.1-1 s, then shared read-only."""
    return _replay_chart(str(run.path), _weights_stamp(run), _replay_stamp(run), colouring, movie)


@st.cache_resource(show_spinner=False, max_entries=32)
def _map_chart(path: str, stamp: int, method: str, colouring: Colouring, x: np.ndarray,
               y: np.ndarray, movie: int | None, near: tuple[int, ...], hits: np.ndarray | None,
               x_title: str | None, y_title: str | None, log_y: bool) -> go.Figure:
    frame = shared.projection_frame(shared.run_by_path(path), method)
    return map_figure(frame, colouring, x, y, movie=movie, neighbours=list(near), hits=hits,
                      x_title=x_title, y_title=y_title, log_y=log_y)


def map_chart(run: Run, method: str, colouring: Colouring, x: np.ndarray, y: np.ndarray,
              movie: int | None = None, near: list[int] = (), hits: np.ndarray | None = None,
              x_title: str | None = None, y_title: str | None = None,
              log_y: bool = False) -> go.Figure:
    """:func:`ui.map_figures.map_figure` of the run's ``method`` frame at ``x``, ``y``: built
    once per positions, colouring, movie and search hits, then shared read-only (a control
    that comes back to an earlier choice redraws without rebuilding)."""
    return _map_chart(str(run.path), _weights_stamp(run), method, colouring,
                      np.asarray(x, np.float64), np.asarray(y, np.float64), movie,
                      tuple(int(n) for n in near), hits, x_title, y_title, log_y)


@st.cache_data(show_spinner=False, max_entries=64)
def _axis(path: str, stamp: int, start: str, end: str) -> np.ndarray:
    run = shared.run_by_path(path)
    genres = shared.catalogue(run)["genres"]
    return projection.semantic_axis(run.model.item_factors(),
                                    projection.genre_mask(genres, start),
                                    projection.genre_mask(genres, end))


def genre_axis(run: Run, start: str, end: str) -> np.ndarray:
    """(n_items,) positions on the axis from genre ``start`` to genre ``end`` (0 = the mean
    ``start`` movie, 1 = the mean ``end`` movie). ValueError when it cannot be drawn."""
    return _axis(str(run.path), _weights_stamp(run), start, end)


def neighbour_ids(ctx: serving.Catalog, movie: int, k: int = 10) -> list[int]:
    """The ``k`` nearest movies to ``movie`` by cosine of the run's item vectors (the Similar
    movies page's list); empty for a movie with too few likes to have a trained vector."""
    if ctx.item_counts[ctx.item_indices([movie])[0]] < neighbours.MIN_POSITIVES:
        return []
    return [int(i) for i in serving.similar_movies(ctx, movie, k=k, lens="cosine")
            .embedding["item_id"]]
