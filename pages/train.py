"""Train & evaluate: a form built from the config dataclasses, training in a worker process
with live curves, and a leaderboard of every run on one evaluation protocol.

The job's id lives in the session and in the URL (``?job=``), so a reload or a visit to
another page finds the same job, with its Stop button, again. The job's progress and live
curves sit at the top of the page, above the form: the moment Train is pressed they are what
a projector's window (1,366 x 800) shows, not the form.
"""

import streamlit as st

from ui import frame

frame.page("Train & evaluate")

import plotly.graph_objects as go  # noqa: E402  (heavy imports after the heading)

from recsys.data.protocol import SplitConfig  # noqa: E402
from recsys.errors import RecsysError  # noqa: E402
from recsys.jobs.manager import CANCELLED, DONE, FAILED, QUEUED, VisitorLimits  # noqa: E402
from recsys.lessons import leaderboard as lb  # noqa: E402
from recsys.models import MODELS, model_names  # noqa: E402
from recsys.models.config import DEFAULT_MODEL, TrainConfig  # noqa: E402
from recsys.settings import from_dict  # noqa: E402
from ui import display, forms, shared, state  # noqa: E402
from ui import train_lessons as lessons  # noqa: E402
from ui.code_view import engine_of, show_training_code  # noqa: E402
from ui.text import plain, short  # noqa: E402

KEY_PREFIX = "train_"  # widget key prefix of this page
JOB = KEY_PREFIX + "job"  # session key of this visitor's job id
# session key: (the leaderboard's protocol when a job was submitted, the job's protocol)
NEXT_PROTOCOL = KEY_PREFIX + "next_protocol"
MAP_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
# How often the job panel reads the worker's files and redraws: a new epoch appears on screen
# at most this long (plus ~0.1 s of drawing) after the worker wrote it. Checked (Dec 2026):
# 0.4 s on a busy machine (load ~12) redrew the panel back to back, and a click on its Cancel
# button found the button replaced every time (tests/test_browser.py's reload test failed);
# 0.5 s passed. The click's own script run draws the panel, so polling starts at once.
POLL_SECONDS = 0.5
# Once the run is saved only the maps are left (20-40 s): the panel then redraws every 2 s,
# which is a quarter of the server's CPU per waiting visitor (each redraw builds the curves).
MAPS_POLL_SECONDS = 2.0

ml, run = shared.context()
manager = shared.job_manager()
owner = state.owner()

st.caption("Training runs in its own process: switch pages or reload while it trains, the "
           "job keeps going and this page finds it again. Then compare it with the baselines "
           "on exactly the same evaluation protocol.")
job_slot = st.container()  # the job's progress and curves: filled below, shown up here


# ---------------------------------------------------------------------- this visitor's job
def current_job():
    """This visitor's latest job: from the session, else from ``?job=`` (after a reload)."""
    job = shared.job_from(st.session_state.get(JOB))
    if job is None and "job" in st.query_params:
        job = shared.job_from(st.query_params["job"])
        if job is None:
            st.warning(f"No training job {short(st.query_params['job'], 40)} on this server "
                       "(a finished job is kept for a week; its run, if saved, stays).")
            st.query_params.pop("job", None)
    if job is not None:
        st.session_state[JOB] = job.id
        st.query_params["job"] = job.id
    return job


job = current_job()
busy = job is not None and not job.is_finished


def seed_form(job) -> None:
    """A reloaded page (a new session, found its job from ``?job=``) shows the settings that
    job was trained with beside its progress, not the default model's."""
    if job is None or state.known(KEY_PREFIX + "model"):
        return
    try:  # migrated and checked as a saved run's (an old or damaged job.json seeds nothing)
        train = from_dict(TrainConfig, job.configs.get("train", {}))
        split = from_dict(SplitConfig, job.configs.get("split", {}))
    except (TypeError, ValueError):
        return
    if train.model not in MODELS:
        return
    state.remember(KEY_PREFIX + "model", train.model)
    for scope, config in ((train.model, train), ("", split)):
        for spec in forms.field_specs(type(config), config):
            if spec.name != "model":
                state.remember(KEY_PREFIX + scope + spec.name, spec.default)


seed_form(job)


