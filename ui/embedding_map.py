"""The Embedding map page's figures and cached data: the movie map (coloured by a genre,
popularity, vector length or year, with a chosen movie's neighbour lines) and the training
replay (one frame per snapshot, played in the browser), cached per run with the replay placed
in the map's frame, semantic axes and a movie's neighbours. Positions, axes and neighbours come
from ``recsys``; here only drawing and caching."""


from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from recsys.evaluation import map_structure, neighbours
from recsys.lessons import projection
from recsys.lessons.projection import genre_mask
from recsys.serving import catalog as serving
from recsys.storage import replay
from recsys.storage.runs import Run
from ui import shared

ALL_GENRES = "all genres"
REGIONS = 7  # labelled regions of the item map: enough to name its parts, few enough to read
COLOURS = {"genre": "genre", "popularity": "popularity (ratings)", "length": "vector length",
           "year": "year"}
OTHERS = "#C9CCD1"  # movies outside the chosen genre
MEMBERS = "#D1495B"
CHOSEN = "#E4572E"
# Kelly's colours of maximum contrast (white and black left out): the 18 genres of ML-100K
# stay tellable apart, where Dark24 gave five of them near-identical pinks.
KELLY = ["#F3C300", "#875692", "#F38400", "#A1CAF1", "#BE0032", "#C2B280", "#848482",
         "#008856", "#E68FAC", "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C",
         "#DCD300", "#882D17", "#8DB600", "#654522", "#E25822", "#2B3D26"]
PALETTE = KELLY + px.colors.qualitative.Dark24


@dataclass(frozen=True)
class Colouring:
    """What the points are coloured by: ``by`` (a key of :data:`COLOURS`) and, for genre,
    ``genre`` (a genre name, or :data:`ALL_GENRES` for one layer per genre)."""

    by: str = "genre"
    genre: str = ALL_GENRES


def genre_names(frame: pd.DataFrame) -> list[str]:
    """The genres listed in the frame's ``genres`` column, sorted ("unknown" left out)."""
    names = {g for gs in frame["genres"].fillna("").astype(str) for g in gs.split("|")}
    return sorted(names - {"", "unknown"})


@shared.per_run(st.cache_resource, show_spinner=False, max_entries=32)
def run_genres(run: Run) -> tuple[str, ...]:
    """:func:`genre_names` of the run's catalogue, once per run (shared, read-only): read
    from the Arrow-backed genres column on every page view it cost 5 ms of CPU (measured)."""
    return tuple(genre_names(shared.catalogue(run)))


