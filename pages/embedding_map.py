"""Embedding map: every movie's vector in 2-D, coloured by a genre, popularity or length, with
neighbour lines, a semantic axis between two genres and the training replay."""

import streamlit as st

from ui import frame

frame.page("Embedding map")

import numpy as np  # noqa: E402  (heavy imports after the heading is on screen)

from recsys.errors import RecsysError  # noqa: E402
from recsys.evaluation import neighbours  # noqa: E402
from recsys.lessons import projection  # noqa: E402
from recsys.serving import catalog as serving  # noqa: E402
from ui import display, links, shared, state  # noqa: E402
from ui import embedding_map as map_data  # noqa: E402
from ui.embedding_map import ALL_GENRES, COLOURS, Colouring  # noqa: E402
from ui.text import plain  # noqa: E402

KEY_PREFIX = "map_"  # widget key prefix of this page
METHODS = {"t-SNE": "tsne", "UMAP": "umap", "PCA": "pca"}  # the first is the default
DEFAULT_GENRE = "Children's"  # one genre in colour against grey: a region the eye finds
VIEWS = {"map": "Map", "axis": "Semantic axis", "replay": "Training replay"}
AXIS_Y = ("popularity", "vector length", "second axis")
# Measured for ML-100K on the 2-core machine, whole fresh processes (bench/APP_RESULTS.md):
# t-SNE ~8 s; UMAP ~18 s with numba's cache warm, ~40 s the very first time after install.
# Runs trained in the app get their maps from the training worker, so these waits only meet
# runs trained elsewhere.
SLOW = {"tsne": "about 10 seconds", "umap": "about 20 seconds, up to a minute the first time"}
state.carry(*(KEY_PREFIX + name for name in ("method", "colour", "genre", "search", "view", "movie",
                                             "axis_from", "axis_to", "axis_y", "axis2_from",
                                             "axis2_to")))

ml, run = shared.context()
ctx = shared.catalog(run)

st.caption("Each dot is a movie, placed so that movies with similar vectors sit close together. "
           "Box- or lasso-select points to list them and their nearest neighbours.")

if not shared.has_item_embeddings(run, "to map"):
    st.stop()

names = shared.movie_names(run)
titles = names.titles
genres = list(map_data.run_genres(run))


def seed_from_link(key: str, param: str, cast, valid):
    """Puts ``?param=`` into widget ``key`` when it is new to this page (a first visit or a
    link followed in-session, see :mod:`ui.links`; bad values are ignored with a warning);
    returns the value put, or None."""
    linked = links.new_value(KEY_PREFIX, param, cast, valid)
    if linked is not None:
        st.session_state[key] = linked
    return linked


def genre_pair(text: str) -> tuple[str, str]:
    start, end = text.split("..")
    return start, end


linked_view = seed_from_link(KEY_PREFIX + "view", "view", str, lambda v: v in VIEWS)
linked_colour = seed_from_link(KEY_PREFIX + "colour", "colour", str, lambda c: c in COLOURS)
linked_genre = seed_from_link(KEY_PREFIX + "genre", "genre", str, lambda g: g in genres)
seed_from_link(KEY_PREFIX + "movie", "movie", int, lambda m: m in titles)
pair = links.new_value(KEY_PREFIX, "axis", genre_pair,
                       lambda p: p[0] in genres and p[1] in genres and p[0] != p[1])
if pair is not None:
    st.session_state[KEY_PREFIX + "axis_from"], st.session_state[KEY_PREFIX + "axis_to"] = pair
    if linked_view is None:  # ?axis= alone means "show that axis"
        st.session_state[KEY_PREFIX + "view"] = "axis"
if linked_genre is not None and linked_colour is None:  # ?genre= alone means "colour by it"
    st.session_state[KEY_PREFIX + "colour"] = "genre"
if KEY_PREFIX + "genre" not in st.session_state and DEFAULT_GENRE in genres:
    st.session_state[KEY_PREFIX + "genre"] = DEFAULT_GENRE


