"""Train & evaluate: a form built from the config dataclasses, a background training job with
live curves, and a leaderboard of every run on one evaluation protocol."""

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from pages import _shared as shared
from recsys import app_support as sup
from recsys.config import SplitConfig, TrainConfig
from recsys.jobs import DONE, FAILED, new_run_dir
from recsys.models import MODELS
from recsys.runs import train_run

K = "train_"  # widget key prefix of this page

ml = shared.dataset()
run = shared.active_run()
manager = shared.job_manager()
owner = shared.owner()

st.title("Train & evaluate")
st.caption("Fit a model in the background (you can switch pages while it trains), then compare "
           "it with the baselines on exactly the same evaluation protocol.")


# ---------------------------------------------------------------------- form
def field_widget(spec: sup.FieldSpec, scope: str = ""):
    """One widget for one config field, with its default and help text. ``scope`` joins the
    key, so each model's form keeps its own values and starts from that model's defaults."""
    key, label = K + scope + spec.name, spec.label
    if spec.choices:
        options = list(spec.choices)
        return st.selectbox(label, options, index=options.index(spec.default), key=key,
                            help=spec.help)
    if spec.kind is bool:
        return st.checkbox(label, value=spec.default, key=key, help=spec.help)
    if spec.kind is int:
        return st.number_input(label, value=int(spec.default), step=1, key=key, help=spec.help)
    if spec.kind is float:
        fmt = "%.4g" if abs(spec.default) < 0.1 and spec.default else "%.2f"
        step = spec.default / 10 if 0 < spec.default < 0.1 else 0.05
        return st.number_input(label, value=float(spec.default), step=step, format=fmt, key=key,
                               help=spec.help)
    return st.text_input(label, value=str(spec.default), key=key, help=spec.help)


active_job = manager.active(owner)
model_spec = next(s for s in sup.field_specs(TrainConfig) if s.name == "model")
model = field_widget(model_spec)
model_defaults = sup.field_specs(TrainConfig, TrainConfig.for_model(model))
with st.form(K + "form", border=True):
    st.markdown(f"**{model}: hyperparameters** · {MODELS[model].description}")
    train_specs = {s.name: s for s in model_defaults if s.name != "model"}
    values = {"model": model}
    cols = st.columns(3)
    for i, name in enumerate(n for n in sup.MAIN_TRAIN_FIELDS if n != "model"):
        with cols[i % 3]:
            values[name] = field_widget(train_specs[name], model)
    with st.expander("Evaluation protocol (split)"):
        cols = st.columns(3)
        for i, spec in enumerate(sup.field_specs(SplitConfig)):
            with cols[i % 3]:
                values[spec.name] = field_widget(spec)
    with st.expander("Advanced"):
        cols = st.columns(3)
        rest = [s for n, s in train_specs.items() if n not in sup.MAIN_TRAIN_FIELDS]
        for i, spec in enumerate(rest):
            with cols[i % 3]:
                values[spec.name] = field_widget(spec, model)
    submitted = st.form_submit_button("Train", type="primary", key=K + "submit",
                                      disabled=active_job is not None)

if submitted:
    try:
        split_config, train_config = sup.build_configs(values)
    except ValueError as err:
        st.error(f"Cannot train with these settings: {err}")
    else:
        active_job = manager.submit(owner, ml, split_config, train_config, shared.runs_dir())
        st.session_state[K + "protocol"] = sup.protocol_key(split_config)