# ---------------------------------------------------------------------- form
def field_widget(spec: forms.FieldSpec, scope: str = ""):
    """One widget for one config field: its plain-words label, default and help (which names
    the config field). ``scope`` joins the key, so each model keeps its own values."""
    key = KEY_PREFIX + scope + spec.name
    label, hint = spec.label, f"{spec.help} (`{spec.name}`)"
    if spec.choices:
        options = list(spec.choices)
        return st.selectbox(label, options, index=options.index(spec.default), key=key,
                            help=hint)
    if spec.kind is bool:
        return st.checkbox(label, value=spec.default, key=key, help=hint)
    if spec.kind is int:
        return st.number_input(label, value=int(spec.default), step=1, key=key, help=hint,
                               **forms.number_limits(spec))
    if spec.kind is float:
        fmt = "%.4g" if abs(spec.default) < 0.1 and spec.default else "%.2f"
        step = spec.default / 10 if 0 < spec.default < 0.1 else 0.05
        return st.number_input(label, value=float(spec.default), step=step, format=fmt, key=key,
                               help=hint, **forms.number_limits(spec))
    return st.text_input(label, value=str(spec.default), key=key, help=hint)


state.carry(KEY_PREFIX + "model")
model_spec = next(s for s in forms.field_specs(TrainConfig, TrainConfig.for_model(DEFAULT_MODEL))
                  if s.name == "model")
model = field_widget(model_spec)
settings = MODELS[model].settings  # only the fields this model reads
train_specs = {s.name: s for s in forms.field_specs(TrainConfig, TrainConfig.for_model(model))
               if s.name in settings}
state.carry(*(KEY_PREFIX + model + name for name in train_specs),
            *(KEY_PREFIX + s.name for s in forms.field_specs(SplitConfig)))
with st.form(KEY_PREFIX + "form", border=True):
    st.markdown(f"**{plain(model)}** · {plain(MODELS[model].description)}")
    values = {"model": model}
    main = [n for n in forms.MAIN_TRAIN_FIELDS if n in train_specs]
    cols = st.columns(4)
    for i, name in enumerate(main):
        with cols[i % 4]:
            values[name] = field_widget(train_specs[name], model)
    rest = [s for n, s in train_specs.items() if n not in main]
    if rest:
        with st.expander("More settings"):
            cols = st.columns(4)
            for i, spec in enumerate(rest):
                with cols[i % 4]:
                    values[spec.name] = field_widget(spec, model)
    with st.expander("Evaluation protocol (split)"):
        cols = st.columns(4)
        for i, spec in enumerate(forms.field_specs(SplitConfig)):
            with cols[i % 4]:
                values[spec.name] = field_widget(spec)
    submitted = st.form_submit_button(
        "Train", type="primary", key=KEY_PREFIX + "submit", disabled=busy,
        help="One job per visitor at a time; the server trains one job at a time.")

if submitted and not busy:
    try:
        split_config, train_config = forms.build_configs(values)
    except (TypeError, ValueError) as err:
        st.error(f"Cannot train with these settings: {plain(err)}")
    else:
        try:
            limits = None if shared.is_lecturer() else VisitorLimits()
            job = manager.submit(owner, split_config, train_config, shared.runs_dir(),
                                 fingerprint=ml.fingerprint(), limits=limits)
        except (RecsysError, OSError) as err:  # e.g. too many jobs waiting on this server
            st.error(f"Cannot start training: {plain(err)}")
        else:
            # A warm standby's first epoch follows in ~0.1-0.3 s: draw the panel with it
            # (and its curves) in this run, rather than a "starting" note that stays up
            # until the whole page has run and the panel's next redraw.
            job = manager.first_epoch(job.id) or job
            st.session_state[JOB] = job.id
            st.query_params["job"] = job.id
            # The leaderboard below switches to the job's protocol once its run is saved
            # (a protocol without a saved run is not on the board yet), unless the visitor
            # picks another protocol before.
            st.session_state[NEXT_PROTOCOL] = (st.session_state.get(KEY_PREFIX + "protocol"),
                                               lb.protocol_key(split_config))
            # No st.rerun(): the job panel is drawn in this same run, at the top, so its
            # first epoch shows without waiting for a second run of the whole page. The
            # Train button above stays enabled until the job ends (a press says why).
            busy = True
elif submitted:
    st.info("Your training job is still running (at the top of this page): stop or cancel "
            "it there first.", icon=":material/hourglass_top:")


