"""The Train page's four lessons, their cached numbers and one drawing function each:
negative sampling by popularity decile, training curves of several runs, vector length against
popularity, and Recall@10 by user activity (who the model serves). The numbers come from
``recsys``, cached per run by ``ui.shared.per_run``; here only caching, widgets and charts."""


from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from recsys.data.protocol import SplitConfig
from recsys.evaluation import segments
from recsys.lessons import leaderboard as lb
from recsys.lessons import negative_mix as nm
from recsys.lessons import vector_norms as vn
from recsys.models import MODELS
from recsys.models.config import TrainConfig
from recsys.storage.runs import Run
from ui import shared, state
from ui.text import plain


@st.cache_data(show_spinner=False, max_entries=64)
def negative_mix_table(split_config: SplitConfig, negatives: int, neg_sampling: str,
                 alpha: float) -> pd.DataFrame:
    """Positives and one epoch of sampled negatives by popularity decile, on the training
    positives of ``split_config``'s split (drawn with seed 0, so the chart is stable)."""
    split = shared.split_for(split_config)
    return nm.negative_mix(split.train_pos, negatives, neg_sampling, alpha, seed=0)


@shared.per_run(show_spinner=False, max_entries=256)
def recall_by_activity_table(run: Run) -> pd.DataFrame:
    """Test Recall@10 of ``run`` per user-activity tercile (cached per run)."""
    return segments.run_recall_by_activity(run.model, shared.split_for(run.split_config))


