"""The frame every page draws first: page config, the app's own navigation, the heading.

The app uses Streamlit's documented ``pages/`` layout: ``streamlit_app.py`` is Home and each
file in ``pages/`` is a page with its own URL (``/recommendations``, …). Streamlit's automatic
file listing is switched off (``client.showSidebarNavigation = false``) and every page draws
this navigation itself, so the very first frame a visitor sees is the app's own sidebar and
heading — no private Streamlit internals, and deep links work on a fresh server.

This module imports nothing heavy: a page calls :func:`page` before importing the model code
(torch), so the heading is on screen while the rest loads.

**Presenter view** (``?present=1``, or the sidebar's toggle): for a projector at the back of a
room. The sidebar starts collapsed, the type and the figures are larger and pages leave out
what is secondary (:func:`presenting`); the choice lives in the session and in
the URL, so the projector's link keeps it.
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
        ("pages/compare.py", "Compare runs", ":material/compare_arrows:"),
    ),
}


PRESENT = "present"  # session key and query parameter of the presenter view
# Larger type (Streamlit sizes text in rem; tables draw on a canvas at their own size):
# readable from the back of a room on a 1,280 px projector. Figures grow with it
# (presenter_figure).
PRESENTER_CSS = """<style>
html { font-size: 21px; }
.block-container { max-width: 100%; }
</style>"""
PRESENTER_FONT = 17  # px: Plotly's text in the presenter view (its default is 12)


def presenting() -> bool:
    """Whether this browser shows the presenter view (pages then leave out what is secondary)."""
    return bool(st.session_state.get(PRESENT, False))


def page(title: str, icon: str | None = None) -> None:
    """Page config, the sidebar navigation and the page's heading, in that order."""
    asked = st.query_params.get(PRESENT)
    if asked is not None:  # a shared projector link wins over the session
        st.session_state[PRESENT] = asked == "1"
    present = presenting()
    # No page_icon: a Material icon favicon is fetched from Google's font CDN on every page
    # view, which a closed network refuses and a privacy-minded visitor would not expect.
    st.set_page_config(page_title=f"{title} · MovieLens embeddings", layout="wide",
                       initial_sidebar_state="collapsed" if present else "expanded")
    if present:
        st.query_params[PRESENT] = "1"
        st.html(PRESENTER_CSS)
    elif asked is not None:
        del st.query_params[PRESENT]
    with st.sidebar:
        st.markdown("**:material/movie: MovieLens embeddings**")
        for section, links in SECTIONS.items():
            st.caption(section)
            for path, label, link_icon in links:
                st.page_link(path, label=label, icon=link_icon)
        st.session_state["frame_present"] = present  # follows a link or the Leave button
        st.toggle("Presenter view", key="frame_present", on_change=_switch,
                  help="For a projector: larger type, the sidebar tucked away, one idea per "
                       "screen. The link (?present=1) keeps it.")
    if present:
        heading, leave = st.columns([6, 1], vertical_alignment="center")
        heading.title(f"{icon} {title}" if icon else title)
        leave.button("Leave", key="frame_leave", icon=":material/close_fullscreen:",
                     on_click=_switch, args=(False,), help="Leave the presenter view")
    else:
        st.title(f"{icon} {title}" if icon else title)


def _switch(on: bool | None = None) -> None:
    """The toggle's (or the Leave button's) callback: the session and the URL follow."""
    on = st.session_state.get("frame_present", False) if on is None else on
    st.session_state[PRESENT] = on
    if on:
        st.query_params[PRESENT] = "1"
    elif PRESENT in st.query_params:
        del st.query_params[PRESENT]


def presenter_figure(fig):
    """``fig`` (a Plotly figure) with larger text and room for it in the presenter view;
    unchanged otherwise. Returns the figure."""
    if presenting():
        big, bigger = PRESENTER_FONT, PRESENTER_FONT + 3
        fig.update_layout(font_size=big, title_font_size=bigger)
        fig.update_xaxes(tickfont_size=big - 2, title_font_size=big)
        fig.update_yaxes(tickfont_size=big - 2, title_font_size=big)
        fig.update_annotations(font_size=big)
        height = fig.layout.height
        if height:
            fig.update_layout(height=int(height * 1.25))
    return fig
