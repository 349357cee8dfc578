"""Build your profile: a new user from a few liked / disliked movies, without retraining.

Likes and dislikes live in the URL (``?likes=1,50&dislikes=99``), so a profile can be shared.
"""

import streamlit as st

from ui import frame

frame.page("Build your profile")

import pandas as pd  # noqa: E402
import plotly.express as px  # noqa: E402  (heavy imports after the heading)
import plotly.graph_objects as go  # noqa: E402

from recsys.errors import RecsysError  # noqa: E402
from recsys.lessons.projection import place_user  # noqa: E402
from recsys.models import model_names  # noqa: E402
from recsys.serving.coldstart import ColdStartConfig, blend_weight, cold_start, coldstart_curve  # noqa: E402
from ui import display, links, shared, state  # noqa: E402
from ui.text import plain  # noqa: E402

KEY_PREFIX = "prof_"  # widget key prefix of this page
BADGES = {"collaborative": "collaborative (fold-in)", "content": "content (title & genres)",
          "both": "both (fold-in + content)", "popularity": "popularity"}
state.carry(*(KEY_PREFIX + name for name in ("liked", "disliked", "k", "by_hand", "blend")))

ml, run = shared.context()
ctx = shared.catalog(run)

st.caption("Tell the model a few movies you liked (and some you did not). Your vector is "
           "*folded in* against the frozen movie vectors in under a millisecond — no "
           "retraining. Title-and-genre similarity (content) is blended in by the weight that "
           "measured best for that many likes, and every row says which source placed it.")

movies = shared.catalogue(run).sort_values("popularity", ascending=False)
titles = dict(zip(movies["item_id"], movies["title"], strict=True))


def movie_ids(text: str) -> list[int]:
    """Movie ids of a comma-separated URL value; ValueError when one is not in the catalogue."""
    ids = [int(part) for part in text.split(",") if part.strip()]
    if any(i not in titles for i in ids):
        raise ValueError("unknown movie id")
    return list(dict.fromkeys(ids))


# A link names a whole profile (also one followed in-session, e.g. from the tour): when its
# likes or dislikes are new, a list it leaves out is empty.
PARAMS = {KEY_PREFIX + "liked": "likes", KEY_PREFIX + "disliked": "dislikes"}
linked = {param: links.new_value(KEY_PREFIX, param, movie_ids) for param in PARAMS.values()}
@st.cache_resource(show_spinner=False, max_entries=16)
def curve_chart(curve: pd.DataFrame) -> go.Figure:
    """Recall@10 against likes revealed, one line per method: the same for every visitor of
    a model, so built once (shared read-only)."""
    fig = px.line(curve, x="likes", y="recall@10", color="method", markers=True, log_x=True,
                  height=320, labels={"likes": "likes revealed", "recall@10": "test Recall@10"})
    fig.update_layout(margin=dict(l=0, r=0, t=10, b=0))
    return fig


from_link = any(value is not None for value in linked.values())
for key, param in PARAMS.items():
    if linked[param] is not None or (from_link and param not in st.query_params):
        st.session_state[key] = linked[param] or []
    else:  # what the visitor has (after a switch of run: what that catalogue knows)
        st.session_state[key] = [i for i in st.session_state.get(key, []) if i in titles]
c1, c2, c3 = st.columns([3, 3, 1])
liked = c1.multiselect("Movies you liked", list(titles), format_func=titles.get,
                       key=KEY_PREFIX + "liked", placeholder="Type a title…")
st.session_state[KEY_PREFIX + "disliked"] = [i for i in st.session_state[KEY_PREFIX + "disliked"]
                                   if i not in liked]  # a movie is liked or disliked, not both
disliked = c2.multiselect("Movies you did not like", [i for i in titles if i not in liked],
                          format_func=titles.get, key=KEY_PREFIX + "disliked",
                          placeholder="Optional")
k = c3.slider("How many", 5, 30, 10, key=KEY_PREFIX + "k")
for param, chosen in (("likes", liked), ("dislikes", disliked)):
    if chosen:
        links.write(KEY_PREFIX, param, ",".join(str(i) for i in chosen))
    else:
        links.drop(KEY_PREFIX, param)

