"""The frame every page draws first: page config, the app's own navigation, the heading.

The app uses Streamlit's documented ``pages/`` layout: ``streamlit_app.py`` is Home and each
file in ``pages/`` is a page with its own URL (``/recommendations``, …). Streamlit's automatic
file listing is switched off (``client.showSidebarNavigation = false``) and every page draws
this navigation itself, so the very first frame a visitor sees is the app's own sidebar and
heading — no private Streamlit internals, and deep links work on a fresh server.

This module imports nothing heavy: a page calls :func:`page` before importing the model code
(torch), so the heading is on screen while the rest loads.
"""

from __future__ import annotations

import streamlit as st

# (file, label, icon) per section, in the order of the sidebar.
SECTIONS = {
    "Explore": (
        ("streamlit_app.py", "Home", ":material/home:"),
        ("pages/tour.py", "Guided tour", ":material/school:"),
        ("pages/recommendations.py", "Recommendations", ":material/recommend:"),
        ("pages/similar_movies.py", "Similar movies", ":material/hub:"),
        ("pages/embedding_map.py", "Embedding map", ":material/scatter_plot:"),
        ("pages/profile.py", "Build your profile", ":material/person_add:"),
    ),
    "Model": (
        ("pages/train.py", "Train & evaluate", ":material/model_training:"),
    ),
}


def page(title: str, icon: str | None = None) -> None:
    """Page config, the sidebar navigation and the page's heading, in that order."""
    # No page_icon: a Material icon favicon is fetched from Google's font CDN on every page
    # view, which a closed network refuses and a privacy-minded visitor would not expect.
    st.set_page_config(page_title=f"{title} · MovieLens embeddings", layout="wide",
                       initial_sidebar_state="expanded")
    with st.sidebar:
        st.markdown("**:material/movie: MovieLens embeddings**")
        for section, links in SECTIONS.items():
            st.caption(section)
            for path, label, link_icon in links:
                st.page_link(path, label=label, icon=link_icon)
    st.title(f"{icon} {title}" if icon else title)
