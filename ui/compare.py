"""Cached data and figures of the Compare runs page: each arm's served lists, the comparison
of two arms (:mod:`recsys.evaluation.online`), and the charts drawn from it. Keyed on the
runs (:func:`ui.shared.per_run`), so a pair is computed once per server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from recsys.evaluation import online
from recsys.lessons.comparison import Arm, check_comparable, held_out_users, served_lists
from recsys.storage.runs import Run
from ui import display, shared

COLOURS = {"ab": "#1f77b4", "interleaving": "#d62728"}  # the same colour per method everywhere


def arm(run: Run, variant: str) -> Arm:
    """The arm of ``run`` served as ``variant`` (BadInputError if the run cannot)."""
    return Arm(shared.catalog(run), variant)


@shared.per_run(show_spinner=False, max_entries=32)
def served(run: Run, variant: str, k: int) -> np.ndarray:
    """(test users, k) item indices ``run`` serves as ``variant`` to every test user."""
    catalog = shared.catalog(run)
    return served_lists(arm(run, variant), held_out_users(catalog)[1], k)


@shared.per_run(show_spinner=False, max_entries=32)
def comparison(run_a: Run, variant_a: str, run_b: Run, variant_b: str, k: int,
               seed: int) -> online.Comparison:
    """The A/B test and the interleaving of the two arms (their lists from :func:`served`)."""
    arm_a, arm_b = arm(run_a, variant_a), arm(run_b, variant_b)
    check_comparable(arm_a, arm_b)
    relevant, users = held_out_users(arm_a.catalog)
    return online.compare_lists(
        served(run_a, variant_a, k), served(run_b, variant_b, k), relevant, users,
        run_a.user_ids[users], arm_a.catalog.item_counts, k, seed, (arm_a.label, arm_b.label))


def ab_table(c: online.Comparison) -> pd.DataFrame:
    """The A/B test, one row per metric, for ``st.dataframe``."""
    return pd.DataFrame({
        "metric": [r.metric for r in c.ab],
        "arm A": [r.mean_a for r in c.ab],
        "arm B": [r.mean_b for r in c.ab],
        "A − B": [r.difference for r in c.ab],
        "95 % interval": [f"{r.ci[0]:+.4f} to {r.ci[1]:+.4f}" for r in c.ab],
        "p (Welch)": [r.p_value for r in c.ab],
        "users needed": [r.users_needed if np.isfinite(r.users_needed) else None for r in c.ab],
    })


def difference_chart(c: online.Comparison) -> go.Figure:
    """Each metric's difference A − B with its bootstrap interval, against zero."""
    rows = list(reversed(c.ab))
    low = min(0.0, *(r.ci[0] for r in rows))
    high = max(0.0, *(r.ci[1] for r in rows))
    pad = 0.08 * (high - low or 1.0)
    data = [{
        "type": "scatter", "mode": "markers", "x": [r.difference for r in rows],
        "y": [r.metric for r in rows], "marker": {"size": 11, "color": COLOURS["ab"]},
        "error_x": {"type": "data", "symmetric": False,
                    "array": [r.ci[1] - r.difference for r in rows],
                    "arrayminus": [r.difference - r.ci[0] for r in rows]},
        "hovertemplate": "%{y}: A − B %{x:+.4f}<extra></extra>", "showlegend": False,
    }]
    layout = {
        "height": 220, "margin": {"l": 10, "r": 10, "t": 30, "b": 40},
        "title": {"text": "A − B with its 95 % interval (right of 0: A is better)",
                  "font": {"size": 13}},
        "xaxis": {"zeroline": True, "zerolinewidth": 2, "zerolinecolor": "#888",
                  "range": [low - pad, high + pad],  # 0 always in view
                  "title": {"text": "difference of the arms' means"}},
        "yaxis": {"automargin": True},
    }
    return display.figure(data, layout)


def detection_chart(c: online.Comparison) -> go.Figure:
    """Detection rate against users in the experiment, for A/B and interleaving, with the
    80 % line and each method's first size above it."""
    curve = c.curve
    sizes = curve.sizes.tolist()
    data = []
    for key, name, rates, needed, side in (
            ("ab", f"A/B test on {curve.metric}", curve.ab_rate, curve.ab_users, "right"),
            ("interleaving", "interleaving", curve.interleaving_rate,
             curve.interleaving_users, "left")):
        data.append({"type": "scatter", "mode": "lines+markers", "name": name, "x": sizes,
                     "y": rates.tolist(), "line": {"color": COLOURS[key], "width": 2.5},
                     "hovertemplate": "%{x:,} users: found %{y:.0%} of the time<extra>"
                                      + name + "</extra>"})
        if needed is not None:  # a dotted drop from the 80 % line, labelled beside it
            data.append({"type": "scatter", "mode": "lines+text", "x": [needed, needed],
                         "y": [online.POWER, 0.04], "showlegend": False,
                         "text": ["", f" {needed:,} "], "textposition": f"middle {side}",
                         "textfont": {"color": COLOURS[key], "size": 13},
                         "line": {"color": COLOURS[key], "dash": "dot", "width": 1.5},
                         "hoverinfo": "skip"})
    layout = {
        "height": 380, "margin": {"l": 10, "r": 10, "t": 40, "b": 50},
        "title": {"text": f"How often each test finds the difference ({curve.repeats} simulated "
                          "experiments per size)", "font": {"size": 13}},
        "xaxis": {"type": "log", "title": {"text": "users in the experiment"}},
        "yaxis": {"range": [0, 1.05], "tickformat": ".0%",
                  "title": {"text": "detected at p < 0.05"}},
        "shapes": [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": online.POWER,
                    "y1": online.POWER, "line": {"dash": "dash", "color": "#888"}}],
        "legend": {"orientation": "h", "y": -0.25},
    }
    return display.figure(data, layout)


def needed_text(n: int | None, c: online.Comparison) -> str:
    """A simulated sample size for a metric tile: "1,700" or "> 40,000"."""
    return f"{n:,}" if n is not None else f"> {int(c.curve.sizes[-1]):,}"
