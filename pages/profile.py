"""Build your profile: a new user from a few liked / disliked movies, without retraining.

Likes and dislikes live in the URL (``?likes=1,50&dislikes=99``), so a profile can be shared.
"""

import streamlit as st

from ui import frame

frame.page("Build your profile")

import plotly.graph_objects as go  # noqa: E402  (heavy imports after the heading)

from recsys.errors import RecsysError  # noqa: E402
from recsys.models import model_names  # noqa: E402
from recsys.serving.coldstart import (  # noqa: E402
    ColdStartConfig,
    blend_weight,
    cold_start,
    coldstart_curve,
    map_position,
)
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

titles = shared.movie_names(run).titles  # most rated first


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
def curve_chart(model: str) -> tuple[go.Figure, str]:
    """Recall@10 against likes revealed, one line per method, for ``model`` (mf-als's where
    ``model`` was not measured), and the note that says so: constants of the code, the same
    for every visitor of a model, so built once per model name (shared read-only). Keyed by
    the name, not the curve's frame, which st.cache would hash on every view."""
    curve, note = coldstart_curve(model), ""
    if curve.empty:
        curve, note = coldstart_curve("mf-als"), " (measured for mf-als; this model was not)"
    return display.likes_curve_figure(curve), note


from_link = any(value is not None for value in linked.values())
for key, param in PARAMS.items():
    if linked[param] is not None or (from_link and param not in st.query_params):
        st.session_state[key] = linked[param] or []
    else:  # what the visitor has (after a switch of run: what that catalogue knows)
        st.session_state[key] = [i for i in st.session_state.get(key, []) if i in titles]
# The likes across the page and wrapping: every pick stays in view with its ×, the box grows
# (in a column, Streamlit keeps the chips on one row that scrolls and shows only the last).
liked = st.multiselect("Movies you liked", list(titles), format_func=titles.get,
                       key=KEY_PREFIX + "liked", placeholder="Type a title…", wrap=True)
st.session_state[KEY_PREFIX + "disliked"] = [i for i in st.session_state[KEY_PREFIX + "disliked"]
                                   if i not in liked]  # a movie is liked or disliked, not both
c2, c3 = st.columns([4, 1])
disliked = c2.multiselect("Movies you did not like", [i for i in titles if i not in liked],
                          format_func=titles.get, key=KEY_PREFIX + "disliked",
                          placeholder="Optional", wrap=True)
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

# The list across the page (beside the map, genres were cut at 1,280-1,366 px); the map below.
st.subheader("Recommended for you")
table = display.readable(recs)  # also drops attrs: the vector there is not serialisable
table["source"] = table["source"].map(BADGES).fillna(table["source"])
st.dataframe(table[["rank", "title", "source", "score", "genres"]],
             hide_index=True, key=KEY_PREFIX + "recs",
             column_config={"rank": st.column_config.NumberColumn("#", width=32),
                            "title": st.column_config.TextColumn(width=300),
                            "source": st.column_config.TextColumn(
                                width=170, help="what placed this movie in your list"),
                            "score": st.column_config.NumberColumn(format="%.2f", width=56)})

st.subheader("You on the map")
vector = recs.attrs.get("vector")
if vector is None:
    st.info("Your point appears once you like a movie, for dot-product models "
            f"({', '.join(model_names(folds_in=True))}).")
else:
    projection = shared.projection(run, "pca")
    frame = shared.projection_frame(run, "pca")
    liked_coords = projection.coords[ctx.item_indices(liked)]
    you = map_position(projection.pca_components, vector, liked_coords)
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(display.profile_map_figure(frame, liked, you, recs["item_id"].tolist()),
                      key=KEY_PREFIX + "map")
    right.markdown("A PCA of the movie vectors: each grey dot is a movie, **blue** the ones "
                   "you liked, ringed in **orange** the ones recommended. Your folded-in "
                   "vector goes through the same linear map as a *direction* (dotted): the "
                   "further a movie lies along it, the more this map's two axes add to its "
                   "score. The **star** sits on that direction at the depth of the movies you "
                   "liked (a user vector's length only reflects how few likes it has). Two "
                   "axes hold only part of the vectors: a recommended movie off the arrow "
                   "scores on the dimensions the map leaves out.")

st.divider()
st.subheader("How many likes does a new user need? (measured)")
curve_figure, note = curve_chart(model)
left, right = st.columns([3, 2], gap="large")
with left:
    st.plotly_chart(curve_figure, key=KEY_PREFIX + "curve")
with right:
    st.markdown(
        f"Users held out of training entirely were folded in from their first *n* likes; "
        f"Recall@10 counts their later likes{plain(note)}. **Content alone** (titles and "
        "genres) is the weakest source at every *n*; **fold-in** already matches "
        "popularity at one like and pulls ahead from a few; a light **blend** with content "
        "helps a little. Details: `bench/COLDSTART.md`.")