# ---------------------------------------------------------------------- live job
def curves(job) -> go.Figure:
    """Loss (validated fit and refit) and validation Recall@10 per epoch, side by side: one
    layout with two pairs of axes. Not ``make_subplots``, which took ~20 ms of the server's
    CPU for this figure against ~3 ms (Dec 2026), on every redraw of the panel, twice a
    second per visitor whose job trains."""
    fit, refit = display.epochs_frame(job.history), display.epochs_frame(job.refit)
    traces = []
    if len(fit):
        traces.append(go.Scatter(x=fit["epoch"], y=fit["loss"], mode="lines+markers",
                                 name="fit"))
        if "valid_recall@10" in fit:
            traces.append(go.Scatter(x=fit["epoch"], y=fit["valid_recall@10"],
                                     mode="lines+markers", name="validation",
                                     xaxis="x2", yaxis="y2"))
    if len(refit):
        traces.append(go.Scatter(x=refit["epoch"], y=refit["loss"], mode="lines+markers",
                                 name="refit on train + validation", line=dict(dash="dot")))

    def title(text: str, x: float) -> dict:
        return dict(text=text, x=x, y=1.0, xref="paper", yref="paper", xanchor="center",
                    yanchor="bottom", showarrow=False, font=dict(size=16))

    return go.Figure(traces, layout=dict(
        height=300, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25),
        xaxis=dict(domain=[0, 0.45], title=dict(text="epoch"), anchor="y"),
        yaxis=dict(anchor="x"),
        xaxis2=dict(domain=[0.55, 1], title=dict(text="epoch"), anchor="y2"),
        yaxis2=dict(anchor="x2"),
        annotations=[title("Training loss", 0.225), title("Validation Recall@10", 0.775)]))


def maps_line(job) -> str:
    done = [MAP_NAMES.get(m, m) for m in job.maps_done]
    pending = [MAP_NAMES.get(m, m) for m in job.maps_pending]
    parts = [f"{name} ✓" for name in done] + [f"{name} …" for name in pending]
    return "Maps for the Embedding map page: " + ", ".join(parts) if parts else ""


def polling(job) -> float | None:
    """Seconds between the job panel's redraws: often while it trains, seldom while only
    its maps are computed, never once the worker is done."""
    if job is None:
        return None
    if not job.is_finished:
        return POLL_SECONDS
    return MAPS_POLL_SECONDS if job.maps_pending and job.worker_alive else None


@st.fragment(run_every=polling(job))
def job_panel(job_id: str, was_polling: float | None) -> None:
    """Redraws the job's progress while it runs (reads the worker's files). A job in its
    last steps is waited for (at most 0.3 s), so "Done" shows in this redraw, not the next."""
    job = manager.finishing(job_id)
    if job is None:
        return
    mine = job.owner == owner
    st.subheader(f"{'Your job' if mine else 'Training job'}: {plain(job.model)}")
    if job.status == QUEUED:
        st.info(f"{plain(job.phase).capitalize()}. This server trains one job at a time so "
                "that training keeps its speed.", icon=":material/hourglass_top:")
    elif job.status == FAILED:
        hint = ("\n\nTry a lower learning rate or fewer negatives, then train again."
                if job.diverged else "")
        st.error(f"Training failed: {plain(job.error)}{hint}")
    elif job.status == CANCELLED:
        st.info("Cancelled: nothing was saved.", icon=":material/cancel:")
    else:
        text = (f"{plain(job.phase)} · {job.seconds:.1f} s" if job.run_path is None
                else f"saved as {lessons.short_run_name(job.run_path.name)} in "
                     f"{job.seconds:.1f} s")
        st.progress(job.progress, text=text)
    if job.history or job.refit:
        st.plotly_chart(curves(job), key=KEY_PREFIX + "curves")
    if not job.is_finished and not shared.may_control(job):
        st.caption("Progress only: the browser tab that started this job (or the lecturer) "
                   "may stop or cancel it.")
    elif not job.is_finished:
        c1, c2, _ = st.columns([3, 2, 4])
        if c1.button("Stop early, keep the best", key=KEY_PREFIX + "stop", width="stretch",
                     help="Ends after the current epoch, keeps the best epoch so far, then "
                          "refits, evaluates and saves as usual."):
            manager.stop(job.id)
        if c2.button("Cancel", key=KEY_PREFIX + "cancel", width="stretch",
                     help="Ends the worker now; nothing is saved."):
            manager.cancel(job.id)
            st.rerun(scope="app")
    just_saved = job.status == DONE and st.session_state.get(KEY_PREFIX + "seen") != job.id
    if just_saved:  # first time we see it saved: this visitor's active run from now on
        st.session_state[KEY_PREFIX + "seen"] = job.id
        shared.select_run(job.run_path.name)
    if job.status == DONE:  # drawn before the page's redraw below, so it shows at once
        name = job.run_path.name
        st.success(f"Done: {plain(lessons.short_run_name(name))} is now *your* active model "
                   "(other visitors keep theirs) in **this browser tab only**: a second tab "
                   "or the projector's browser still shows the pinned default. To show it "
                   f"there, pin it below, or open a page with `?run={name}` in its address.",
                   icon=":material/check_circle:")
        if job.model in model_names(item_vectors=True):
            st.page_link("pages/embedding_map.py", icon=":material/scatter_plot:",
                         label="See its movie vectors on the Embedding map, coloured by length",
                         query_params={"colour": "length", "run": job.run_path.name})
    line = maps_line(job)
    if line and job.run_path is not None:
        st.caption(line)
    # A new timer (or none) needs the page's redraw, which also applies the new active run.
    # Not in the run that first sees the job saved: a rerun drops the deltas not yet sent,
    # and the "Done" box above would show only after the whole page; the next tick reruns.
    if not just_saved and was_polling != polling(job):
        st.rerun(scope="app")


