"""Recommendations: a user's history beside their top-K, with explanations and knobs."""

import streamlit as st

from ui import frame

frame.page("Recommendations")

import numpy as np  # noqa: E402  (heavy imports after the heading is on screen)
import pandas as pd  # noqa: E402

from recsys.errors import RecsysError  # noqa: E402
from recsys.lessons import anatomy  # noqa: E402
from recsys.serving import catalog as serving  # noqa: E402
from recsys.serving import users as users_of_run  # noqa: E402
from recsys.serving.funnel import FunnelConfig, intra_list_diversity, run_funnels  # noqa: E402
from ui import anatomy as anatomy_charts  # noqa: E402
from ui import display, links, shared, state  # noqa: E402
from ui.text import plain, short  # noqa: E402

KEY_PREFIX = "rec_"  # widget key prefix of this page
LIST_COLUMNS = {  # shared by the top-K list and the two re-ranking lists
    "rank": st.column_config.NumberColumn("#", width=32),
    "test hit": st.column_config.CheckboxColumn("hit", width=40,
                                                help="a held-out test like of this user"),
    "title": st.column_config.TextColumn(width=270),
}
CELL_HINT = " A cut cell shows all its text when clicked."  # glide's overlay: the tooltip
state.carry(*(KEY_PREFIX + name for name in ("user", "k", "exclude", "scoring", "mmr", "fresh",
                                             "pop")))

ml, run = shared.context()
ctx = shared.catalog(run)

st.caption(f"Model: **{plain(run.train_config.model)}** ({short(run.name)}). Movies ticked in "
           "the *hit* column are ones the user really liked *after* the training period: the "
           "held-out test answers.")

users = shared.users(run)
labels = shared.user_labels(run)
linked = links.new_value(KEY_PREFIX, "user", int, lambda u: u in labels)  # also a link in-session
if linked is not None:
    st.session_state[KEY_PREFIX + "user"] = linked
elif st.session_state.get(KEY_PREFIX + "user") not in labels:  # new visitor, or run without them
    st.session_state[KEY_PREFIX + "user"] = next(iter(labels))

c1, c2, c3, c4 = st.columns([5, 2, 2, 2])  # room for "Exclude seen" at 21 px type
user_id = c1.selectbox("User (type to search by id, age, occupation)", list(labels),
                       format_func=labels.get, key=KEY_PREFIX + "user")
k = c2.slider("How many", 5, 30, 10, key=KEY_PREFIX + "k")
exclude_seen = c3.toggle("Exclude seen", value=True, key=KEY_PREFIX + "exclude",
                         help="Hide movies the user already rated positively before the test "
                              "period.")
has_factors = run.model.user_factors() is not None
scoring = c4.radio("Scoring", ["dot", "cosine"], key=KEY_PREFIX + "scoring", horizontal=True,
                   disabled=not has_factors,
                   help="dot: the model's own score (vector length counts, so popular movies "
                        "with long vectors rise). cosine: only the direction counts.")
if not has_factors:
    scoring = "dot"
links.write(KEY_PREFIX, "user", user_id)

row = users[users["user_id"] == user_id].iloc[0]
user_index = int(row["user_index"])
split = shared.split_for(run.split_config)
held_out = users_of_run.held_out_items(run, split, user_index)
shared.metric_row({
    "Age": str(row["age"]) if pd.notna(row["age"]) else "–",
    "Gender": row["gender"] if isinstance(row["gender"], str) else "–",
    "Ratings": f"{row['ratings']:,}",
    "Held-out test likes": f"{len(held_out):,}",
})

try:
    recs = serving.recommend(ctx, user_id, k=k, exclude_seen=exclude_seen, scoring=scoring,
                             explain=True)
except RecsysError as err:
    st.error(f"Cannot recommend for user {user_id}: {plain(err)}")
    st.stop()
recs = display.readable(users_of_run.mark_hits(recs, held_out))
# The two closest titles, without years: more, or their similarities, would crowd it.
recs["because"] = recs["because_items"].map(display.because_text)

