"""The code that ran (``recsys.lessons.code_view``): a model's objective in one line of maths
and the functions that compute its loss and update, shown from the source that trained it."""

from __future__ import annotations

import functools

import streamlit as st

from recsys.lessons.code_view import CodeView
from recsys.lessons.code_view import training_code as _read_training_code


@functools.lru_cache(maxsize=32)
def training_code(model: str) -> CodeView:
    """The code view of ``model``, read from the source once per server process (the live job
    panel redraws twice a second)."""
    return _read_training_code(model)


def show_training_code(model: str, expanded: bool = False) -> None:
    """An expander with ``model``'s objective and its training functions, each titled with what
    it does and where it lives (file and lines)."""
    try:
        view = training_code(model)
    except (KeyError, OSError, TypeError) as err:  # no entry, or no source on disk
        st.caption(f"The training code of {model} cannot be shown here ({err}).")
        return
    with st.expander(f"The code that trained {model}", icon=":material/code:",
                     expanded=expanded):
        st.latex(view.maths)
        for part in view.parts:
            st.markdown(f"**{part.label}** · `{part.where}`")
            st.code(part.source, language="python", line_numbers=True)