with job_slot:
    if job is not None:
        job_panel(job.id, polling(job))
        # Under the live curves: the objective and the code producing them. Outside the
        # panel's fragment, so its redraws (twice a second) do not re-highlight the source in
        # the browser: ~0.4 s of Chromium's main thread per click and tick (Dec 2026).
        if job.status != FAILED:
            show_training_code(job.model, engine_of(job.model, job.configs.get("train", {})))
    else:
        queued = manager.unfinished()
        if queued:
            st.caption(f"{len(queued)} training job{'s' if len(queued) > 1 else ''} running "
                       "or queued on this server.")


# ---------------------------------------------------------------------- lessons: where
# A link with ?view= (e.g. from the guided tour) opens that lesson right under the form;
# otherwise the lessons follow the leaderboard. A view the URL already had is not re-applied;
# once the visitor opens another tab the URL drops it, so the same link works again.
LESSON_TAB, LESSON_LINK = KEY_PREFIX + "lesson", KEY_PREFIX + "lesson_link"
linked = state.query_value("view", str, lambda v: v in lessons.VIEWS)
moved_on = (linked is not None and linked == st.session_state.get(LESSON_LINK)
            and st.session_state.get(LESSON_TAB) != lessons.VIEWS[linked])
if moved_on:  # the visitor opened another tab since the link
    linked = None
if linked is None:  # a bad value was warned about once; a good one stays shareable
    st.query_params.pop("view", None)
if linked and linked != st.session_state.get(LESSON_LINK):
    st.session_state[LESSON_TAB] = lessons.VIEWS[linked]
    st.session_state[KEY_PREFIX + "lessons_on_top"] = True
st.session_state[LESSON_LINK] = linked
lessons_slot = st.container() if st.session_state.get(KEY_PREFIX + "lessons_on_top") else None


# ---------------------------------------------------------------------- leaderboard
st.divider()
st.header("Leaderboard")
book = shared.run_book()
runs = book.usable
protocols = list(dict.fromkeys(lb.protocol_key(r.split_config) for r in runs))
mine = lb.protocol_key(run.split_config)
protocol_was, protocol_next = st.session_state.get(NEXT_PROTOCOL, (None, None))
if st.session_state.get(KEY_PREFIX + "protocol") != protocol_was:
    st.session_state.pop(NEXT_PROTOCOL, None)  # the visitor picked a protocol since
elif protocol_next in protocols:  # the job's run is saved: show its protocol
    st.session_state[KEY_PREFIX + "protocol"] = protocol_next
    del st.session_state[NEXT_PROTOCOL]
if st.session_state.get(KEY_PREFIX + "protocol") not in protocols:
    st.session_state[KEY_PREFIX + "protocol"] = mine if mine in protocols else protocols[0]
protocol = st.selectbox("Evaluation protocol", protocols, key=KEY_PREFIX + "protocol",
                        help="Only runs evaluated the same way can be compared.")
st.info(f"**Protocol:** {plain(protocol)}. Test metrics at K = 10, ranking all movies and "
        "excluding each user's training and validation positives.",
        icon=":material/straighten:")

board = lb.leaderboard(runs, protocol)
split_of_protocol = next(r.split_config for r in runs
                         if lb.protocol_key(r.split_config) == protocol)
