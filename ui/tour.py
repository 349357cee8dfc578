"""The guided tour's steps: the lecture storyline, each step one or two sentences, a live
figure from the active model and a deep link into the page that goes further.

Every figure comes from existing ``recsys`` functions on a fixed, well-known example (on
ML-100K user 14, Star Wars and Toy Story; on other MovieLens versions the same films by title:
:func:`examples`) and is cached per run, so a step draws in well under a second once warm.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from recsys.errors import RecsysError
from recsys.lessons import anatomy, quiz
from recsys.lessons.leaderboard import (
    TUNED_AGAINST_EASE,
    against_ease,
    leaderboard,
    protocol_key,
    verdict,
)
from recsys.lessons.negative_mix import negative_mix
from recsys.models import model_names
from recsys.serving import catalog as serving
from recsys.serving import users as users_of_run
from recsys.serving.coldstart import cold_start
from recsys.serving.funnel import DEFAULT_RERANKING, intra_list_diversity, run_funnel
from recsys.storage.runs import Run
from ui import anatomy as anatomy_charts
from ui import display, frame, shared
from ui.code_view import engine_of, show_training_code
from ui.quiz import predict_then_reveal
from ui.text import plain

# ML-100K's user 14 liked the Star Wars sequels; their like of Star Wars is a test-period one.
USER = 14
STAR_WARS = ("Star Wars (1977)", "Star Wars: Episode IV - A New Hope (1977)")  # 100K, 1M/latest
TOY_STORY = ("Toy Story (1995)",)
DIE_HARD = ("Die Hard (1988)",)  # where the lens matters: plain cosine shows none of its sequels
LIKES = (TOY_STORY, ("Lion King, The (1994)",), ("Aladdin (1992)",))  # a new user's three likes
GREY, BLUE, ORANGE = "#B8C2CC", "#2E86AB", "#E4572E"
POSITIVES_BLUE, NEGATIVES_ORANGE = "#4C78A8", "#F58518"  # the Train page's lesson colours
SMALL = dict(l=0, r=10, t=30, b=0)


@dataclass(frozen=True)
class Step:
    """One screen of the tour: a title, its sentences, what it draws, where it leads."""

    title: str
    short: str  # the step indicator's label
    text: str
    draw: Callable[[Run, serving.Catalog], tuple[str, str, dict[str, str]]]
    # draw renders the figure and returns the deep link: (page file, label, query params)


@dataclass(frozen=True)
class Examples:
    """The tour's examples in the active data (raw ids)."""

    user: int
    movie: int  # Star Wars: the dot product
    first: int  # Toy Story: the embedding
    likes: tuple[int, ...]  # a new visitor's likes: cold start
    similar: int  # Die Hard: similar items, where the lens matters

    def names(self, ctx: serving.Catalog) -> dict[str, str]:
        """The step texts' placeholders: ``{user}``, ``{movie}``, ``{first}``, ``{similar}``
        (as markdown)."""
        return {"user": str(self.user), "movie": plain(_short_title(ctx, self.movie)),
                "first": plain(_short_title(ctx, self.first)),
                "similar": plain(_short_title(ctx, self.similar))}


def examples(ctx: serving.Catalog) -> Examples:
    """Star Wars, Toy Story and the likes found by title (the most liked where a title is
    listed twice); a film the data lacks is replaced by one of the most liked in training, and
    user 14 by a user who liked the example movie in the test period, so no step refers to a
    missing id or a stranger."""
    # movies_for tells titles listed twice apart with " · id N": match on the plain title
    titles = ctx.movies["title"].astype(str).str.replace(r" · id \d+$", "", regex=True)
    ids = np.asarray(ctx.run.item_ids)
    counts = ctx.split.train_pos.item_counts()
    popular = np.argsort(-counts, kind="stable")

    def find(options: tuple[str, ...], fallback: int) -> int:
        hit = np.flatnonzero(titles.isin(options).to_numpy())
        if len(hit):
            return int(ids[hit[np.argmax(counts[hit])]])
        return int(ids[popular[min(fallback, len(popular) - 1)]])

    movie, first = find(STAR_WARS, 0), find(TOY_STORY, 1)
    likes = tuple(dict.fromkeys(find(t, rank) for rank, t in enumerate(LIKES, start=1)))
    return Examples(_example_user(ctx, movie), movie, first, likes, find(DIE_HARD, 4))