def _hover(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(hover texts, customdata) of every point; customdata[0] is the item id, read back by
    :func:`ui.display.selected_ids`."""
    genres = frame["genres"].fillna("").astype(str).str.replace("|", ", ")
    text = np.array([f"<b>{label}</b><br>{html.escape(g)}<br>{p:,} ratings · length {n:.2f}"
                     for label, g, p, n in zip(frame["label"], genres, frame["popularity"],
                                               frame["norm"], strict=True)], dtype=object)
    return text, frame[["item_id"]].to_numpy()


def _hovering(hover: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> dict:
    text, ids = hover
    return dict(hovertext=text[rows], hovertemplate="%{hovertext}<extra></extra>",
                customdata=ids[rows])


def _continuous(values: np.ndarray, title: str, log: bool = False) -> dict:
    values = np.asarray(values, np.float64)
    marker = dict(color=np.log10(values + 1) if log else values, colorscale="Viridis",
                  showscale=True, colorbar=dict(title=dict(text=title), thickness=12))
    if log:
        ticks = [t for t in (1, 3, 10, 30, 100, 300) if t <= max(values.max(), 1)]
        marker["colorbar"].update(tickvals=np.log10(np.array(ticks) + 1), ticktext=ticks)
    return marker


def point_groups(frame: pd.DataFrame, colouring: Colouring) -> list[tuple[str, np.ndarray]]:
    """(trace name, row indices) of each point trace: one trace for a continuous colour, one
    per genre for all genres (a movie in several genres is in each), else the chosen genre's
    movies and the others."""
    if colouring.by != "genre":
        return [(COLOURS[colouring.by], np.arange(len(frame)))]
    if colouring.genre == ALL_GENRES:
        members = frame["genres"].fillna("").astype(str).str.get_dummies(sep="|")
        return [(g, np.flatnonzero(members[g].to_numpy())) for g in genre_names(frame)]
    inside = genre_mask(frame["genres"], colouring.genre)
    return [("other movies", np.flatnonzero(~inside)), (colouring.genre, np.flatnonzero(inside))]


def point_traces(frame: pd.DataFrame, colouring: Colouring, x: np.ndarray, y: np.ndarray,
                 faded: bool = False, lengths: np.ndarray | None = None) -> list[dict]:
    """The movie points at positions ``x``, ``y`` coloured as ``colouring`` says (``lengths``
    overrides the frame's vector lengths, e.g. a replay epoch's)."""
    opacity = 0.45 if faded else 0.8
    groups, hover = point_groups(frame, colouring), _hover(frame)
    if colouring.by != "genre":
        values = {"popularity": frame["popularity"].to_numpy(),
                  "length": frame["norm"].to_numpy() if lengths is None else lengths,
                  "year": frame["year"].to_numpy(np.float64)}[colouring.by]
        marker = _continuous(values, COLOURS[colouring.by], log=colouring.by == "popularity")
        return [dict(type="scattergl", x=x, y=y, mode="markers", name=COLOURS[colouring.by],
                             marker=dict(size=5, opacity=opacity, **marker), showlegend=False,
                             **_hovering(hover, groups[0][1]))]
    if colouring.genre == ALL_GENRES:
        markers = [dict(size=5, opacity=opacity * 0.8, color=PALETTE[i % len(PALETTE)])
                   for i in range(len(groups))]
    else:
        markers = [dict(size=4, opacity=opacity * 0.7, color=OTHERS),
                   dict(size=6, opacity=max(opacity, 0.75), color=MEMBERS,
                        line=dict(width=0.5, color="white"))]
    return [dict(type="scattergl", x=x[rows], y=y[rows], mode="markers", name=name, marker=marker,
                         **_hovering(hover, rows))
            for (name, rows), marker in zip(groups, markers, strict=True)]


def neighbour_traces(frame: pd.DataFrame, x: np.ndarray, y: np.ndarray, movie: int,
                     neighbours: list[int]) -> list[dict]:
    """Lines from ``movie`` (an item id) to each of its ``neighbours``, and both marked."""
    position = dict(zip(frame["item_id"], range(len(frame)), strict=True))
    anchor = position[movie]
    near = [position[n] for n in neighbours if n in position]
    line_x = [v for i in near for v in (x[anchor], x[i], None)]
    line_y = [v for i in near for v in (y[anchor], y[i], None)]
    labels = frame["label"].to_numpy()
    return [
        dict(type="scattergl", x=line_x, y=line_y, mode="lines",
             name="nearest neighbours (cosine)", hoverinfo="skip",
             line=dict(color="rgba(40,40,40,0.55)", width=1.2)),
        dict(type="scattergl", x=x[near], y=y[near], mode="markers", name="neighbours",
             marker=dict(size=9, color="#F2B134", line=dict(width=1, color="black")),
             hovertext=labels[near], hovertemplate="%{hovertext}<extra>neighbour</extra>",
             customdata=frame["item_id"].to_numpy()[near, None], showlegend=False),
        dict(type="scattergl", x=[x[anchor]], y=[y[anchor]], mode="markers+text",
             name=labels[anchor], text=[labels[anchor]], textposition="top center",
             marker=dict(size=14, color=CHOSEN, symbol="star", line=dict(width=1, color="black")),
             customdata=[[movie]], hovertemplate="%{text}<extra>chosen</extra>"),
    ]


def search_trace(frame: pd.DataFrame, x: np.ndarray, y: np.ndarray,
                 hits: np.ndarray) -> dict:
    """The movies whose title matched the search, labelled."""
    return dict(type="scattergl",
        x=x[hits], y=y[hits], mode="markers+text", text=frame["label"].to_numpy()[hits],
        textposition="top center", customdata=frame[["item_id"]].to_numpy()[hits],
        marker=dict(size=12, color=CHOSEN, line=dict(width=1.5, color="black")),
        name="search hits", hovertemplate="%{text}<extra>search hit</extra>")


def map_figure(frame: pd.DataFrame, colouring: Colouring, x: np.ndarray, y: np.ndarray,
               movie: int | None = None, neighbours: list[int] = (),
               hits: np.ndarray | None = None, x_title: str | None = None,
               y_title: str | None = None, log_y: bool = False, height: int = 620) -> go.Figure:
    """The movie map: points, then the chosen movie's neighbour lines, then search hits."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    faded = movie is not None or (hits is not None and hits.any())
    traces = point_traces(frame, colouring, x, y, faded)
    if movie is not None:
        traces += neighbour_traces(frame, x, y, movie, list(neighbours))
    if hits is not None and hits.any():
        traces.append(search_trace(frame, x, y, hits))
    fig = go.Figure(traces)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=30, b=0), dragmode="lasso",
                      legend=_legend(colouring), xaxis_title=x_title,
                      yaxis_title=y_title, plot_bgcolor="white")
    fig.update_xaxes(showgrid=False, zeroline=False, showticklabels=x_title is not None)
    fig.update_yaxes(showgrid=False, zeroline=False, showticklabels=y_title is not None,
                     type="log" if log_y else None)
    if log_y:  # a label at 1-3-10-30-…, not at every digit
        ticks = [t for t in (1, 3, 10, 30, 100, 300, 1000) if t <= max(np.nanmax(y), 1) * 1.5]
        fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:,}" for t in ticks])
    return fig