missing = [b for b in lb.BASELINES if b not in set(board["model"])]
BASELINE_JOBS = KEY_PREFIX + "baseline_jobs"  # session key: this visitor's baseline job ids
BASELINE_ERRORS = KEY_PREFIX + "baseline_errors"  # shown once, after the jobs have ended
for message in st.session_state.pop(BASELINE_ERRORS, []):
    st.error(plain(message))
if missing and not st.session_state.get(BASELINE_JOBS) and st.button(
        f"Train baselines ({', '.join(missing)}) on this protocol",
        key=KEY_PREFIX + "baselines",
        help="Each baseline trains in a worker process like any other job (a few seconds)."):
    submitted = []  # the same path as the form: one worker job each, queued in turn
    for model in missing:
        try:
            submitted.append(manager.submit(owner, split_of_protocol,
                                            TrainConfig.for_model(model), shared.runs_dir(),
                                            fingerprint=ml.fingerprint(), maps=("pca",)).id)
        except (RecsysError, OSError) as err:  # e.g. too many jobs waiting on this server
            st.session_state[BASELINE_ERRORS] = [f"Cannot start the {model} baseline: {err}"]
            break
    st.session_state[BASELINE_JOBS] = submitted  # those that started are followed
    st.rerun()


@st.fragment(run_every=1.0)
def baseline_progress(job_ids: list[str]) -> None:
    """One line per baseline job until all have ended; then the leaderboard is redrawn."""
    jobs = [job for job in map(manager.snapshot, job_ids) if job is not None]
    waiting = [job for job in jobs if job.run_path is None and not job.is_finished]
    if waiting:
        done = len(jobs) - len(waiting)
        st.progress(done / max(len(jobs), 1),
                    text=f"Training baselines: {done} of {len(jobs)} saved · "
                         f"{plain(waiting[0].model)}: {plain(waiting[0].phase)}")
    else:  # all ended: failures are shown by the full rerun, above the leaderboard
        st.session_state[BASELINE_ERRORS] = [
            *st.session_state.get(BASELINE_ERRORS, []),
            *(f"Training the {job.model} baseline failed: {job.error}"
              for job in jobs if job.status == FAILED)]
        del st.session_state[BASELINE_JOBS]
        st.rerun(scope="app")


if st.session_state.get(BASELINE_JOBS):
    baseline_progress(st.session_state[BASELINE_JOBS])

labels = lb.METRIC_LABELS.values()
pinned = shared.pinned_name()
board.insert(0, "default", board["run"].map(lambda n: "✓" if n == pinned else ""))
quality = list(lb.NEIGHBOUR_QUALITY_LABELS.values())
ranking_tab, neighbours_tab = st.tabs(["Ranking metrics", "Similar-movie quality"])
# Automatic run names (mf-bpr-20261206-225927-6771) are cut in a narrow column: the table
# shows model + time and keeps the full name in the last column (sorting and copying it).
short_run = board["run"].map(lessons.short_names(list(board["run"])))
with ranking_tab:
    shown = board.drop(columns=[c for c in [*quality, "protocol"] if c in board])
    shown = shown.assign(run=short_run, name=board["run"])
    # wide enough for each header ("Precision@10" needs ~96 px at the default font)
    metric_width = {c: st.column_config.NumberColumn(c, width=max(72, 8 * len(c)))
                    for c in labels if c in shown}
    st.dataframe(
        shown.style.format({**{c: "{:.4f}" for c in labels if c in shown}, "fit s": "{:.1f}"},
                           na_rep="–")
        .highlight_max(subset=[c for c in ("Recall@10", "NDCG@10", "MRR@10") if c in shown],
                       color="#FDE2D8"),
        hide_index=True, key=KEY_PREFIX + "board",
        column_config={**metric_width,
                       "default": st.column_config.TextColumn(
                           "pin", width=36, help="✓ = the pinned default model for new visitors"),
                       "run": st.column_config.TextColumn(
                           "run", width=140, help="model and time for automatic names; the "
                                                  "full name is the last column"),
                       "model": st.column_config.TextColumn("model", width=72),
                       "dim": st.column_config.TextColumn("dim", width=40),
                       "epochs": st.column_config.TextColumn("epochs", width=60),
                       "fit s": st.column_config.NumberColumn("fit s", width=52),
                       "name": st.column_config.TextColumn(
                           "full run name", width=230,
                           help="what `?run=` and `recsys pin` take")},
    )
