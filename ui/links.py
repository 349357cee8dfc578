"""Deep-link values that win over a page's remembered state when they are new.

A page remembers its widgets across page switches (:mod:`ui.state`), and writes its selection
into the URL. A link followed inside the same session (``st.page_link`` with query params,
e.g. from the guided tour) must still select what it names: the URL value is applied whenever
it differs from the value this page last wrote there itself.
"""

from __future__ import annotations

import streamlit as st

from ui import state

_WRITTEN = "_link_written."


def new_value(page: str, param: str, cast, valid=None):
    """``?param=`` (cast and checked like :func:`ui.state.query_value`) when the URL holds a
    value that page ``page`` (its key prefix) did not write itself; None otherwise (absent,
    unchanged or invalid)."""
    if param not in st.query_params:
        return None
    if st.query_params[param] == st.session_state.get(_WRITTEN + page + param):
        return None
    return state.query_value(param, cast, valid)


def write(page: str, param: str, value: object) -> None:
    """Puts ``value`` into the URL as ``?param=`` and remembers that page ``page`` wrote it."""
    st.query_params[param] = str(value)
    st.session_state[_WRITTEN + page + param] = str(value)


def drop(page: str, param: str) -> None:
    """Removes ``?param=`` from the URL and forgets what page ``page`` wrote there, so a later
    link with any value is new."""
    st.query_params.pop(param, None)
    st.session_state.pop(_WRITTEN + page + param, None)
