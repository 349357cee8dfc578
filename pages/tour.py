"""Guided tour: the lecture storyline, one step per screen, each with a live figure from the
active model and a link into the page that goes further (``?step=N`` opens step N)."""

import streamlit as st

from ui import frame

frame.page("Guided tour")

from ui import links, shared, tour  # noqa: E402  (heavy imports after the heading)
from ui.text import plain, short  # noqa: E402

K = "tour_"
N = len(tour.STEPS)

if not shared.run_book().usable:
    st.info("The tour shows every step on a trained model, and there is none yet: the default "
            "model is being trained below. You can also train your own.",
            icon=":material/model_training:")
    st.page_link("pages/train.py", label="Train & evaluate", icon=":material/model_training:")
ml, run = shared.context()
ctx = shared.catalog(run)

linked = links.new_value(K, "step", int, lambda n: 1 <= n <= N)
current = st.session_state.get(K + "step")
# Always set through the API, so the step indicator shows it even when first drawn.
st.session_state[K + "step"] = (linked if linked is not None
                                else current if current in range(1, N + 1) else 1)


def step_label(n: int) -> str:
    """"3. Negatives"; in the presenter view the number alone (the heading names the step),
    so the eight steps fit on one line of large type."""
    return str(n) if frame.presenting() else f"{n}. {tour.STEPS[n - 1].short}"


def go_to(step: int) -> None:
    st.session_state[K + "step"] = step


@st.fragment  # a step change redraws the step only, not the sidebar and the frame
def show_step() -> None:
    st.segmented_control("Step", list(range(1, N + 1)), key=K + "step", required=True,
                         format_func=step_label,
                         label_visibility="collapsed", width="stretch")
    number = st.session_state[K + "step"]
    links.write(K, "step", number)
    step = tour.STEPS[number - 1]

    with st.container(border=True):
        st.subheader(f"Step {number} of {N} · {step.title}")
        st.markdown(tour.step_text(step, ctx))
        path, label, params = step.draw(run, ctx)
        st.page_link(path, label=label, icon=":material/arrow_forward:",
                     query_params=tour.link_params(run, params))

    back, _, forward = st.columns([1, 4, 1])
    back.button("Previous", key=K + "previous", icon=":material/arrow_back:", width="stretch",
                disabled=number == 1, on_click=go_to, args=(number - 1,))
    forward.button("Next", key=K + "next", icon=":material/arrow_forward:", width="stretch",
                   disabled=number == N, on_click=go_to, args=(number + 1,), type="primary")


if not frame.presenting():  # the presenter view keeps to the step itself
    st.caption(f"The lecture in {N} steps, live on the active model: "
               f"**{plain(run.train_config.model)}** ({short(run.name)}). Every figure is "
               "computed now from that model; the link under it opens the page that goes "
               "further, with the same example.")
show_step()