with neighbours_tab:
    nq_shown = board[["default", "model", *[c for c in quality if c in board]]]
    st.dataframe(nq_shown.assign(run=short_run, name=board["run"])
                 [["default", "run", "model", *[c for c in quality if c in board], "name"]]
                 .style.format({c: "{:.2f}" for c in quality}, na_rep="–"),
                 hide_index=True, key=KEY_PREFIX + "nq_board",
                 column_config={"default": st.column_config.TextColumn("pin", width=36),
                                "run": st.column_config.TextColumn("run", width=140),
                                "model": st.column_config.TextColumn("model", width=72),
                                **{c: st.column_config.NumberColumn(c, width=max(80, 7 * len(c)))
                                   for c in quality},
                                "name": st.column_config.TextColumn("full run name",
                                                                    width=230)})
    st.caption("How good each model's similar-movie list (cosine of its movie vectors) is, over "
               "every movie's top 10 on the test period: genre agreement weighted by rarity "
               "(1 = chance), the neighbours' popularity percentile (50 = typical movie, 99 = "
               "only blockbusters) and co-watch lift (how much more often than chance both "
               "were liked by the same held-out users). The Similar movies page shows them "
               "per lens.")
others = board[board["model"] != "popularity"]
if run.name in set(others["run"]):
    target = run.name
else:  # the active run is popularity or on another protocol: judge the best other run
    target = others["run"].iloc[0] if len(others) else None
if target is not None:
    beats, sentence = lb.verdict(board, target)
    if beats is True:
        st.success(plain(sentence), icon=":material/check_circle:")
    elif beats is False:
        st.warning(plain(sentence), icon=":material/warning:")
    else:
        st.info(plain(sentence))
ease_sentence = lb.against_ease(board)
if ease_sentence:
    st.info(f"{plain(ease_sentence)} {lb.TUNED_AGAINST_EASE}", icon=":material/balance:")
st.caption("Novelty = mean self-information −log₂ p(item) of the recommended movies (higher = "
           "less mainstream). Coverage = share of the catalogue that appears in anyone's top 10.")


# ---------------------------------------------------------------------- lessons
@st.fragment
def draw_lessons() -> None:
    """The four teaching views as tabs; only the open one is computed, and a lesson's
    controls rerun only the lessons (a fragment), not the form and the leaderboard."""
    st.header("Lessons: what the settings do")
    tabs = st.tabs(list(lessons.VIEWS.values()), key=LESSON_TAB, on_change="rerun")
    on_protocol = [r for r in runs if lb.protocol_key(r.split_config) == protocol]
    opened = next((v for v, tab in zip(lessons.VIEWS, tabs, strict=True) if tab.open),
                  "negatives")
    with tabs[list(lessons.VIEWS).index(opened)]:
        if opened == "negatives":
            form_values = {name: st.session_state.get(KEY_PREFIX + values["model"] + name)
                           for name in ("neg_sampling", "alpha", "negatives")}
            lessons.negatives(split_of_protocol, values["model"],
                              {k: v for k, v in form_values.items() if v is not None})
        elif opened == "curves":
            lessons.curves(*lb.curve_runs(runs, protocol), run.train_config.model)
        elif opened == "norms":
            lessons.norms(on_protocol)
        else:
            lessons.activity(on_protocol)


if lessons_slot is not None:
    with lessons_slot:
        draw_lessons()
else:
    st.divider()
    draw_lessons()


# ---------------------------------------------------------------------- the default model
st.subheader("Default model for new visitors")
c1, c2 = st.columns([3, 2])
with c1:
    if pinned == run.name:
        st.markdown(f"Your active model {short(run.name)} is the pinned default: new visitors "
                    "and links without a run see it.")
    else:
        st.markdown(f"Pinned now: **{short(pinned) if pinned else 'nothing'}**. New visitors "
                    "and links without a run see the pinned model; your own runs stay yours "
                    "until you pin one.")
with c2:
    if pinned != run.name and not shared.may_pin_for_everyone():
        st.caption("Only the lecturer may pin the default for everyone (the sidebar's "
                   "Lecturer section).")
    elif pinned != run.name and st.button(f"Pin {plain(run.name)} for everyone",
                                          key=KEY_PREFIX + "pin",
                                          help="Same as `recsys pin RUN` in a terminal."):
        shared.pin(run)
        st.rerun()
if book.other_data:
    with st.expander(f"{len(book.other_data)} run(s) trained on other data (not compared)"):
        st.dataframe(
            [{"run": r.name, "model": r.train_config.model,
              "data": r.dataset.get("name"), "fingerprint": r.dataset.get("fingerprint")}
             for r in book.other_data], hide_index=True, key=KEY_PREFIX + "other")
