"""Embedding map: every movie's vector in 2-D, searchable and selectable."""

import streamlit as st

from ui import frame

frame.page("Embedding map")

import numpy as np  # noqa: E402  (heavy imports after the heading is on screen)
import plotly.express as px  # noqa: E402
import plotly.graph_objects as go  # noqa: E402

from recsys import neighbours, projection, serving  # noqa: E402
from ui import display, shared, state  # noqa: E402
from ui.text import plain  # noqa: E402

K = "map_"
METHODS = {"PCA": "pca", "t-SNE": "tsne", "UMAP": "umap"}
# Measured for ML-100K on the 2-core machine, whole fresh processes (bench/APP_RESULTS.md):
# t-SNE ~8 s; UMAP ~18 s with numba's cache warm, ~40 s the very first time after install.
# Runs trained in the app get their maps from the training worker, so these waits only meet
# runs trained elsewhere.
SLOW = {"tsne": "about 10 seconds", "umap": "about 20 seconds, up to a minute the first time"}
state.carry(K + "method", K + "colour", K + "search")

ml, run = shared.context()
ctx = shared.catalog(run)

st.caption("Each dot is a movie, placed so that movies with similar vectors sit close together. "
           "Box- or lasso-select points to list them and their nearest neighbours.")

if not shared.has_item_embeddings(run, "to map"):
    st.stop()

c1, c2, c3 = st.columns([2, 1, 2])
method_label = c1.radio("Projection", list(METHODS), horizontal=True, key=K + "method",
                        help="PCA is instant and linear. t-SNE and UMAP keep local "
                             "neighbourhoods better; they are computed once and cached.")
colour = c2.selectbox("Colour by", ["genre", "popularity", "year", "norm"], key=K + "colour",
                      help="popularity = number of ratings; norm = length of the movie vector")
query = c3.text_input("Highlight titles", key=K + "search", placeholder="e.g. star wars")

method = METHODS[method_label]
try:
    if method in SLOW and not shared.projection_is_cached(run, method):
        with st.spinner(f"Computing the {method_label} map ({SLOW[method]}; once per run)…"):
            frame = shared.projection_frame(run, method)
    else:
        frame = shared.projection_frame(run, method)
except ValueError as err:
    st.error(f"Cannot draw the map: {plain(err)}")
    st.stop()

highlight = np.zeros(len(frame), bool)
if query.strip():
    found = serving.find_movies(ctx, query, limit=None)
    highlight = frame["item_id"].isin(set(found["item_id"])).to_numpy()
    if not highlight.any():
        st.info(f"No title contains “{plain(query)}”.")

discrete = colour == "genre"
fig = px.scatter(
    frame, x="x", y="y", color=colour, hover_name="label", custom_data=["item_id"],
    hover_data={"x": False, "y": False, "genres": True, "popularity": True, "year": ":.0f",
                "norm": ":.2f"},
    labels={"popularity": "ratings", "norm": "vector length"},
    render_mode="webgl", height=620, opacity=0.25 if highlight.any() else 0.75,
    color_discrete_sequence=px.colors.qualitative.Dark24 if discrete else None,
    color_continuous_scale=None if discrete else "Viridis",
)
fig.update_traces(marker=dict(size=5))
if highlight.any():
    hits = frame[highlight]
    fig.add_trace(go.Scattergl(
        x=hits["x"], y=hits["y"], mode="markers+text", text=hits["label"],
        textposition="top center", customdata=hits[["item_id"]].to_numpy(),
        marker=dict(size=12, color="#E4572E", line=dict(width=1.5, color="black")),
        name="search hits", hovertemplate="%{text}<extra>search hit</extra>"))
fig.update_layout(margin=dict(l=0, r=0, t=30, b=0), dragmode="lasso",
                  legend=dict(itemsizing="constant"), xaxis_title=None, yaxis_title=None)
event = st.plotly_chart(fig, key=K + "chart", on_select="rerun",
                        selection_mode=("points", "box", "lasso"))

chosen = display.selected_ids(st.session_state.get(K + "chart") or event)
if not chosen:
    st.caption("Tip: drag a lasso around a cluster to see what it is made of.")
else:
    picked = frame[frame["item_id"].isin(chosen)]
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader(f"{len(picked)} selected movies")
        st.dataframe(picked[["title", "genres", "popularity", "norm"]]
                     .sort_values("popularity", ascending=False),
                     hide_index=True, height=320, key=K + "picked",
                     column_config={"norm": st.column_config.NumberColumn(
                                        "length", format="%.2f", help="vector length"),
                                    "popularity": st.column_config.NumberColumn(
                                        "ratings", help="popularity: number of ratings")})
    with right:
        titles = dict(zip(picked["item_id"], picked["title"], strict=True))
        anchor = st.selectbox("Neighbours of", list(titles), format_func=titles.get,
                              key=K + "anchor")
        if ctx.item_counts[ctx.item_indices([anchor])[0]] < neighbours.MIN_POSITIVES:
            st.info(f"{plain(titles[anchor])} has fewer than {neighbours.MIN_POSITIVES} known "
                    "likes: its vector barely moved from where training started, so it has no "
                    "meaningful neighbours. Such movies gather in one clump on the map.")
        else:
            near = serving.similar_movies(ctx, int(anchor), k=10).embedding
            st.dataframe(near[["rank", "title", "score", "popularity"]], hide_index=True,
                         key=K + "near",
                         column_config={"score": st.column_config.NumberColumn(
                             "cosine", format="%.3f"),
                                        "popularity": st.column_config.NumberColumn("ratings")})

st.divider()
st.subheader("Why dot and cosine disagree: vector length vs popularity")
left, right = st.columns([3, 2], gap="large")
with left:
    norm_fig = px.scatter(frame, x="popularity", y="norm", hover_name="label", log_x=True,
                          render_mode="webgl", height=360, opacity=0.6,
                          labels={"popularity": "popularity: number of ratings (log scale)",
                                  "norm": "length of the movie vector"})
    norm_fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(norm_fig, key=K + "norms")
with right:
    corr = projection.norm_popularity_correlation(frame)
    st.metric("Rank correlation of length and popularity", f"{corr:+.2f}")
    st.markdown(
        "A dot product is *length × length × cos(angle)*. When popular movies get longer "
        "vectors, **dot** scoring pushes them up for everybody, while **cosine** looks only at "
        "the direction — taste — and surfaces more niche neighbours. Compare both on the "
        "Similar movies and Recommendations pages.")