# ---------------------------------------------------------------------------- the replay
def replay_figure(frame: pd.DataFrame, colouring: Colouring, coords: np.ndarray,
                  epochs: np.ndarray, lengths: np.ndarray, movie: int | None = None,
                  phase: str = "refit", frame_ms: int = 400, height: int = 620) -> go.Figure:
    """The training replay: one Plotly animation frame per snapshot in ``coords`` (t, n, 2),
    a slider over ``epochs`` and play / pause buttons, all played in the browser. The axes
    stay fixed; a chosen ``movie`` (item id) is starred with its whole path drawn."""
    names = [str(int(e)) for e in epochs]
    index = (int(np.flatnonzero(frame["item_id"].to_numpy() == movie)[0])
             if movie is not None else None)

    groups = point_groups(frame, colouring)

    def moving(t: int) -> list[dict]:
        """What changes in frame ``t``: positions (and lengths when they are the colour)."""
        x, y = coords[t].astype(np.float32).T  # sent as 4-byte floats: half the JSON
        updates = [dict(type="scattergl", x=x[rows], y=y[rows]) for _, rows in groups]
        if colouring.by == "length":
            updates[0]["marker"] = dict(color=lengths[t])
        if index is not None:
            updates.append(dict(type="scattergl", x=[x[index]], y=[y[index]]))
        return updates

    last = len(epochs) - 1
    data = point_traces(frame, colouring, coords[last, :, 0], coords[last, :, 1],
                        faded=index is not None, lengths=lengths[last])
    if colouring.by == "length":  # one colour scale for every epoch
        data[0]["marker"].update(cmin=float(lengths.min()), cmax=float(lengths.max()))
    if index is not None:
        data.append(dict(type="scattergl",
            x=[coords[last, index, 0]], y=[coords[last, index, 1]], mode="markers+text",
            text=[frame["label"].iloc[index]], textposition="top center", name="chosen movie",
            customdata=[[movie]], marker=dict(size=15, color=CHOSEN, symbol="star",
                                              line=dict(width=1, color="black")),
            hovertemplate="%{text}<extra>chosen</extra>"))
        # the path never changes: it is not in the frames
        data.append(dict(type="scattergl", x=coords[:, index, 0], y=coords[:, index, 1],
                                 mode="lines+markers", name="its path",
                                 line=dict(color=CHOSEN, width=2),
                                 marker=dict(size=5, color=CHOSEN), text=names,
                                 hovertemplate="epoch %{text}<extra>path</extra>"))
    moving_traces = list(range(len(data) - (index is not None)))
    frames = [go.Frame(name=names[t], data=moving(t), traces=moving_traces)
              for t in range(len(epochs))]
    fig = go.Figure(data=data, frames=frames)
    x_range, y_range = _fixed_range(coords[..., 0]), _fixed_range(coords[..., 1])
    play = dict(frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0),
                fromcurrent=True, mode="immediate")
    fig.update_layout(
        height=height, margin=dict(l=0, r=0, t=30, b=0), plot_bgcolor="white",
        legend=_legend(colouring),
        xaxis=dict(range=x_range, autorange=False, showgrid=False, zeroline=False,
                   showticklabels=False),
        yaxis=dict(range=y_range, autorange=False, showgrid=False, zeroline=False,
                   showticklabels=False),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.02, xanchor="left",
                          yanchor="top", pad=dict(t=10, r=10), showactive=False, buttons=[
                              dict(label="▶ Play", method="animate", args=[None, play]),
                              dict(label="❚❚ Pause", method="animate", args=[
                                  [None], dict(frame=dict(duration=0, redraw=False),
                                               mode="immediate")])])],
        sliders=[dict(active=last, x=0.2, len=0.8, y=-0.02, yanchor="top",
                      pad=dict(t=10), currentvalue=dict(prefix=f"{phase} epoch ",
                                                        xanchor="right"),
                      steps=[dict(label=n, method="animate", args=[[n], dict(
                          frame=dict(duration=0, redraw=True), transition=dict(duration=0),
                          mode="immediate")]) for n in names])])
    return fig


