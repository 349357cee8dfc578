"""Charts of a score's anatomy (recsys.lessons.anatomy), shared by Recommendations and the tour:
the sum as a waterfall, the dimensions that matter as bars, vectors side by side as a heatmap.
Only drawing here; the numbers come from ``recsys.lessons.anatomy``."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from recsys.lessons.anatomy import DOT, ScoreAnatomy, ScoreScale
from ui.display import figure

UP, DOWN, TOTAL = "#2E86AB", "#E4572E", "#3B3B3B"
MARGIN = dict(l=0, r=10, t=30, b=0)


def parts_chart(anatomy: ScoreAnatomy, height: int = 300) -> go.Figure:
    """The score as a sum: one step per part (u·v, biases), then the total. A score that is
    u·v alone is split into the dimensions that raise it and those that lower it."""
    names, values = list(anatomy.parts), list(anatomy.parts.values())
    if names == [DOT]:
        names = ["dimensions raising it", "dimensions lowering it"]
        values = list(anatomy.dot_by_sign())
    low = min(0.0, *np.cumsum(values), anatomy.score)
    high = max(0.0, *np.cumsum(values), anatomy.score)
    pad = 0.18 * (high - low or 1.0)
    return figure([dict(
        type="waterfall", x=[*names, "score"], y=[*values, anatomy.score],
        measure=["relative"] * len(names) + ["total"],
        text=[f"{v:+.3f}" for v in values] + [f"{anatomy.score:.3f}"], textposition="outside",
        increasing=dict(marker_color=UP), decreasing=dict(marker_color=DOWN),
        totals=dict(marker_color=TOTAL), connector=dict(line=dict(color="#BBBBBB")),
        hovertemplate="%{x}: %{y:.4f}<extra></extra>")],
        dict(height=height, margin=MARGIN, showlegend=False,
             title=dict(text="The score, part by part", font_size=14),
             yaxis=dict(range=[low - pad, high + pad], zeroline=True)))


def dimensions_chart(top: pd.DataFrame, height: int = 300) -> go.Figure:
    """Horizontal bars of u_d·v_d for the dimensions that raise (blue) or lower (red) the score;
    ``top`` is :meth:`ScoreAnatomy.top_dimensions`."""
    top = top.iloc[::-1]  # Plotly draws the first bar at the bottom
    return figure([dict(
        type="bar", x=top["contribution"].to_numpy(), y=[f"d{d}" for d in top["dimension"]],
        orientation="h", marker_color=[UP if c > 0 else DOWN for c in top["contribution"]],
        customdata=np.c_[top["user"], top["movie"]],
        hovertemplate="%{y}: user %{customdata[0]:+.3f} × movie %{customdata[1]:+.3f} = "
                      "%{x:+.4f}<extra></extra>")],
        dict(height=height, margin=MARGIN, showlegend=False,
             title=dict(text="Dimensions that matter most (u_d × v_d)", font_size=14),
             xaxis=dict(zeroline=True, zerolinecolor="#888888")))


def heatmap_chart(heat: pd.DataFrame, labels: list[str], highlight: int | None = None,
                  colorbar: bool = True) -> go.Figure:
    """Rows = the user's vector and the movies' vectors (``labels``, same order as ``heat``),
    columns = dimensions in ``heat``'s order; blue positive, red negative, white zero.
    ``highlight`` (a row number) gets a frame."""
    values = heat.to_numpy()
    limit = float(np.abs(values).max()) or 1.0
    rows = [html.escape(label) for label in labels]
    columns = len(heat.columns)  # ``colorbar`` False: blue/red explained in a caption
    # the user above the movies: a line under the first row; the highlighted row framed
    shapes = [dict(type="line", xref="paper", x0=0, x1=1, y0=0.5, y1=0.5,
                   line=dict(color="black", width=2))]
    if highlight is not None:
        shapes.append(dict(type="rect", x0=-0.5, x1=columns - 0.5, y0=highlight - 0.5,
                           y1=highlight + 0.5, line=dict(color="black", width=2)))
    return figure([dict(
        type="heatmap", z=values, x=list(heat.columns), y=rows, zmin=-limit, zmax=limit,
        zmid=0, colorscale="RdBu", xgap=1, ygap=1, showscale=colorbar,
        colorbar=dict(thickness=10, title=dict(text="value")),
        hovertemplate="%{y}<br>%{x}: %{z:+.3f}<extra></extra>")],
        dict(height=80 + 22 * len(rows), margin=dict(l=0, r=0, t=10, b=0), shapes=shapes,
             yaxis=dict(autorange="reversed", tickfont_size=11),
             xaxis=dict(tickfont_size=10, title=dict(text="dimensions, most decisive first"))))


def vector_chart(vector: np.ndarray, name: str, height: int = 260) -> go.Figure:
    """One vector as bars, dimension by dimension."""
    vector = np.asarray(vector, np.float64)
    return figure([dict(
        type="bar", x=[f"d{d}" for d in range(len(vector))], y=vector,
        marker_color=[UP if v >= 0 else DOWN for v in vector],
        hovertemplate="%{x}: %{y:+.3f}<extra></extra>")],
        dict(height=height, margin=MARGIN, showlegend=False,
             title=dict(text=f"{html.escape(name)}: {len(vector)} numbers, "
                             f"length {np.linalg.norm(vector):.2f}", font_size=14),
             xaxis=dict(tickfont_size=9)))


def scale_chart(scale: ScoreScale, name: str, height: int = 300) -> go.Figure:
    """The user's scores over every movie they have not liked yet, as a histogram, with
    ``name``'s score marked and ranked: what a score of 0.55 means for this user."""
    counts, edges = np.histogram(scale.scores, bins=40)
    mids = (edges[:-1] + edges[1:]) / 2
    above = mids > scale.score
    return figure([dict(
        type="bar", x=mids, y=counts, width=np.diff(edges),
        marker_color=[UP if a else "#C9D3DD" for a in above],
        hovertemplate="score %{x:.3f}: %{y} movies<extra></extra>")],
        dict(height=height, margin=MARGIN, showlegend=False, bargap=0,
             title=dict(text=f"Where it falls: rank {scale.rank:,} of {scale.candidates:,}",
                        font_size=14),
             xaxis=dict(title=dict(text="score, for each movie not yet liked")),
             yaxis=dict(title=dict(text="movies")),
             shapes=[dict(type="line", x0=scale.score, x1=scale.score, yref="paper", y0=0,
                          y1=1, line=dict(color=TOTAL, width=2))],
             annotations=[dict(x=scale.score, yref="paper", y=1, text=html.escape(name),
                               showarrow=False, xanchor="right" if scale.percentile > 0.5
                               else "left", yanchor="top", font=dict(size=12))]))
