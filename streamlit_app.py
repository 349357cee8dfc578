"""The app's frame: page config, navigation over the files in ``pages/``, the shared sidebar.

Each ``url_path`` equals its file's stem on purpose: a page opened by direct URL on a fresh
server first runs in Streamlit's legacy ``pages/`` mode, and ``_shared.dataset()`` then
reruns it through this frame, which finds the same page by the same path.

Run with ``streamlit run streamlit_app.py``. Pages fetch shared objects through the cached
functions in ``pages/_shared.py``; this file only routes and draws the sidebar.
"""

import streamlit as st

from pages import _shared as shared

st.set_page_config(page_title="MovieLens embeddings", page_icon=":material/movie:", layout="wide")

PAGES = {
    "Explore": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True,
                url_path="home"),
        st.Page("pages/recommendations.py", title="Recommendations", icon=":material/recommend:",
                url_path="recommendations"),
        st.Page("pages/similar_movies.py", title="Similar movies", icon=":material/hub:",
                url_path="similar_movies"),
        st.Page("pages/embedding_map.py", title="Embedding map", icon=":material/scatter_plot:",
                url_path="embedding_map"),
        st.Page("pages/profile.py", title="Build your profile", icon=":material/person_add:",
                url_path="profile"),
    ],
    "Model": [
        st.Page("pages/train.py", title="Train & evaluate", icon=":material/model_training:",
                url_path="train"),
    ],
}

page = st.navigation(PAGES)
shared.dataset()
shared.sidebar()
page.run()
