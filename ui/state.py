"""Widget state that survives page switches, and per-visitor ids.

Streamlit forgets a widget's value once a page run does not draw it, so moving from
Recommendations to Similar movies and back would reset the user. Each page calls
:func:`carry` with the keys of its value widgets first thing: values present are copied
aside, and copies whose widget was forgotten are put back before the widgets are drawn.
(Buttons and chart selections are left out: Streamlit refuses to set those.)
"""

from __future__ import annotations

import uuid

import streamlit as st

_SAVED = "_kept."


def carry(*keys: str) -> None:
    """Saves the values of widgets ``keys`` and restores the ones Streamlit dropped while
    another page was shown."""
    state = st.session_state
    for key in keys:
        if key in state:
            # Re-set through the API: else a widget drawn first on this page starts in the
            # browser at its default and sends that back on the next interaction.
            state[key] = state[_SAVED + key] = state[key]
        elif _SAVED + key in state:
            state[key] = state[_SAVED + key]


def known(key: str) -> bool:
    """Whether widget ``key`` has a value in this session, drawn or kept aside."""
    return key in st.session_state or _SAVED + key in st.session_state


def remember(key: str, value: object) -> None:
    """Stores ``value`` as the saved copy of widget ``key`` (e.g. a value seeded from the URL)."""
    st.session_state[_SAVED + key] = value


def owner() -> str:
    """A stable id of this browser session: training jobs are kept per owner."""
    if "owner" not in st.session_state:
        st.session_state["owner"] = uuid.uuid4().hex
    return st.session_state["owner"]


def query_value(param: str, cast, valid=None):
    """``?param=`` cast with ``cast`` (and checked by ``valid``), or None with a plain-text
    warning when it is malformed. The raw value is never rendered as markdown."""
    from ui.text import short

    if param not in st.query_params:
        return None
    raw = st.query_params[param]
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or (valid is not None and not valid(value)):
        st.warning(f"Ignoring the link's {param}\\={short(raw, 60)}: not a valid value.")
        return None
    return value
