"""Home, and the app's entry point: ``streamlit run streamlit_app.py``.

Streamlit's documented ``pages/`` layout: this file is the home page and every file in
``pages/`` is a page of its own. Each page draws the shared frame itself (``ui.frame.page``:
navigation and heading first, before anything slow), then fetches shared objects through the
cached functions in ``ui.shared``. README § "How the app is built" says why.
"""

import streamlit as st

from ui import frame

frame.page("MovieLens embeddings", ":material/movie:")

from ui import embedding_map as map_data  # noqa: E402  (heavy imports after the heading)
from ui import shared  # noqa: E402
from ui.text import plain, short  # noqa: E402

HOME_GENRE = "Children's"  # in colour against grey: the region a class recognises first

st.markdown(
    "An **embedding** is a short list of numbers learned for every user and every movie. "
    "Training pushes a user's vector towards the movies they liked and away from the rest, so "
    "a movie's score for a user is simply how well the two vectors line up. Movies that the "
    "same people enjoy end up close together, which is what the pages below let you see."
)
ml, run = shared.context()

left, right = st.columns([3, 2], gap="large")
with left:
    st.subheader("The movies of the active model, in 2-D")
    if shared.has_item_embeddings(run, "to draw"):
        # t-SNE keeps the genre structure (bench/MAP_STRUCTURE.md); until the training worker
        # or the class set has cached it, the instant PCA of the same vectors stands in.
        method = "tsne" if shared.item_map_is_cached(run, "tsne") else "pca"
        frame_ = shared.item_map_frame(run, method)
        colouring = map_data.Colouring("genre", HOME_GENRE)
        fig = map_data.map_chart(run, method, colouring, frame_["x"].to_numpy(),
                                 frame_["y"].to_numpy(), item_map=True, height=420)
        st.plotly_chart(fig, key="home_map", config={"displayModeBar": False})
        how = ("t-SNE" if method == "tsne"
               else "PCA (a rough view until the t-SNE map is computed)")
        st.caption(f"{how} of the vectors of the {len(frame_):,} movies with enough "
                   f"likes; {HOME_GENRE} movies in red. Each label names a region's genres and "
                   "best-known titles. Explore it on the Embedding map page.")
with right:
    st.subheader("The data")
    c1, c2 = st.columns(2)
    c1.metric("Ratings", f"{len(ml.ratings):,}")
    c2.metric("Users", f"{ml.n_users:,}")
    c1.metric("Movies", f"{ml.n_items:,}")
    density = len(ml.ratings) / (ml.n_users * ml.n_items)
    c2.metric("Matrix filled", f"{density:.1%}")
    st.subheader("Active model")
    pinned = " (pinned default)" if shared.pinned_name() == run.name else ""
    st.markdown(f"**{plain(run.train_config.model)}** · {short(run.name)}{pinned}  \n"
                f"Test Recall@10 **{shared.metric_text(run, 'recall@10')}** · "
                f"NDCG@10 **{shared.metric_text(run, 'ndcg@10')}**  \n"
                f"{plain(run.split_config.describe())}")

st.divider()
st.subheader("Where to go")
links = [
    ("pages/tour.py", "Guided tour", ":material/school:",
     "the lecture in eight steps, each live on the active model"),
    ("pages/recommendations.py", "Recommendations", ":material/recommend:",
     "a user's history beside their top 10, the reason for each pick and its score taken "
     "apart"),
    ("pages/similar_movies.py", "Similar movies", ":material/hub:",
     "nearest neighbours in embedding space vs. co-occurrence"),
    ("pages/embedding_map.py", "Embedding map", ":material/scatter_plot:",
     "every movie as a point you can search and select"),
    ("pages/profile.py", "Build your profile", ":material/person_add:",
     "pick movies you like, get recommendations at once"),
    ("pages/train.py", "Train & evaluate", ":material/model_training:",
     "train a model live and compare it with the baselines"),
    ("pages/compare.py", "Compare runs", ":material/compare_arrows:",
     "an A/B test and interleaving of two runs on users: how many users each needs"),
]
cols = st.columns(3)
for i, (path, label, icon, text) in enumerate(links):
    with cols[i % 3], st.container(border=True):
        st.page_link(path, label=label, icon=icon)
        st.caption(text)