# ---------------------------------------------------------------------- live job
def curves(history) -> go.Figure:
    frame = sup.history_frame(history)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Training loss",
                                                        "Validation Recall@10"))
    if len(frame):
        fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["loss"], mode="lines+markers",
                                 name="loss"), row=1, col=1)
        if "valid_recall@10" in frame:
            fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["valid_recall@10"],
                                     mode="lines+markers", name="valid Recall@10"), row=1, col=2)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(frame) <= 20 else None)
    fig.update_layout(height=300, showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


@st.fragment(run_every=0.5 if active_job is not None else None)
def job_panel() -> None:
    job = manager.latest(owner)
    if job is None:
        return
    snap = job.snapshot()
    st.subheader(f"Your latest job: {snap.model}")
    if snap.status == FAILED:
        st.error(f"Training failed: {snap.error}\n\nTry a lower learning rate or fewer "
                 "negatives, then train again.")
        return
    text = (f"{snap.phase} · {snap.seconds:.1f} s" if not snap.is_finished
            else f"{snap.phase} in {snap.seconds:.1f} s · saved as `{snap.run_path.name}`")
    st.progress(snap.progress, text=text)
    if snap.history:
        st.plotly_chart(curves(snap.history), key=K + "curves")
    if not snap.is_finished:
        if st.button("Stop after this epoch", key=K + "stop"):
            job.cancel()
    elif st.session_state.get(K + "seen_job") != snap.id:
        # First time we see it finished: make it this visitor's active run, redraw the page.
        st.session_state[K + "seen_job"] = snap.id
        if snap.run_path is not None:
            shared.select_run(snap.run_path.name)
        st.rerun(scope="app")
    elif snap.status == DONE:
        st.success(f"Done: `{snap.run_path.name}` is now your active model.")


job_panel()


# ---------------------------------------------------------------------- leaderboard
st.divider()
st.header("Leaderboard")
runs = shared.all_runs()
protocols = list(dict.fromkeys(sup.protocol_key(r.split_config) for r in runs))
mine = sup.protocol_key(run.split_config)
if st.session_state.get(K + "protocol") not in protocols:
    st.session_state[K + "protocol"] = mine if mine in protocols else protocols[0]
protocol = st.selectbox("Evaluation protocol", protocols, key=K + "protocol",
                        help="Only runs evaluated the same way can be compared.")
st.info(f"**Protocol:** {protocol}. Test metrics at K = 10, ranking all movies and excluding "
        "each user's training and validation positives.", icon=":material/straighten:")

board = sup.leaderboard(runs, protocol)
split_of_protocol = next(r.split_config for r in runs
                         if sup.protocol_key(r.split_config) == protocol)
missing = [b for b in sup.BASELINES if b not in set(board["model"])]
if missing and st.button(f"Train baselines ({', '.join(missing)}) on this protocol",
                         key=K + "baselines"):
    with st.spinner("Training baselines (a couple of seconds)…"):
        split = shared.split_for(split_of_protocol)
        try:
            for model in missing:
                config = TrainConfig.for_model(model)
                train_run(ml, split_of_protocol, config, new_run_dir(shared.runs_dir(), model),
                          split=split)
        except (ValueError, RuntimeError, OSError) as err:
            st.error(f"Training the {model} baseline failed: {err}")
            st.stop()
    st.rerun()

labels = sup.METRIC_LABELS.values()
st.dataframe(
    board.style.format({**{c: "{:.4f}" for c in labels if c in board}, "fit s": "{:.1f}"},
                       na_rep="–")
    .highlight_max(subset=[c for c in ("Recall@10", "NDCG@10", "MRR@10") if c in board],
                   color="#FDE2D8"),
    hide_index=True, key=K + "board",
    column_config={"run": st.column_config.TextColumn("run", width="medium")},
)
others = board[board["model"] != "popularity"]
if run.name in set(others["run"]):
    target = run.name
else:  # the active run is popularity or on another protocol: judge the best other run
    target = others["run"].iloc[0] if len(others) else None
if target is not None:
    beats, sentence = sup.verdict(board, target)
    if beats is True:
        st.success(sentence, icon=":material/check_circle:")
    elif beats is False:
        st.warning(sentence, icon=":material/warning:")
    else:
        st.info(sentence)
st.caption("Novelty = mean self-information −log₂ p(item) of the recommended movies (higher = "
           "less mainstream). Coverage = share of the catalogue that appears in anyone's top 10.")
