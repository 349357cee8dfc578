"""The code that ran (``recsys.lessons.code_view``): a model's objective in one line of maths
and the functions that compute its loss and update, shown from the source that trained it."""

from __future__ import annotations

import functools

import streamlit as st

from recsys.lessons.code_view import CodeView
from recsys.lessons.code_view import training_code as _read_training_code


@functools.lru_cache(maxsize=32)
def training_code(model: str, engine: str | None = None) -> CodeView:
    """The code view of ``model`` (and its engine), read from the source once per server
    process (the live job panel redraws twice a second)."""
    return _read_training_code(model, engine)


def engine_of(model: str, config: dict | object) -> str | None:
    """The engine that trains ``model`` under ``config`` (a TrainConfig or its dict), or None
    for a model with one way of training."""
    from recsys.models import MODELS

    if "engine" not in MODELS[model].settings:
        return None
    return config.get("engine") if isinstance(config, dict) else getattr(config, "engine", None)


def show_training_code(model: str, engine: str | None = None, expanded: bool = False) -> None:
    """An expander with ``model``'s objective and its training functions (those of ``engine``
    where the model has two), each titled with what it does and where it lives.

    Its content is sent only while it is open: the expander tracks its state (one rerun when
    a visitor opens or closes it), because a browser renders a closed expander's content all
    the same, and syntax-highlighting these functions took 0.4-0.56 s of Chromium's main thread
    right after a Train click, while the room waits for the live curves (Dec 2026)."""
    try:
        view = training_code(model, engine)
    except (KeyError, OSError, TypeError) as err:  # no entry, or no source on disk
        st.caption(f"The training code of {model} cannot be shown here ({err}).")
        return
    trained_by = f" ({engine} engine)" if engine else ""
    box = st.expander(f"The code that trained {model}{trained_by}", icon=":material/code:",
                      expanded=expanded, key=f"code_view_{model}_{engine or 'only'}",
                      on_change="rerun")
    if not box.open:
        return
    with box:
        st.latex(view.maths)
        for part in view.parts:
            st.markdown(f"**{part.label}** · `{part.where}`")
            st.code(part.source, language="python", line_numbers=True)
