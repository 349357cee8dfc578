"""Home, and the app's entry point: ``streamlit run streamlit_app.py``.

Streamlit's documented ``pages/`` layout: this file is the home page and every file in
``pages/`` is a page of its own. Each page draws the shared frame itself (``ui.frame.page``:
navigation and heading first, before anything slow), then fetches shared objects through the
cached functions in ``ui.shared``. README § "How the app is built" says why.
"""

import streamlit as st

from ui import frame

frame.page("MovieLens embeddings", ":material/movie:")

import plotly.express as px  # noqa: E402  (heavy imports after the heading is on screen)

from ui import shared  # noqa: E402
from ui.text import plain, short  # noqa: E402

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
        frame_ = shared.projection_frame(run, "pca")
        fig = px.scatter(frame_, x="x", y="y", color="popularity", hover_name="label",
                         color_continuous_scale="Viridis", render_mode="webgl", height=380,
                         labels={"popularity": "ratings"})
        fig.update_traces(marker=dict(size=4))
        fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), xaxis_title="PC 1",
                          yaxis_title="PC 2")
        st.plotly_chart(fig, key="home_map")
        st.caption("PCA of the movie vectors, coloured by popularity (number of ratings). "
                   "Explore it on the Embedding map page.")
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
]
cols = st.columns(3)
for i, (path, label, icon, text) in enumerate(links):
    with cols[i % 3], st.container(border=True):
        st.page_link(path, label=label, icon=icon)
        st.caption(text)