model = run.train_config.model
b1, b2 = st.columns([1, 3])
by_hand = b1.toggle("Set the blend by hand", key=KEY_PREFIX + "by_hand",
                    help="Off: the collaborative weight measured best for this many likes "
                         "(bench/COLDSTART.md). On: your own weight, e.g. to show a class what "
                         "pure content or pure fold-in gives.")
measured = blend_weight(max(len(liked), 1), model)
if not by_hand:  # the disabled slider shows the measured weight, and starts from it
    st.session_state[KEY_PREFIX + "blend"] = measured
weight = b2.slider("Collaborative weight (1 = fold-in only, 0 = content only)", 0.0, 1.0,
                   measured, 0.1, key=KEY_PREFIX + "blend", disabled=not by_hand)
config = ColdStartConfig(blend=weight if by_hand else None)
if not liked:
    st.info("Pick at least one movie you liked. Until then you see the most popular movies — "
            "what any new visitor gets.", icon=":material/touch_app:")

try:
    recs = cold_start(ctx, liked, disliked, k=k, config=config)
except RecsysError as err:
    st.error(plain(err))
    st.stop()
if liked:
    w = float(recs["weight_collaborative"].iloc[0])
    how = ("set by hand" if by_hand else
           f"the blend measured best for {len(liked)} like{'s' if len(liked) > 1 else ''} "
           f"with {plain(model)}")
    st.info(f"{len(liked)} like{'s' if len(liked) > 1 else ''}: {w:.0%} collaborative, "
            f"{1 - w:.0%} content similarity — {how}.", icon=":material/tune:")

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("Recommended for you")
    table = display.readable(recs)  # also drops attrs: the vector there is not serialisable
    table["source"] = table["source"].map(BADGES).fillna(table["source"])
    st.dataframe(table[["rank", "title", "source", "score", "genres"]],
                 hide_index=True, key=KEY_PREFIX + "recs",
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
                f"({', '.join(model_names(folds_in=True))}).")
    else:
        frame = shared.projection_frame(run, "pca")
        x, y = place_user(shared.projection(run, "pca"), vector)
        mine = frame[frame["item_id"].isin(liked)]
        fig = display.figure([
            dict(type="scattergl", x=frame["x"].to_numpy(), y=frame["y"].to_numpy(),
                 mode="markers", text=frame["label"].to_numpy(),
                 marker=dict(size=4, color="#B8C2CC"), name="movies",
                 hovertemplate="%{text}<extra></extra>"),
            dict(type="scattergl", x=mine["x"].to_numpy(), y=mine["y"].to_numpy(),
                 mode="markers", text=mine["label"].to_numpy(),
                 marker=dict(size=9, color="#2E86AB"), name="liked",
                 hovertemplate="%{text}<extra>liked</extra>"),
            dict(type="scatter", x=[x], y=[y], mode="markers+text", text=["you"],
                 textposition="top center", name="you",
                 marker=dict(size=18, symbol="star", color="#E4572E",
                             line=dict(width=1, color="black"))),
        ], dict(height=420, margin=dict(l=0, r=0, t=10, b=0), legend=dict(orientation="h")))
        st.plotly_chart(fig, key=KEY_PREFIX + "map")
        st.caption("PCA of the movie vectors; your folded-in vector goes through the same "
                   "linear map, scaled to a typical movie's length (only its direction "
                   "decides what you are recommended).")

st.divider()
st.subheader("How many likes does a new user need? (measured)")
curve = coldstart_curve(model)
if curve.empty:
    curve, note = coldstart_curve("mf-als"), " (measured for mf-als; this model was not)"
else:
    note = ""
left, right = st.columns([3, 2], gap="large")
with left:
    st.plotly_chart(curve_chart(curve), key=KEY_PREFIX + "curve")
with right:
    st.markdown(
        f"Users held out of training entirely were folded in from their first *n* likes; "
        f"Recall@10 counts their later likes{plain(note)}. **Content alone** (titles and "
        "genres) is the weakest source at every *n*; **fold-in** already matches "
        "popularity at one like and pulls ahead from a few; a light **blend** with content "
        "helps a little. Details: `bench/COLDSTART.md`.")
