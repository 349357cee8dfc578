"""Build your profile: a new user from a few liked / disliked movies, without retraining.

Likes and dislikes live in the URL (``?likes=1,50&dislikes=99``), so a profile can be shared.
"""

import streamlit as st

from ui import frame

frame.page("Build your profile")

import plotly.graph_objects as go  # noqa: E402  (heavy imports after the heading)

from recsys import app_support as sup  # noqa: E402
from recsys.coldstart import ColdStartConfig, cold_start  # noqa: E402
from recsys.projection import place_user  # noqa: E402
from ui import shared, state  # noqa: E402
from ui.text import plain  # noqa: E402

K = "prof_"
BADGES = {"collaborative": "collaborative (fold-in)", "content": "content (title & genres)",
          "popularity": "popularity"}
state.carry(K + "liked", K + "disliked", K + "k")

ml, run = shared.context()
ctx = shared.catalog(run)

st.caption("Tell the model a few movies you liked (and some you did not). Your vector is "
           "*folded in* against the frozen movie vectors in under a millisecond — no "
           "retraining. With fewer than 5 likes, title-and-genre similarity (content) is "
           "blended in, and every row says which source placed it.")

movies = shared.catalogue(run).sort_values("popularity", ascending=False)
titles = dict(zip(movies["item_id"], movies["title"], strict=True))


def movie_ids(text: str) -> list[int]:
    """Movie ids of a comma-separated URL value; ValueError when one is not in the catalogue."""
    ids = [int(part) for part in text.split(",") if part.strip()]
    if any(i not in titles for i in ids):
        raise ValueError("unknown movie id")
    return list(dict.fromkeys(ids))


for key, param in ((K + "liked", "likes"), (K + "disliked", "dislikes")):
    if key not in st.session_state:
        st.session_state[key] = state.query_value(param, movie_ids) or []
    else:  # a run with another catalogue: keep what it knows
        st.session_state[key] = [i for i in st.session_state[key] if i in titles]
c1, c2, c3 = st.columns([3, 3, 1])
liked = c1.multiselect("Movies you liked", list(titles), format_func=titles.get,
                       key=K + "liked", placeholder="Type a title…")
st.session_state[K + "disliked"] = [i for i in st.session_state[K + "disliked"]
                                   if i not in liked]  # a movie is liked or disliked, not both
disliked = c2.multiselect("Movies you did not like", [i for i in titles if i not in liked],
                          format_func=titles.get, key=K + "disliked",
                          placeholder="Optional")
k = c3.slider("How many", 5, 30, 10, key=K + "k")
for param, chosen in (("likes", liked), ("dislikes", disliked)):
    if chosen:
        st.query_params[param] = ",".join(str(i) for i in chosen)
    else:
        st.query_params.pop(param, None)

config = ColdStartConfig()
if not liked:
    st.info("Pick at least one movie you liked. Until then you see the most popular movies — "
            "what any new visitor gets.", icon=":material/touch_app:")
elif len(liked) < config.min_likes:
    st.info(f"{len(liked)} like{'s' if len(liked) > 1 else ''} so far: below "
            f"{config.min_likes}, content similarity is blended in "
            f"({len(liked) / config.min_likes:.0%} collaborative).", icon=":material/description:")

try:
    recs = cold_start(ctx, liked, disliked, k=k, config=config)
except ValueError as err:
    st.error(plain(err))
    st.stop()

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Recommended for you")
    table = sup.readable(recs)  # also drops attrs: the vector there is not serialisable
    table["source"] = table["source"].map(BADGES).fillna(table["source"])
    st.dataframe(table[["rank", "title", "source", "score", "genres"]],
                 hide_index=True, key=K + "recs",
                 column_config={"rank": st.column_config.NumberColumn("#", width=32),
                                "title": st.column_config.TextColumn(width=200),
                                "source": st.column_config.TextColumn(
                                    width=150, help="what placed this movie in your list"),
                                "score": st.column_config.NumberColumn(format="%.2f",
                                                                       width=52)})
with right:
    st.subheader("You on the map")
    vector = recs.attrs.get("vector")
    if vector is None:
        st.info("Your point appears once you like a movie, for dot-product models "
                "(mf-*, svd).")
    else:
        frame = shared.projection_frame(run, "pca")
        x, y = place_user(shared.projection(run, "pca"), vector)
        mine = frame[frame["item_id"].isin(liked)]
        fig = go.Figure([
            go.Scattergl(x=frame["x"], y=frame["y"], mode="markers", text=frame["title"],
                         marker=dict(size=4, color="#B8C2CC"), name="movies",
                         hovertemplate="%{text}<extra></extra>"),
            go.Scattergl(x=mine["x"], y=mine["y"], mode="markers", text=mine["title"],
                         marker=dict(size=9, color="#2E86AB"), name="liked",
                         hovertemplate="%{text}<extra>liked</extra>"),
            go.Scatter(x=[x], y=[y], mode="markers+text", text=["you"],
                       textposition="top center", name="you",
                       marker=dict(size=18, symbol="star", color="#E4572E",
                                   line=dict(width=1, color="black"))),
        ])
        fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0),
                          legend=dict(orientation="h"))
        st.plotly_chart(fig, key=K + "map")
        st.caption("PCA of the movie vectors; your folded-in vector goes through the same "
                   "linear map, scaled to a typical movie's length (only its direction "
                   "decides what you are recommended).")