def activity_board_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run: ``run``, ``model``, ``overall`` and a recall column per group."""
    rows = []
    for run in runs:
        table = recall_by_activity_table(run)
        rows.append({"run": run.name, "model": run.train_config.model,
                     **dict(zip(table["group"], table["recall"], strict=True)),
                     "overall": segments.pooled_recall(table)})
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False, max_entries=16)
def held_out_table(split_config: SplitConfig, k: int = 10) -> pd.DataFrame:
    """Per activity group of the test users (the groups of ``recall_by_activity_table``): the
    median number of held-out test movies, and the best Recall@k a perfect model could reach
    on average (a user with n held-out movies can hit at most min(k, n) of them: ``min(1, k /
    n)``). Explains why light users score higher: their denominator is small."""
    split = shared.split_for(split_config)
    held_out = split.test_pos.user_counts()
    users = np.flatnonzero(held_out > 0)  # the users evaluate_model averages over
    activity = segments.ratings_before_test(split)[users]
    groups = segments.activity_group(activity, segments.activity_edges(activity))
    frame = pd.DataFrame({"group": groups, "held_out": held_out[users],
                          "ceiling": np.minimum(1.0, k / held_out[users])})
    return frame.groupby("group").agg(held_out=("held_out", "median"),
                                      ceiling=("ceiling", "mean")).reindex(range(3))


AUTO_RUN_NAME = re.compile(r"(?P<model>.+)-(?P<day>\d{8})-(?P<time>\d{6})-[0-9a-f]{4}")


def short_run_name(name: str) -> str:
    """A run name short enough for a legend or a narrow column: an automatic name
    ``mf-bpr-20261206-225927-6771`` (recsys.jobs.manager.new_run_dir) becomes ``mf-bpr
    22:59:27``; a name a person chose stays as it is. Hover texts keep the full name."""
    match = AUTO_RUN_NAME.fullmatch(name)
    if match is None:
        return name
    t = match["time"]
    return f"{match['model']} {t[:2]}:{t[2:4]}:{t[4:]}"


def shortened(labels: dict[str, str]) -> dict[str, str]:
    """Labels by run name (``lb.setting_labels``) with any full automatic run name in them
    replaced by its short form."""
    shorts = short_names(list(labels))
    return {name: label.replace(name, shorts[name]) for name, label in labels.items()}


def short_names(names: list[str]) -> dict[str, str]:
    """``short_run_name`` of each name, the full name where two would read the same."""
    shorts = {name: short_run_name(name) for name in names}
    clashes = {v for v in shorts.values() if list(shorts.values()).count(v) > 1}
    return {name: name if label in clashes else label for name, label in shorts.items()}


@shared.per_run(show_spinner=False, max_entries=64)
def norms_table(run: Run) -> pd.DataFrame:
    """Per movie of ``run``: likes in training, vector length and title (cached per run)."""
    movies = shared.catalogue(run)
    # the likes the saved model was fitted on: train + validation after a refit, else train
    split = shared.split_for(run.split_config)
    fitted_on = split.seen_at_test if run.train_config.refit else split.train_pos
    frame = vn.norms_frame(run.model.item_factors(), fitted_on.item_counts())
    frame["title"] = movies["title"].to_numpy()
    return frame



K = "train_lesson_"  # widget key prefix of the lessons
# ?view= value -> tab label (docs/CONTRACT: /train?view=negatives|curves|norms|activity)
VIEWS = {"negatives": "Negative sampling", "curves": "Training curves",
         "norms": "Vector length vs popularity", "activity": "Who the model serves"}
SAMPLING, ALPHA, NEGATIVES = K + "sampling", K + "alpha", K + "negatives"
POSITIVE_COLOUR, NEGATIVE_COLOUR = "#4C78A8", "#F58518"


# D3 without its grey, which belongs to the popularity baseline alone
PALETTE = [c for c in px.colors.qualitative.D3 if c.upper() != "#7F7F7F"]
BASELINE_GREY = "#9E9E9E"


def _layout(fig: go.Figure, height: int = 360, top: int = 40) -> go.Figure:
    """Legend above the plot (never over an axis title), tight margins; the chart's title
    is drawn by the page above it."""
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=top, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left",
                                  x=0, title_text=""))
    return fig


# ---------------------------------------------------------------------- negative sampling
def negatives(split_config: SplitConfig, form_model: str, form_values: dict) -> None:
    """Sampler settings (starting from the form's), the decile chart and the lesson."""
    state.carry(SAMPLING, ALPHA, NEGATIVES)
    defaults = TrainConfig()
    for key, name in ((SAMPLING, "neg_sampling"), (ALPHA, "alpha"), (NEGATIVES, "negatives")):
        if key not in st.session_state:
            st.session_state[key] = form_values.get(name, getattr(defaults, name))
    st.markdown("Each training positive (a movie a user liked) is paired with sampled "
                "**negatives**; the model learns to score the positive above them. *Which* "
                "movies are drawn decides what it learns. "
                + ("Settings start from the form's." if "negatives" in MODELS[form_model].settings
                   else f"({form_model}, the form's model, samples no negatives: these are "
                        "the defaults of the models that do.)"))
    c1, c2, c3 = st.columns([2, 2, 2])
    sampling = c1.radio("Negatives drawn", ["uniform", "popularity"], key=SAMPLING,
                        horizontal=True, help="uniform: every movie equally; popularity: in "
                        "proportion to its training positives ** α (`neg_sampling`)")
    alpha = c2.slider("Popularity exponent α", 0.0, 2.0, step=0.05, key=ALPHA,
                      disabled=sampling == "uniform",
                      help="0 = uniform, 1 = proportional to popularity (`alpha`)")
    per_positive = c3.slider("Negatives per positive", 1, 20, key=NEGATIVES,
                             help="`negatives`")
    mix = negative_mix_table(split_config, int(per_positive), sampling, float(alpha))
    st.markdown("**Where the positives and the sampled negatives fall, by movie popularity**")
    st.plotly_chart(negatives_figure(mix), key=K + "negatives_chart")
    st.info(plain(nm.negatives_lesson(mix)), icon=":material/school:")
    st.caption("Drawn now by the trainer's own sampler (`recsys.data.sampling`) for one epoch of "
               "this protocol's training positives, seed 0. Deciles: the catalogue sorted by "
               "training positives, a tenth of the movies each. ◆ = the share the sampler's "
               "distribution predicts (uniform, or `count ** α`, with each user's own "
               "positives redrawn, which thins the popular end).")


def negatives_figure(mix) -> go.Figure:
    ticks = [f"<b>{d}</b><br>{r}" for d, r in zip(mix["decile"], mix["ratings"], strict=True)]
    fig = go.Figure([
        go.Bar(x=ticks, y=mix["positives"], name="positives (liked movies)",
               marker_color=POSITIVE_COLOUR),
        go.Bar(x=ticks, y=mix["negatives"], name="sampled negatives",
               marker_color=NEGATIVE_COLOUR),
        go.Scatter(x=ticks, y=mix["expected"], name="negatives expected from the sampler's P",
                   mode="markers", marker=dict(symbol="diamond", size=9, color="#333")),
    ])
    fig.update_yaxes(title_text="share", tickformat=".0%")
    fig.update_xaxes(title_text="popularity decile (1 = least rated tenth of the movies; "
                                "training positives per movie below)")
    fig.update_layout(barmode="group")
    return _layout(fig, 380)


# ---------------------------------------------------------------------- curves
def curves(on_protocol: list[Run], elsewhere: list[Run], active_model: str) -> None:
    """Loss and validation Recall@10 per epoch of the chosen runs of one protocol (at first,
    up to four runs of the active run's model)."""
    if not on_protocol:
        st.info("No run with training curves on this protocol yet: train an embedding model "
                "above (baselines are fitted in one go and have no curves).")
        return
    names = [r.name for r in on_protocol]
    labels = shortened(lb.setting_labels(on_protocol))
    same_model = [r.name for r in on_protocol if r.train_config.model == active_model]
    shorts = short_names(names)
    chosen = st.multiselect("Runs to overlay (this protocol)", names,
                            default=(same_model if len(same_model) > 1 else names)[:4],
                            key=K + "curve_runs",
                            format_func=lambda n: f"{labels[n]} · {shorts[n]}",
                            help="Runs evaluated on other protocols are listed below, not drawn.")
    picked = [r for r in on_protocol if r.name in chosen]
    frame = lb.curves_frame(picked, shortened(lb.setting_labels(picked)))
    if frame.empty:
        st.caption("Pick one or more runs.")
    else:
        st.markdown("**Training loss and validation Recall@10 per epoch**")
        st.plotly_chart(curves_figure(frame), key=K + "curves_chart")
        st.caption("The legend names each run's model and the settings in which the chosen "
                   "runs differ. Losses of different models are on different scales: compare "
                   "validation Recall@10 across models, loss within one model.")
    if elsewhere:
        with st.expander(f"{len(elsewhere)} run(s) with curves on other protocols (not drawn)"):
            st.dataframe([{"run": r.name, "model": r.train_config.model,
                           "protocol": lb.protocol_key(r.split_config)} for r in elsewhere],
                         hide_index=True, key=K + "curves_elsewhere")


def curves_figure(frame) -> go.Figure:
    """Loss (left) and validation Recall@10 (right), one colour per run, one legend."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08)
    for i, (label, run_frame) in enumerate(frame.groupby("label", sort=False)):
        colour = PALETTE[i % len(PALETTE)]
        full_name = html.escape(str(run_frame["run"].iloc[0]))
        for col, y in ((1, "loss"), (2, "valid_recall@10")):
            fig.add_trace(go.Scatter(x=run_frame["epoch"], y=run_frame[y], name=label,
                                     mode="lines+markers", line=dict(color=colour),
                                     hovertemplate=f"epoch %{{x}}: %{{y:.4f}}<extra>{full_name}"
                                                   "</extra>",
                                     legendgroup=label, showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="training loss", row=1, col=1)
    fig.update_yaxes(title_text="validation Recall@10", row=1, col=2)
    n_rows = (len(frame["label"].unique()) + 1) // 2
    return _layout(fig, 360 + 22 * n_rows, top=30 + 22 * n_rows)


# ---------------------------------------------------------------------- norms
def norms(on_protocol: list[Run]) -> None:
    """Vector length against likes in training for two or more runs side by side."""
    with_vectors = [r for r in on_protocol if MODELS[r.train_config.model].item_vectors]
    if not with_vectors:
        st.info("No run with movie vectors on this protocol yet: train an embedding model.")
        return
    labels = shortened(lb.setting_labels(with_vectors))
    names = [r.name for r in with_vectors]
    shorts = short_names(names)
    chosen = st.multiselect("Runs side by side (this protocol)", names,
                            default=lb.contrasting_runs(with_vectors, "weight_decay"),
                            max_selections=4, key=K + "norm_runs",
                            format_func=lambda n: f"{labels[n]} · {shorts[n]}",
                            help="Defaults to two runs of one model with the most different "
                                 "weight decay.")
    picked = sorted((r for r in with_vectors if r.name in chosen),
                    key=lambda r: (r.train_config.model, r.train_config.weight_decay))
    if not picked:
        st.caption("Pick two or more runs.")
        return
    titles = shortened(lb.setting_labels(picked))
    fig = make_subplots(rows=1, cols=len(picked), horizontal_spacing=0.06,
                        subplot_titles=[html.escape(f"{titles[r.name]} · {shorts[r.name]}")
                                        for r in picked])
    summaries = {}
    for i, run in enumerate(picked, start=1):
        frame = norms_table(run)
        summaries[titles[run.name]] = vn.norm_summary(frame)
        fig.add_trace(go.Scattergl(
            x=frame["likes"].clip(lower=1), y=frame["length"], mode="markers",
            text=frame["title"],
            hovertemplate="%{text}<br>%{x} likes in training · length %{y:.2f}"
                          f"<extra>{html.escape(run.name)}</extra>",
            marker=dict(size=4, opacity=0.5, color=POSITIVE_COLOUR), showlegend=False),
            row=1, col=i)
        fig.update_xaxes(type="log", title_text="likes in training (log)", row=1, col=i)
    fig.update_yaxes(title_text="vector length", row=1, col=1)
    fig.update_annotations(font_size=12)
    st.markdown("**Movie vector length against its likes in training** (hover for titles)")
    st.plotly_chart(_layout(fig, 380), key=K + "norms_chart")
    st.info(plain(vn.norms_lesson(summaries)), icon=":material/school:")


# ---------------------------------------------------------------------- activity
def activity(on_protocol: list[Run]) -> None:
    """Test Recall@10 by user activity for every run on the protocol's leaderboard."""
    if not on_protocol:
        st.info("No run on this protocol.")
        return
    with st.spinner("Evaluating each run per user group (once per run)…"):
        board = activity_board_table(on_protocol)
    groups = [c for c in board.columns if c not in ("run", "model", "overall")]
    long = board.melt(id_vars=["run", "model"], value_vars=groups, var_name="users",
                      value_name="Recall@10")
    shorts = short_names(list(board["run"]))
    legend = {name: (shorts[name] if shorts[name].startswith(model)
                     else f"{model} · {shorts[name]}")
              for name, model in zip(board["run"], board["model"], strict=True)}
    long["run "] = long["run"].map(legend)
    colours = {legend[name]: BASELINE_GREY if model == "popularity"
               else PALETTE[i % len(PALETTE)]
               for i, (name, model) in enumerate(zip(board["run"], board["model"], strict=True))}
    fig = px.bar(long, x="users", y="Recall@10", color="run ", barmode="group",
                 color_discrete_map=colours, hover_data={"run": True, "run ": False})
    fig.update_xaxes(title_text="users by number of ratings before the test period")
    st.markdown("**Test Recall@10 per user group** (grey = popularity baseline)")
    n_rows = (len(board) + 3) // 4
    st.plotly_chart(_layout(fig, 340 + 22 * n_rows, top=20 + 22 * n_rows),
                    key=K + "activity_chart")
    st.info(plain(activity_sentence(board)), icon=":material/school:")
    ceilings = held_out_table(on_protocol[0].split_config)
    st.info(plain(why_light_users_score_higher(groups, ceilings)),
            icon=":material/lightbulb:")
    sizes = recall_by_activity_table(on_protocol[0])["users"].tolist()
    shown = board.assign(run=board["run"].map(shorts))
    st.dataframe(shown.style.format({c: "{:.4f}" for c in [*groups, "overall"]}),
                 hide_index=True, key=K + "activity_board",
                 column_config={"run": st.column_config.TextColumn("run", width="medium")})
    st.caption(f"Groups: terciles of the test users' ratings before the test period (train + "
               f"validation), fixed per protocol, {' / '.join(map(str, sizes))} users. "
               "Weighted by their sizes the groups average back to the leaderboard's "
               "Recall@10 (column *overall*).")


def activity_sentence(board: pd.DataFrame) -> str:
    """What the per-group chart shows, true for any number of runs: with a single model there
    is no contest to report (``segments.winners_sentence`` compares models)."""
    groups = [c for c in board.columns if c not in ("run", "model", "overall")]
    models = board["model"].unique()
    if len(models) > 1:
        return segments.winners_sentence(board)
    parts = [f"{g.split(' (')[0]} {board[g].max():.3f}" for g in groups]
    who = ("one run" if len(board) == 1 else f"{len(board)} runs, all") + f" of {models[0]}"
    return (f"Only {who} on this protocol, so nothing to compare yet (best Recall@10 per "
            f"group: {', '.join(parts)}). Train the baselines (the leaderboard's button) to "
            "see whether another model serves light or heavy users better.")


def why_light_users_score_higher(groups: list[str], ceilings: pd.DataFrame) -> str:
    """Why Recall@10 falls with activity although heavy users give the model more to learn
    from: recall divides by the number of held-out movies, which grows with activity."""
    names = [g.split(" (")[0] for g in groups]
    held = ", ".join(f"{n} {ceilings['held_out'].iloc[i]:.0f}" for i, n in enumerate(names))
    best = ", ".join(f"{n} {ceilings['ceiling'].iloc[i]:.2f}" for i, n in enumerate(names))
    return ("Why do users with few ratings score higher? Not because the model knows them "
            "better: Recall@10 divides a user's hits in the top 10 by their own number of "
            "held-out movies, and the test holds out a share of each user's latest "
            f"positives, so heavy users have many more (median per group: {held}). One hit "
            "is a large fraction of a small set, and a heavy user's recall is capped: with "
            "40 held-out movies even a perfect top 10 scores 10/40 = 0.25. The best recall "
            f"any model could reach, averaged per group: {best}. Compare groups against "
            "that ceiling, or with NDCG@10, whose ideal uses min(10, held-out).")