def _legend(colouring: Colouring) -> dict:
    """Beside the plot for genres; above it for a colour scale, whose bar takes the side."""
    if colouring.by == "genre":
        return dict(itemsizing="constant")
    return dict(itemsizing="constant", orientation="h", x=0, y=1.0, yanchor="bottom")


def _fixed_range(values: np.ndarray) -> list[float]:
    """An axis range holding every point of every epoch, padded: the frame never moves."""
    low, high = float(values.min()), float(values.max())
    pad = 0.04 * (high - low or 1.0)
    return [low - pad, high + pad]


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


def _replay_stamp(run: Run) -> int:
    """When the run's replay.npz was written (0: none), beside the run's own cache key."""
    try:
        return (Path(run.path) / replay.FILE).stat().st_mtime_ns
    except OSError:
        return 0


def replay_view(run: Run) -> ReplayView | str | None:
    """The run's replay in its PCA frame; None when the run has none, the reason (a str) when
    its replay.npz is damaged. Never raises for a bad file."""
    return _replay_view(run, _replay_stamp(run))


@shared.per_run(show_spinner="Placing the training snapshots on the map…", max_entries=8)
def _replay_view(run: Run, replay_stamp: int) -> ReplayView | str | None:
    import time

    started = time.perf_counter()
    final = run.model.item_factors()
    try:
        recorded = replay.load_replay(run.path, *final.shape)
    except replay.ReplayError as err:
        return str(err)
    if recorded is None:
        return None
    pca = shared.projection(run, "pca")
    coords = replay.replay_coordinates(recorded, final, pca.pca_mean, pca.pca_components)
    lengths = np.linalg.norm(recorded.items.astype(np.float32), axis=2)
    return ReplayView(recorded.epochs, coords.astype(np.float32), lengths, recorded.phase,
                      (Path(run.path) / replay.FILE).stat().st_size,
                      time.perf_counter() - started)


def replay_chart(run: Run, colouring: Colouring, movie: int | None) -> go.Figure:
    """The replay figure of ``run`` (:func:`replay_view` must have returned a ReplayView):
    built once per colouring and movie, ~0.1-1 s, then shared read-only."""
    return _replay_chart(run, _replay_stamp(run), colouring, movie)


@shared.per_run(st.cache_resource, show_spinner=False, max_entries=32)
def _replay_chart(run: Run, replay_stamp: int, colouring: Colouring,
                  movie: int | None) -> go.Figure:
    recorded = _replay_view(run, replay_stamp)
    frame = shared.projection_frame(run, "pca")
    return replay_figure(frame, colouring, recorded.coords, recorded.epochs, recorded.lengths,
                         movie=movie, phase=recorded.phase)


def map_chart(run: Run, method: str, colouring: Colouring, x: np.ndarray, y: np.ndarray,
              movie: int | None = None, near: list[int] = (), hits: np.ndarray | None = None,
              x_title: str | None = None, y_title: str | None = None,
              log_y: bool = False, item_map: bool = False, height: int = 620) -> go.Figure:
    """:func:`map_figure` at ``x``, ``y`` of the run's item map of ``method`` with its region
    labels (``item_map``), else of its full ``method`` projection: built once per positions,
    colouring, movie and search hits, then shared read-only (a control that comes back to an
    earlier choice redraws without rebuilding)."""
    return _map_chart(run, method, colouring, np.asarray(x, np.float64),
                      np.asarray(y, np.float64), movie, tuple(int(n) for n in near), hits,
                      x_title, y_title, log_y, item_map, height)