def draw_replay(colouring: Colouring, movie: int | None) -> None:
    """The training replay of the active run, or why there is none."""
    recorded = map_data.replay_view(run)
    if recorded is None:
        st.info("This run has no training replay: it was trained before replays were "
                "recorded, or its model is fitted in one go. Train an mf-* or ncf model on "
                "the Train & evaluate page to get one.")
        return
    if isinstance(recorded, str):
        st.warning(f"The training replay of this run is unavailable: {plain(recorded)}. "
                   "The rest of the run works; retrain it to record a new replay.")
        return
    epochs = recorded.epochs
    lesson, _ = shared.lesson_run(run)
    if lesson is not run:  # a model that settles in a few sweeps: point at a slow one
        st.page_link("pages/embedding_map.py", icon=":material/play_circle:",
                     label=f"{run.train_config.model} settles in a few sweeps: watch the class "
                           f"set's {lesson.train_config.model} run form the space over "
                           f"{len(lesson.history)} epochs",
                     query_params={"view": "replay", "run": lesson.name})
    st.plotly_chart(map_data.replay_chart(run, colouring, movie), key=KEY_PREFIX + "replay")
    fit = "refit on train + validation" if recorded.phase == "refit" else "validated fit"
    listed = [str(e) for e in epochs] if len(epochs) <= 5 else [
        *(str(e) for e in epochs[:4]), "…", str(epochs[-1])]
    st.caption(
        f"{len(epochs)} snapshots of the {fit} "
        f"(epochs {', '.join(listed)}; epoch 0 = the "
        f"starting vectors), {recorded.file_bytes / 1e6:.1f} MB of float16 in the run. "
        "One fixed frame: each epoch's vectors are rotated onto the final ones (orthogonal "
        "Procrustes removes only the rotation a dot product cannot see) and placed with the "
        "final model's PCA, so the last frame is the PCA map. Press ▶ Play, or drag the slider.")


def draw_map(method: str, colouring: Colouring, x, y, movie: int | None, near: list[int], hits,
             x_title=None, y_title=None, log_y=False, regions: bool = False) -> list[int]:
    """The map at positions ``x``, ``y``: the item map of ``method`` with its region labels
    (``regions``), else the full PCA frame (the semantic axis); returns the ids selected."""
    fig = map_data.map_chart(run, method, colouring, x, y, movie=movie if near else None,
                             near=near, hits=hits, x_title=x_title, y_title=y_title, log_y=log_y,
                             item_map=regions)
    event = st.plotly_chart(fig, key=KEY_PREFIX + "chart", on_select="rerun",
                            selection_mode=("points", "box", "lasso"))
    return display.selected_ids(st.session_state.get(KEY_PREFIX + "chart") or event)


def selected_panel(frame_data, chosen: list[int]) -> None:
    """The movies selected in the map, and the nearest neighbours of one of them."""
    picked = frame_data[frame_data["item_id"].isin(chosen)]
    if picked.empty:  # e.g. a selection made on another view's points
        return
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader(f"{len(picked)} selected movies")
        st.dataframe(picked[["title", "genres", "popularity", "norm"]]
                     .sort_values("popularity", ascending=False),
                     hide_index=True, height=320, key=KEY_PREFIX + "picked",
                     column_config={"norm": st.column_config.NumberColumn(
                                        "length", format="%.2f", help="vector length"),
                                    "popularity": st.column_config.NumberColumn(
                                        "ratings", help="popularity: number of ratings")})
    with right:
        picked_titles = dict(zip(picked["item_id"], picked["title"], strict=True))
        anchor = st.selectbox("Neighbours of", list(picked_titles), format_func=picked_titles.get,
                              key=KEY_PREFIX + "anchor")
        if ctx.item_counts[ctx.item_indices([anchor])[0]] < neighbours.MIN_POSITIVES:
            st.info(f"{plain(picked_titles[anchor])} has fewer than {neighbours.MIN_POSITIVES} "
                    "known likes: its vector barely moved from where training started, so it "
                    "has no meaningful neighbours. Such movies gather in one clump on the map.")
        else:
            near_table = serving.similar_movies(ctx, int(anchor), k=10).embedding
            st.dataframe(near_table[["rank", "title", "score", "popularity"]], hide_index=True,
                         key=KEY_PREFIX + "near",
                         column_config={"score": st.column_config.NumberColumn(
                             "cosine", format="%.3f"),
                                        "popularity": st.column_config.NumberColumn("ratings")})


