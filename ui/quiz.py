"""Predict, then reveal: a question before a figure, the live model's answer after, and how the
class voted (``recsys.lessons.quiz``). A choice is counted as soon as it is made, so the
lecturer sees answers come in before anyone reveals; each browser reveals for itself (the
projector's browser reveals for the room)."""

from __future__ import annotations

import html

import numpy as np
import streamlit as st

from recsys.lessons.quiz import VOTES_FOLDER, Question, Votes
from ui import frame, shared, state
from ui.display import figure
from ui.text import plain

LETTERS = "ABCDEFGH"
RIGHT, OTHER = "#2E86AB", "#C9D3DD"


def votes() -> Votes:
    return Votes(shared.runs_dir() / VOTES_FOLDER)


def predict_then_reveal(question: Question, key: str) -> bool:
    """Draws the question, or (once revealed in this browser) the answer and the class's
    votes. True when revealed: the caller then draws the figure."""
    revealed_key = f"{key}_revealed:{question.key}"
    with st.container(border=True):
        if not st.session_state.get(revealed_key):
            _ask(question, key, revealed_key)
            return False
        _answer(question, key, revealed_key)
    return True


def _label(question: Question, n: int) -> str:
    return f"{LETTERS[n]}. {question.choices[n]}"


def _ask(question: Question, key: str, revealed_key: str) -> None:
    st.markdown(f":material/psychology_alt: **Predict first.** {question.prompt}")
    choice_key = f"{key}_choice:{question.key}"
    st.radio("Your prediction", range(len(question.choices)), index=None, key=choice_key,
             format_func=lambda n: plain(_label(question, n)), label_visibility="collapsed",
             on_change=_cast, args=(question, choice_key))
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.button("Reveal the answer", key=f"{key}_reveal:{question.key}", type="primary",
                icon=":material/visibility:", on_click=_reveal, args=(revealed_key,))
    if shared.lecturer_key() is None or shared.is_lecturer():
        with right:
            _live_count(question)


@st.fragment(run_every=3.0)
def _live_count(question: Question) -> None:
    """For the lecturer (or in one person's app): answers so far, refreshed every 3 s."""
    total = int(votes().tally(question.key, len(question.choices)).sum())
    st.caption(f"{total} answer{'s' if total != 1 else ''} from the class so far.")


def _cast(question: Question, choice_key: str) -> None:
    choice = st.session_state.get(choice_key)
    if choice is None:
        return
    try:
        votes().cast(question.key, state.owner(), int(choice))
    except OSError:  # a read-only runs folder: the quiz works, the class count does not
        st.session_state["quiz_not_counted"] = True


def _reveal(revealed_key: str) -> None:
    st.session_state[revealed_key] = True


def _answer(question: Question, key: str, revealed_key: str) -> None:
    mine = st.session_state.get(f"{key}_choice:{question.key}")
    verdict = ("" if mine is None else "You got it. " if mine == question.answer
               else f"You said {LETTERS[mine]}. ")
    st.markdown(f":material/lightbulb: {verdict}{question.reveal}")
    counts = votes().tally(question.key, len(question.choices))
    if counts.sum():
        st.plotly_chart(frame.presenter_figure(_votes_chart(question, counts)),
                        key=f"{key}_votes:{question.key}", config={"displayModeBar": False})
    elif st.session_state.get("quiz_not_counted"):
        st.caption("Votes are not counted: the runs folder is read-only.")
    left, right = st.columns([1, 3])
    left.button("Ask again", key=f"{key}_again:{question.key}", icon=":material/replay:",
                on_click=st.session_state.pop, args=(revealed_key, None))
    if shared.is_lecturer() or (shared.lecturer_key() is None and counts.sum()):
        right.button("Clear the class's votes", key=f"{key}_clear:{question.key}",
                     icon=":material/delete_sweep:", on_click=votes().clear,
                     args=(question.key,), help="Before the next class asks the same question.")


def _votes_chart(question: Question, counts: np.ndarray):
    labels = [html.escape(_label(question, n)) for n in range(len(question.choices))][::-1]
    values = counts[::-1]
    colours = [RIGHT if n == question.answer else OTHER
               for n in range(len(question.choices))][::-1]
    total = int(counts.sum())
    return figure([dict(
        type="bar", x=values, y=labels, orientation="h", marker_color=colours,
        text=[f"{v} ({v / total:.0%})" for v in values], textposition="auto",
        hovertemplate="%{y}: %{x}<extra></extra>")],
        dict(height=60 + 34 * len(labels), margin=dict(l=0, r=10, t=30, b=0),
             title=dict(text=f"How the class voted ({total} answer{'s' if total != 1 else ''};"
                             " blue: the model's answer)", font_size=14),
             xaxis=dict(visible=False), yaxis=dict(automargin=True)))