@shared.per_run(st.cache_resource, show_spinner=False, max_entries=32)
def _map_chart(run: Run, method: str, colouring: Colouring, x: np.ndarray, y: np.ndarray,
               movie: int | None, near: tuple[int, ...], hits: np.ndarray | None,
               x_title: str | None, y_title: str | None, log_y: bool,
               item_map: bool, height: int) -> go.Figure:
    frame = (shared.item_map_frame if item_map else shared.projection_frame)(run, method)
    fig = map_figure(frame, colouring, x, y, movie=movie, neighbours=list(near), hits=hits,
                     x_title=x_title, y_title=y_title, log_y=log_y, height=height)
    if item_map:
        label_regions(fig, map_regions(run, method))
    return fig


@shared.per_run(st.cache_resource, show_spinner=False, max_entries=32)
def map_regions(run: Run, method: str) -> list[map_structure.Region]:
    """The regions of the run's item map of ``method``: their dominant genres and best-known
    titles (:func:`recsys.evaluation.map_structure.region_labels`)."""
    frame = shared.item_map_frame(run, method)
    return map_structure.region_labels(frame[["x", "y"]].to_numpy(), frame["genres"].tolist(),
                                       frame["title"].tolist(), frame["popularity"].to_numpy(),
                                       n_regions=REGIONS, years=frame["year"].to_numpy(),
                                       n_titles=2)


def label_regions(fig: go.Figure, regions: list[map_structure.Region]) -> None:
    """Each region's name (its genres, or its era) in bold over two of its titles, written
    at its centre on a translucent card, so the picture says what its parts hold."""
    for region in regions:
        name = " · ".join((*region.genres, region.era) if region.era else region.genres)
        titles = "<br>".join(html.escape(_short(t)) for t in region.titles)
        fig.add_annotation(x=region.centre[0], y=region.centre[1], showarrow=False,
                           text=f"<b>{html.escape(name or 'mixed')}</b><br>{titles}",
                           font=dict(size=11, color="#1F2933"), align="center",
                           bgcolor="rgba(255,255,255,0.78)", borderpad=3)


def _short(title: str, width: int = 26) -> str:
    """A title without its year, cut to ``width`` characters for a label."""
    bare = re.sub(r"\s*\(\d{4}\)$", "", str(title))
    return bare if len(bare) <= width else bare[: width - 1] + "…"


@shared.per_run(st.cache_resource, show_spinner=False, max_entries=32)
def norms_chart(run: Run) -> go.Figure:
    """Vector length against popularity, one point per movie: the same for every visitor of
    a run, so built once (shared read-only)."""
    frame = shared.projection_frame(run, "pca")
    fig = px.scatter(frame, x="popularity", y="norm", hover_name="label", log_x=True,
                     render_mode="webgl", height=360, opacity=0.6,
                     labels={"popularity": "popularity: number of ratings (log scale)",
                             "norm": "length of the movie vector"})
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
    return fig


@shared.per_run(show_spinner=False, max_entries=64)
def genre_axis(run: Run, start: str, end: str) -> np.ndarray:
    """(n_items,) positions on the axis from genre ``start`` to genre ``end`` (0 = the mean
    ``start`` movie, 1 = the mean ``end`` movie). A RecsysError when it cannot be drawn."""
    genres = shared.catalogue(run)["genres"]
    return projection.semantic_axis(run.model.item_factors(),
                                    projection.genre_mask(genres, start),
                                    projection.genre_mask(genres, end))


def neighbour_ids(ctx: serving.Catalog, movie: int, k: int = 10) -> list[int]:
    """The ``k`` nearest movies to ``movie`` by cosine of the run's item vectors (the Similar
    movies page's list); empty for a movie with too few likes to have a trained vector."""
    if ctx.item_counts[ctx.item_indices([movie])[0]] < neighbours.MIN_POSITIVES:
        return []
    return [int(i) for i in serving.similar_movies(ctx, movie, k=k, lens="cosine")
            .embedding["item_id"]]