def _example_user(ctx: serving.Catalog, movie: int) -> int:
    """User 14 where they liked the example movie (ML-100K's lecture user), else of the users
    who liked it in the test period (the model has to guess it) the one of median activity."""
    user_ids = np.asarray(ctx.run.user_ids)
    test, item = ctx.split.test_pos, ctx.item_index(movie)
    liked_later = np.unique(test.user_index[test.item_index == item])
    if USER in set(user_ids.tolist()):
        user = ctx.user_index(USER)
        if user in set(liked_later.tolist()) or item in set(ctx.seen[user].indices.tolist()):
            return USER
    pool = liked_later if len(liked_later) else np.arange(len(user_ids))
    activity = ctx.split.train_pos.user_counts()[pool]
    return int(user_ids[pool[np.argsort(activity, kind="stable")[len(pool) // 2]]])


def _short_title(ctx: serving.Catalog, item_id: int) -> str:
    """"Star Wars (1977)" -> "Star Wars": the films as a lecturer names them."""
    title = re.sub(r" · id \d+$", "", _title(ctx, item_id))
    return re.sub(r"\s*\(\d{4}\)$", "", title)


def step_text(step: Step, ctx: serving.Catalog) -> str:
    return step.text.format(**examples(ctx).names(ctx))


# ---------------------------------------------------------------------- cached data
@shared.per_run(show_spinner=False, max_entries=16)
def _negatives(run: Run, alpha: float, negatives: int) -> pd.DataFrame:
    positives = shared.split_for(run.split_config).train_pos
    uniform = negative_mix(positives, negatives, "uniform", alpha)
    popular = negative_mix(positives, negatives, "popularity", alpha)
    return pd.DataFrame({"decile": uniform["decile"], "positives": uniform["positives"],
                         "uniform": uniform["negatives"],
                         f"popularity^{alpha:g}": popular["negatives"]})


@shared.per_run(show_spinner=False, max_entries=16)
def _cold_start(run: Run, likes: tuple[int, ...]) -> pd.DataFrame:
    ctx = shared.catalog(run)
    return display.readable(cold_start(ctx, list(likes), k=8))


@shared.per_run(show_spinner=False, max_entries=16)
def _funnel(run: Run, user: int) -> tuple[pd.DataFrame, pd.DataFrame, float, float]:
    ctx = shared.catalog(run)
    config = DEFAULT_RERANKING
    before = run_funnel(ctx, user, config.ranking_only(), k=10)
    after = run_funnel(ctx, user, config, k=10)
    factors = ctx.model.item_factors()
    diversity = [intra_list_diversity(factors, ctx.item_indices(f["item_id"])[None, :])
                 for f in (before, after)]
    return display.readable(before), display.readable(after), *diversity


@shared.per_run(show_spinner=False, max_entries=64)
def _question(run: Run, kind: str, *args: int | str) -> quiz.Question:
    """A predict-then-reveal question on ``run`` (built once per run and example)."""
    ctx = shared.catalog(run)
    build = {"neighbour": quiz.neighbour_question, "rank": quiz.rank_question,
             "dot-cosine": quiz.dot_or_cosine_question}[kind]
    return build(ctx, *args)


# ---------------------------------------------------------------------- helpers
def _example_movie(ctx: serving.Catalog, ex: Examples) -> int:
    """The example movie when it is in the example user's top 10, else their top pick: the
    movie whose anatomy the Recommendations link opens."""
    recs = serving.recommend(ctx, ex.user, k=10)
    return ex.movie if ex.movie in set(recs["item_id"]) else int(recs["item_id"].iloc[0])


def _movie_for_user(run: Run, ctx: serving.Catalog, ex: Examples) -> str:
    """What the model knows of the example user and movie, in one sentence."""
    user, movie = ctx.user_index(ex.user), plain(_short_title(ctx, ex.movie))
    if ctx.item_index(ex.movie) in set(ctx.seen[user].indices):
        return f"User {ex.user} liked {movie} before the test period: the model saw it."
    held_out = users_of_run.held_out_items(run, shared.split_for(run.split_config), user)
    if ex.movie in set(held_out.tolist()):
        return (f"User {ex.user} liked {movie}, but in the test period: the model never saw "
                "that like and has to guess it.")
    return f"User {ex.user} has no known like of {movie}."


def _title(ctx: serving.Catalog, item_id: int) -> str:
    return str(ctx.movies["title"].iloc[ctx.item_index(item_id)])


def _chart(fig: go.Figure, key: str) -> None:
    st.plotly_chart(frame.presenter_figure(fig), key=key, config={"displayModeBar": False})


def _has_vectors(run: Run) -> bool:
    if run.model.item_factors() is not None and run.model.user_factors() is not None:
        return True
    st.info(f"{anatomy.score_sentence(run.model)} Pick a run of "
            f"{', '.join(shared.EMBEDDING_MODELS)} in the sidebar to see this step's vectors.",
            icon=":material/info:")
    return False


def _table(frame: pd.DataFrame, key: str, height: int | None = None) -> None:
    st.dataframe(frame, hide_index=True, key=key, height=height or "auto",
                 column_config={"rank": st.column_config.NumberColumn("#", width=32),
                                "title": st.column_config.TextColumn(width="medium"),
                                "score": st.column_config.NumberColumn(format="%.2f")})


# ---------------------------------------------------------------------- the steps
def draw_embedding(run: Run, ctx: serving.Catalog):
    first = examples(ctx).first
    if _has_vectors(run):
        vector = ctx.model.item_factors()[ctx.item_index(first)]
        _chart(anatomy_charts.vector_chart(vector, _title(ctx, first)), "tour_vector")
        st.caption("Blue: positive, red: negative. No single number has a name; what counts "
                   "is which movies end up with vectors pointing the same way.")
        if predict_then_reveal(_question(run, "neighbour", first, "cosine"), "tour_q1"):
            near = serving.similar_movies(ctx, first, k=5, lens="cosine").embedding
            st.markdown(f"**The five vectors nearest to {plain(_short_title(ctx, first))}'s** "
                        "(cosine)")
            _table(near[["rank", "title", "score"]], "tour_near")
    replay, _ = shared.lesson_run(run)  # a run whose replay shows the space forming slowly
    if replay is not run:
        st.caption(f"{run.model.name} settles in a few sweeps, so the link below opens the "
                   f"replay of the class set's {replay.model.name} run: up to "
                   f"{replay.train_config.epochs} epochs of the space forming.")
    return ("pages/embedding_map.py", "Watch the vectors form, epoch by epoch",
            {"view": "replay", "movie": str(first), "run": replay.name})


def draw_dot_product(run: Run, ctx: serving.Catalog):
    ex = examples(ctx)
    if anatomy.has_anatomy(run.model):
        if not predict_then_reveal(_question(run, "rank", ex.user, ex.movie), "tour_q2"):
            return ("pages/recommendations.py", f"Take apart user {ex.user}'s recommendations",
                    {"user": str(ex.user), "movie": str(_example_movie(ctx, ex))})
        parts = anatomy.score_anatomy(ctx, ex.user, ex.movie)
        scale = anatomy.score_scale(ctx, ex.user, ex.movie)
        movie = _short_title(ctx, ex.movie)
        heat = anatomy.vector_heatmap(ctx, ex.user, [ex.movie], n_dims=24)
        _chart(anatomy_charts.heatmap_chart(heat, [f"user {ex.user} (u)", f"{movie} (v)"],
                                            colorbar=False), "tour_uv")
        dims, sum_, where = st.columns(3)
        with dims:
            _chart(anatomy_charts.dimensions_chart(parts.top_dimensions(4), height=280),
                   "tour_dims")
        with sum_:
            _chart(anatomy_charts.parts_chart(parts, height=280), "tour_parts")
        with where:
            _chart(anatomy_charts.scale_chart(scale, movie, height=280), "tour_scale")
        st.caption(f"{_movie_for_user(run, ctx, ex)} Top: u and v side by side, the "
                   f"{heat.shape[1]} dimensions that decide this score first. The model "
                   f"scores it {parts.score:.3f}: u_d × v_d summed over all "
                   f"{len(parts.contributions)} dimensions"
                   f"{' plus the biases' if len(parts.parts) > 1 else ''}; the bars are the "
                   f"largest terms of that sum. Blue: positive, red: negative. A score alone "
                   f"says little until it is ranked: for user "
                   f"{ex.user} this score ranks {scale.rank:,} of the {scale.candidates:,} "
                   f"movies they have not liked yet (higher than {scale.percentile:.1%}).")
    else:
        st.info(anatomy.score_sentence(run.model), icon=":material/info:")
        _table(serving.recommend(ctx, ex.user, k=5)[["rank", "title", "score"]], "tour_top")
        return ("pages/recommendations.py", f"User {ex.user}'s recommendations",
                {"user": str(ex.user)})
    return ("pages/recommendations.py", f"Take apart user {ex.user}'s recommendations",
            {"user": str(ex.user), "movie": str(_example_movie(ctx, ex))})


def draw_negatives(run: Run, ctx: serving.Catalog):
    lesson, note = shared.lesson_run(run)
    config = lesson.train_config
    alpha = config.alpha if config.neg_sampling == "popularity" else 0.75
    mix = _negatives(lesson, alpha, config.negatives)
    colours = {"positives": POSITIVES_BLUE, "uniform": NEGATIVES_ORANGE}  # as the Train page
    fig = go.Figure([go.Bar(x=mix["decile"], y=mix[column], name=column,
                            marker_color=colours.get(column, "#E45756"),
                            hovertemplate="decile %{x}: %{y:.1%}<extra>" + column + "</extra>")
                     for column in mix.columns[1:]])
    fig.update_layout(height=300, margin=SMALL, barmode="group",
                      legend=dict(orientation="h", y=1.12, x=0),
                      xaxis=dict(title="popularity decile (1 = least liked tenth, 10 = most liked)",
                                 dtick=1),
                      yaxis=dict(title="share", tickformat=".0%"))
    _chart(fig, "tour_negatives")
    uses = ("uniform" if config.neg_sampling == "uniform"
            else f"popularity^{config.alpha:g}")
    st.caption(f"One epoch's draws on the training data ({config.negatives} per like). "
               + (f"The active run samples {uses}." if note is None else note))
    return ("pages/train.py", "Compare the samplers on the Train page",
            {"view": "negatives", "run": lesson.name})


def draw_training(run: Run, ctx: serving.Catalog):
    run, note = shared.lesson_run(run)
    history = display.epochs_frame(run.history)
    if history.empty or "loss" not in history:
        st.info(f"{run.train_config.model} is fitted in one go: no epochs, no curve. Pick a run of "
                f"{', '.join(model_names(iterative=True))} in the sidebar to see one.",
                icon=":material/info:")
    else:
        fig = go.Figure(go.Scatter(x=history["epoch"], y=history["loss"], name="training loss",
                                   mode="lines+markers", line_color=GREY))
        if "valid_recall@10" in history:
            fig.add_trace(go.Scatter(x=history["epoch"], y=history["valid_recall@10"],
                                     name="validation Recall@10", mode="lines+markers",
                                     line_color=BLUE, yaxis="y2"))
        fig.update_layout(height=300, margin=SMALL, legend=dict(orientation="h", y=1.12, x=0),
                          xaxis=dict(title="epoch"), yaxis=dict(title="loss"),
                          yaxis2=dict(title="Recall@10", overlaying="y", side="right",
                                      showgrid=False, tickformat=".2f"))
        _chart(fig, "tour_curve")
        best = int(history["best_epoch"].iloc[-1]) if "best_epoch" in history else None
        st.caption(f"This run's {len(history)} epochs"
                   + (f"; the weights of epoch {best} were kept (best on validation)."
                      if best else ".") + (f" {note}" if note else ""))
    show_training_code(run.train_config.model,
                       engine_of(run.train_config.model, run.train_config))
    return ("pages/train.py", "Overlay the curves of several runs", {"view": "curves"})


def draw_metrics(run: Run, ctx: serving.Catalog):
    book = shared.run_book()
    full = leaderboard(book.usable, protocol_key(run.split_config))
    full = full.dropna(subset=["Recall@10"])
    # The best runs, always with the active one and the best popularity run.
    keep = full.index < 8
    keep |= (full["run"] == run.name).to_numpy()
    keep |= (full.index == full[full["model"] == "popularity"].index.min())
    board = full[keep].iloc[::-1]
    labels = [f"{m} · {r[:24]}" for m, r in zip(board["model"], board["run"], strict=True)]
    colours = [ORANGE if r == run.name else GREY if m == "popularity" else BLUE
               for m, r in zip(board["model"], board["run"], strict=True)]
    fig = go.Figure(go.Bar(x=board["Recall@10"], y=[html.escape(s) for s in labels],
                           orientation="h", marker_color=colours,
                           text=[f"{v:.3f}" for v in board["Recall@10"]], textposition="auto",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=90 + 28 * len(board), margin=SMALL,
                      xaxis=dict(title="test Recall@10 (same protocol)"))
    _chart(fig, "tour_board")
    _, sentence = verdict(full, run.name)
    ease = against_ease(full)
    st.caption(f"Orange: the active run; grey: popularity. {plain(sentence)}"
               + (f" {plain(ease)} {TUNED_AGAINST_EASE}" if ease else ""))
    if not (full["model"] == "popularity").any():
        st.info(f"No baselines on this protocol yet: {shared.PREPARE_HINT}",
                icon=":material/leaderboard:")
    return ("pages/train.py", "Who does each model serve? Recall@10 by user activity",
            {"view": "activity"})


def draw_similar(run: Run, ctx: serving.Catalog):
    movie = examples(ctx).similar
    own = serving.default_lens(ctx)
    columns = ["rank", "title", "score"]
    plain_cosine = serving.similar_movies(ctx, movie, k=8, lens="cosine")
    if plain_cosine.embedding is None:
        st.info(plain(plain_cosine.note), icon=":material/info:")
        _table(plain_cosine.cooccurrence[columns], "tour_similar")
    else:
        if own == "cosine":  # the model's lists need no other lens: against the co-likes
            other, title = plain_cosine.cooccurrence, "**Most often liked together**"
        else:
            other = serving.similar_movies(ctx, movie, k=8, lens=own).embedding
            title = f"**Through the {own} lens** (this model's default)"
        left, right = st.columns(2)
        with left:
            st.markdown("**Nearest vectors** (plain cosine)")
            _table(plain_cosine.embedding[columns], "tour_similar")
        with right:
            st.markdown(title)
            _table(other[columns], "tour_cooc")
        shared_titles = set(plain_cosine.embedding["item_id"]) & set(other["item_id"])
        st.caption(f"{len(shared_titles)} of 8 movies are in both lists. "
                   + (f"The {own} lens: {plain(serving.LENS_DESCRIPTIONS[own])}"
                      if own != "cosine" else ""))
        if run.model.user_factors() is not None:
            try:
                question = _question(run, "dot-cosine", examples(ctx).user)
            except ValueError:  # no niche film left to ask about
                question = None
            if question is not None:
                predict_then_reveal(question, "tour_q6")
    return ("pages/similar_movies.py", "Search any movie's neighbours, through every lens",
            {"movie": str(movie)})


def draw_cold_start(run: Run, ctx: serving.Catalog):
    likes = examples(ctx).likes
    liked = ", ".join(_title(ctx, i) for i in likes)
    try:
        recs = _cold_start(run, likes)
    except RecsysError as err:
        st.info(plain(err), icon=":material/info:")
    else:
        st.markdown(f"**A new visitor liked** {plain(liked)}")
        _table(recs[["rank", "title", "source", "genres"]], "tour_cold", height=318)
    return ("pages/profile.py", "Build a profile from your own likes",
            {"likes": ",".join(str(i) for i in likes)})


def draw_reranking(run: Run, ctx: serving.Catalog):
    user = examples(ctx).user
    if run.model.user_factors() is None:
        st.info(f"{run.train_config.model} has no user vectors, which the retrieval funnel "
                f"needs. Pick a run of {', '.join(shared.EMBEDDING_MODELS)} in the sidebar.",
                icon=":material/info:")
    else:
        before, after, div_before, div_after = _funnel(run, user)
        knobs = DEFAULT_RERANKING
        reranked = (f"Re-ranked (MMR λ {knobs.mmr_lambda:g}, popularity penalty "
                    f"{knobs.popularity_penalty:g})")
        left, right = st.columns(2)
        for col, title, table, diversity in ((left, "Ranked by score", before, div_before),
                                             (right, reranked, after, div_after)):
            with col:
                st.markdown(f"**{title}** · diversity {diversity:.2f}")
                _table(table[["rank", "title", "model_rank"]].rename(
                    columns={"model_rank": "by score"}), f"tour_{title[:6]}", height=388)
    return ("pages/recommendations.py", "Turn the re-ranking knobs yourself",
            {"user": str(user)})


# Step texts name the examples through {user}, {movie} and {first} (:meth:`Examples.names`).
STEPS = (
    Step("What an embedding is", "Embedding",
         "An **embedding** is a short list of numbers the model learns for every movie and "
         "every user. Here is {first}'s, as the active model learned it.",
         draw_embedding),
    Step("A score is a dot product", "Dot product",
         "A movie's score for a user is the **dot product** of their two vectors: multiply "
         "dimension by dimension and add up. Would user {user} like {movie}?",
         draw_dot_product),
    Step("Negative sampling", "Negatives",
         "The data only says what people liked. Training pairs each like with a few movies "
         "drawn at random as **negatives**: uniform draws are mostly obscure movies, "
         "popularity-weighted draws look like the likes.",
         draw_negatives),
    Step("Training", "Training",
         "Each epoch pulls a user's vector towards the movies they liked and away from the "
         "negatives. The loss falls; the held-out **validation Recall@10** says when to stop.",
         draw_training),
    Step("Metrics against popularity", "Metrics",
         "**Recall@10**: the share of a user's later likes that made their top 10. A model "
         "earns its vectors only if it beats the plain most-popular list.",
         draw_metrics),
    Step("Similar items", "Similar",  # short labels: the eight fit one line at 1,280 px
         "Movies whose vectors point the same way are liked by the same people. But plain "
         "cosine also pulls in what everyone watched: {similar}'s nearest vectors, beside "
         "the list through a **lens** that corrects for popularity.",
         draw_similar),
    Step("Cold start", "Cold start",
         "A new visitor has no vector yet. **Fold-in** solves for one from a few likes "
         "against the frozen movie vectors, in a millisecond and without retraining.",
         draw_cold_start),
    Step("Re-ranking", "Re-ranking",
         "The top of a ranking is often ten of a kind. **Re-ranking** trades a little score "
         "for variety (MMR) and less popularity: user {user}'s list before and after.",
         draw_reranking),
)


def link_params(run: Run, params: dict[str, str]) -> dict[str, str]:
    """A deep link's query params, with the active run so a shared link shows the same (a
    step that drew another run, e.g. the class set's mf-bpr, names that one)."""
    return {"run": run.name, **params}