@st.fragment  # a control redraws this section only, not the sidebar and the figure below it
def map_section() -> None:
    """The view switch, the map's controls, the map (or axis, or replay) and the selection."""
    view = st.radio("View", list(VIEWS), format_func=VIEWS.get, horizontal=True,
                    key=KEY_PREFIX + "view", label_visibility="collapsed")
    c1, c2, c3, c4 = st.columns([1.2, 1.2, 2.2, 1.6])
    colour = c1.selectbox("Colour by", list(COLOURS), format_func=COLOURS.get,
                          key=KEY_PREFIX + "colour",
                          help="genre: every movie is in each of its genres (pick one to see just "
                               "it); popularity: number of ratings; vector length: the norm of "
                               "the movie vector")
    genre = c2.selectbox("Genre", [ALL_GENRES, *genres], key=KEY_PREFIX + "genre",
                         disabled=colour != "genre",
                         help="One genre in colour, the rest grey. With all genres, click a "
                              "legend entry to hide it, double-click to isolate it.")
    movie = c3.selectbox("Movie", list(names.by_popularity), index=None, key=KEY_PREFIX + "movie",
                         format_func=lambda i: titles.get(i, str(i)),
                         placeholder="Pick a movie to follow",
                         help="Map views: lines to its 10 nearest neighbours by cosine. "
                              "Replay: the path its vector took during training.")
    query = c4.text_input("Highlight titles", key=KEY_PREFIX + "search",
                          placeholder="e.g. star wars")
    colouring = Colouring(colour, genre if colour == "genre" else ALL_GENRES)

    for param, value in (("view", view), ("colour", colour),
                         ("genre", genre if colour == "genre" and genre != ALL_GENRES else None),
                         ("movie", movie)):
        if value is None:
            links.drop(KEY_PREFIX, param)
        else:
            links.write(KEY_PREFIX, param, value)

    found = set(serving.find_movies(ctx, query, limit=None)["item_id"]) if query.strip() \
        else None
    if found is not None and not found:
        st.info(f"No title contains “{plain(query)}”.")

    def hits_on(frame_data) -> np.ndarray | None:
        """The search hits among the rows of a map's frame."""
        return None if found is None else frame_data["item_id"].isin(found).to_numpy()

    near = map_data.neighbour_ids(ctx, movie) if movie is not None else []
    if movie is not None and not near and view != "replay":
        st.info(f"{plain(titles[movie])} has fewer than {neighbours.MIN_POSITIVES} known likes: "
                "its vector barely moved from where training started, so no neighbour lines.")

    if view != "axis":
        links.drop(KEY_PREFIX, "axis")
    if view == "replay":
        frame_data = shared.projection_frame(run, "pca")
        draw_replay(colouring, movie)
        chosen = []
    elif view == "axis":
        a1, a2, a3, a4, a5 = st.columns(5)
        default_from = genres.index("Children's") if "Children's" in genres else 0
        default_to = genres.index("Horror") if "Horror" in genres else len(genres) - 1
        start = a1.selectbox("Axis from (x = 0)", genres, index=default_from,
                             key=KEY_PREFIX + "axis_from")
        end = a2.selectbox("to (x = 1)", genres, index=default_to, key=KEY_PREFIX + "axis_to")
        y_axis = a3.selectbox("y axis", AXIS_Y, key=KEY_PREFIX + "axis_y",
                              help="popularity: number of ratings (log scale); second axis: "
                                   "another direction between two genres")
        frame_data = shared.projection_frame(run, "pca")
        try:
            x = map_data.genre_axis(run, start, end)
            if y_axis == "second axis":
                y_from = a4.selectbox("y from", genres, index=genres.index("Comedy")
                                      if "Comedy" in genres else 0, key=KEY_PREFIX + "axis2_from")
                y_to = a5.selectbox("y to", genres, index=genres.index("Drama")
                                    if "Drama" in genres else 0, key=KEY_PREFIX + "axis2_to")
                y, y_title = map_data.genre_axis(run, y_from, y_to), f"{y_from} → {y_to}"
                log_y = False
            elif y_axis == "popularity":
                y, y_title, log_y = frame_data["popularity"] + 1, "ratings + 1 (log scale)", True
            else:
                y, y_title, log_y = frame_data["norm"], "vector length", False
        except RecsysError as err:
            st.error(f"Cannot draw this axis: {plain(err)}")
            return
        links.write(KEY_PREFIX, "axis", f"{start}..{end}")
        st.caption(f"x: each movie's vector projected on the direction from the mean {start} "
                   f"movie (0) to the mean {end} movie (1), like the Embedding Projector's custom "
                   "projection.")
        chosen = draw_map("pca", colouring, x, np.asarray(y, np.float64), movie, near,
                          hits_on(frame_data), f"{start} → {end}", y_title, log_y)
    else:
        method_label = st.radio("Projection", list(METHODS), horizontal=True,
                                key=KEY_PREFIX + "method",
                                help="t-SNE keeps the most of the vectors' genre structure "
                                     "(bench/MAP_STRUCTURE.md); UMAP a little less; PCA is "
                                     "instant and linear, and keeps little of it. t-SNE and "
                                     "UMAP are computed once per run and cached.")
        method = METHODS[method_label]
        try:
            if method in SLOW and not shared.item_map_is_cached(run, method):
                with st.spinner(f"Computing the {method_label} map ({SLOW[method]}; "
                                "once per run)…"):
                    frame_data = shared.item_map_frame(run, method)
            else:
                frame_data = shared.item_map_frame(run, method)
        except RecsysError as err:
            st.error(f"Cannot draw the map: {plain(err)}")
            return
        chosen = draw_map(method, colouring, frame_data["x"].to_numpy(),
                          frame_data["y"].to_numpy(), movie, near, hits_on(frame_data),
                          regions=True)
        st.caption(f"The {len(frame_data):,} movies with at least {neighbours.MIN_POSITIVES} "
                   "known likes (the rest have barely trained vectors), their vectors at unit "
                   "length without the shared popularity direction: what the similar-movie "
                   "lists read. Labels: each region's most over-represented genres and its "
                   "best-known titles.")

    if view != "replay" and not chosen:
        st.caption("Tip: drag a lasso around a cluster to see what it is made of.")
    elif chosen:
        selected_panel(frame_data, chosen)


map_section()

st.divider()
norms_frame = shared.projection_frame(run, "pca")  # lengths and popularity: one per movie
st.subheader("Why dot and cosine disagree: vector length vs popularity")
left, right = st.columns([3, 2], gap="large")
with left:
    st.plotly_chart(map_data.norms_chart(run), key=KEY_PREFIX + "norms")
with right:
    corr = projection.norm_popularity_correlation(norms_frame)
    st.metric("Rank correlation of length and popularity", f"{corr:+.2f}")
    st.markdown(
        "A dot product is *length × length × cos(angle)*. When popular movies get longer "
        "vectors, **dot** scoring pushes them up for everybody, while **cosine** looks only at "
        "the direction — taste — and surfaces more niche neighbours. Compare both on the "
        "Similar movies and Recommendations pages.")