# One above the other, each across the page: side by side at 1,280-1,366 px both tables cut
# their titles, dates and genres.
hits = int(recs["test hit"].sum())
st.subheader(f"Top {k} · {hits} test hit{'s' if hits != 1 else ''}")
personal = recs["because_items"].map(len).any()  # popularity: one list for everybody
cols = ["rank", "test hit", "title", "score", *(["because"] if personal else []), "genres"]
st.dataframe(recs[cols], hide_index=True, key=KEY_PREFIX + "recs",
             column_config={
                 **LIST_COLUMNS,
                 "score": st.column_config.NumberColumn(format="%.2f", width=56),
                 "because": st.column_config.TextColumn(
                     "because you liked…", width=270,
                     help="the two movies in the user's history most similar to this one."
                          + CELL_HINT),
                 "genres": st.column_config.TextColumn(help=CELL_HINT.strip()),
             })
if not personal:
    st.caption(f"{plain(run.train_config.model)} gives every user the same list (minus what "
               "they have seen): nothing in it comes from this user's taste.")
if not exclude_seen:
    st.caption("Seen movies are included: the model mostly re-finds what the user rated.")

st.subheader("History")
history = users_of_run.user_ratings(ml, run, split, user_index)
st.dataframe(history[["title", "rating", "part", "date", "genres"]], hide_index=True,
             height=316, key=KEY_PREFIX + "history",
             column_config={"rating": st.column_config.NumberColumn(
                                "★", format="%d", width=32, help="the user's rating, 1–5"),
                            "title": st.column_config.TextColumn(width=300),
                            "part": st.column_config.TextColumn(
                                width=120,
                                help="where the rating sits in the evaluation protocol"),
                            "date": st.column_config.DateColumn(width=96),
                            "genres": st.column_config.TextColumn(help=CELL_HINT.strip())})

st.divider()
st.subheader("Score anatomy: why is this movie on the list?")


@st.fragment  # changing the movie redraws this section only, not the whole page
def score_anatomy(picks: dict[int, str]) -> None:
    a1, a2 = st.columns([3, 4])
    movie_id = a1.selectbox("Recommended movie", list(picks),
                            format_func=lambda m: f"#{list(picks).index(m) + 1} {picks[m]}",
                            key=KEY_PREFIX + "movie")
    links.write(KEY_PREFIX, "movie", movie_id)
    parts = anatomy.score_anatomy(ctx, user_id, movie_id)
    a2.markdown(f"**{plain(picks[movie_id])}** scores **{parts.score:.3f}** for user "
                f"{user_id}: " + " + ".join(f"{name} ({value:+.3f})"
                                              for name, value in parts.parts.items())
                + (". The list is ranked by cosine; this is the model's own (dot) score."
                   if scoring == "cosine" else "."))
    p1, p2 = st.columns(2, gap="medium")
    p1.plotly_chart(anatomy_charts.parts_chart(parts), key=KEY_PREFIX + "parts")
    p2.plotly_chart(anatomy_charts.dimensions_chart(parts.top_dimensions(5)),
                    key=KEY_PREFIX + "dims")
    heat = anatomy.vector_heatmap(ctx, user_id, list(picks), n_dims=32)
    rows = [f"user {user_id}", *(f"#{i} {picks[m]}" for i, m in enumerate(picks, 1))]
    st.plotly_chart(anatomy_charts.heatmap_chart(heat, rows,
                                                 highlight=list(picks).index(movie_id) + 1),
                    key=KEY_PREFIX + "heat")
    st.caption(f"Top row: user {user_id}'s vector; below it the vectors of the top {len(picks)} "
               "movies, framed: the one taken apart above. Columns are the dimensions that "
               "weigh most in these scores (mean |u_d × v_d|), at most 32. Where the user's "
               "colour matches a movie's, that dimension raises its score.")


if not anatomy.has_anatomy(run.model):
    st.info(anatomy.score_sentence(run.model), icon=":material/info:")
else:
    picks = dict(zip(recs["item_id"].astype(int), recs["title"], strict=True))
    linked = links.new_value(KEY_PREFIX, "movie", int, lambda m: m in picks)
    if linked is not None:
        st.session_state[KEY_PREFIX + "movie"] = linked
    elif st.session_state.get(KEY_PREFIX + "movie") not in picks:  # new visitor, other user or k
        st.session_state[KEY_PREFIX + "movie"] = next(iter(picks))
    score_anatomy(picks)

st.divider()
st.subheader("Re-ranking: trade a little accuracy for variety")
if run.model.user_factors() is None:
    st.info(f"{run.train_config.model} has no user vectors, which the retrieval funnel needs. "
            f"Pick a run of {', '.join(shared.EMBEDDING_MODELS)} in the sidebar.")
else:
    r1, r2, r3 = st.columns(3)
    mmr = r1.slider("MMR λ (1 = pure relevance)", 0.0, 1.0, 0.7, 0.05, key=KEY_PREFIX + "mmr",
                    help="Lower values penalise movies similar to ones already picked.")
    fresh = r2.slider("Freshness boost", 0.0, 1.0, 0.0, 0.05, key=KEY_PREFIX + "fresh",
                      help="Adds weight × (release year scaled to 0..1).")
    pop = r3.slider("Popularity penalty", 0.0, 1.0, 0.2, 0.05, key=KEY_PREFIX + "pop",
                    help="Subtracts weight × (log popularity scaled to 0..1).")
    config = FunnelConfig(exclude_seen=exclude_seen, mmr_lambda=mmr,
                          freshness_weight=fresh, popularity_penalty=pop)
    try:  # both lists from one retrieval and scoring pass
        before, after = run_funnels(ctx, user_id, (config.ranking_only(), config), k=k)
        lists = {"Re-ranked": after, "Ranking only": before}
        indices = {title: ctx.item_indices(frame["item_id"]) for title, frame in lists.items()}
        # the closest liked movie of every row of both lists, in one call (rows are separate)
        reasons = serving.explain_items(ctx, user_id, np.concatenate(list(indices.values())),
                                        n_reasons=1)["because_items"].tolist()
    except RecsysError as err:
        st.error(f"Re-ranking failed: {plain(err)}")
    else:
        factors = run.model.item_factors()
        # The two lists one above the other, across the page: side by side at 1,280-1,366 px
        # the titles and reasons were cut. Not in tabs: with them the first click after the
        # page loaded took 12-22 s in Chromium (3 s without, load ~12). *was*: what moved.
        for title, frame in lists.items():
            items = indices[title]
            marked = users_of_run.mark_hits(frame, held_out)
            closest, reasons = reasons[:len(items)], reasons[len(items):]
            marked["reason"] = display.funnel_reasons(marked, closest)
            diversity = intra_list_diversity(factors, items[None, :])
            n_hits = int(marked["test hit"].sum())
            st.markdown(f"**{title}** · list diversity {diversity:.3f} · "
                        f"{n_hits} test hit{'s' if n_hits != 1 else ''}")
            st.dataframe(marked[["rank", "test hit", "title", "model_rank", "reason"]],
                         hide_index=True, key=KEY_PREFIX + title,
                         column_config={
                             **LIST_COLUMNS,
                             "title": st.column_config.TextColumn(width=300),
                             "model_rank": st.column_config.NumberColumn(
                                 "was", width=44,
                                 help="its rank by model score alone, before the knobs"),
                             "reason": st.column_config.TextColumn(
                                 "how it was found",
                                 help="vector: retrieved by the user's vector (FAISS top-N), "
                                      "with the liked movie closest to it; neighbour of: "
                                      "close to one of the user's most recent likes."
                                      + CELL_HINT)})
        if st.button("Measure these knobs on all test users", key=KEY_PREFIX + "measure"):
            with st.spinner("Running the funnel for every test user (a few seconds)…"):
                table = shared.compare_reranking(run, config)
            st.dataframe(table, key=KEY_PREFIX + "compare")

st.divider()
st.subheader("Users with similar taste")
try:
    neighbours = serving.similar_users(ctx, user_id, k=8)
except RecsysError as err:
    st.error(plain(err))
else:
    neighbours = neighbours.assign(shared=neighbours["shared"].map(", ".join))
    st.caption(f"Nearest by {neighbours.attrs.get('space', 'similarity')}.")
    st.dataframe(neighbours, hide_index=True, key=KEY_PREFIX + "neighbours",
                 column_config={
                     "rank": st.column_config.NumberColumn("#", width=32),
                     "user_id": st.column_config.NumberColumn("user", width=56),
                     "similarity": st.column_config.ProgressColumn(
                         min_value=0.0, max_value=1.0, format="%.2f", width=110),
                     "n_shared": st.column_config.NumberColumn(
                         "both liked", width=80, help="how many movies both users liked"),
                     "shared": st.column_config.TextColumn(
                         "movies both liked", help="most popular first." + CELL_HINT)})
