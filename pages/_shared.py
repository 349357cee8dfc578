"""Shared state of the app, reached only through cached functions.

Every page calls :func:`active_run` / :func:`dataset` itself, so a page works the same whether
the frame (``streamlit_app.py``) ran first or not (AppTest can run a page on its own).
Cached objects are shared by all visitors and never mutated; what differs per visitor (the
chosen run, their training jobs) lives in ``st.session_state``.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st

from recsys import app_support as sup
from recsys import funnel, index
from recsys import projection as proj
from recsys.config import EMBEDDING_MODELS, SplitConfig, TrainConfig
from recsys.data import DataUnavailableError, MovieLens, load_movielens
from recsys.jobs import JobManager, new_run_dir
from recsys.runs import (
    Run,
    RunError,
    default_runs_dir,
    list_runs,
    load_run,
    prepare_split,
    train_run,
)
from recsys.serving import Catalog
from recsys.splits import Split

RUN_KEY = "sb_run"  # the sidebar picker's key: the visitor's active run name
PENDING_RUN = "pending_run"  # set by a page, applied by the picker before it is drawn


# ---------------------------------------------------------------------- cached resources
@st.cache_resource(show_spinner="Loading MovieLens 100K…")
def _load_dataset() -> MovieLens:
    return load_movielens(progress=False)


def leave_legacy_mode() -> None:
    """Reruns a session's first request through the frame if Streamlit ran a page alone.

    Streamlit treats an app with a ``pages/`` folder as a legacy multipage app until the main
    script has called ``st.navigation`` once in the process; until then a deep link such as
    ``/recommendations`` runs the page file alone (no sidebar, no wide layout). Switching the
    flag off and rerunning sends the request through ``streamlit_app.py`` instead. Only a
    session's first run does this (it carries no widget events that a rerun would drop);
    AppTest, which resets the flag on every run, thus keeps running pages on their own.
    """
    try:  # an internal of Streamlit 1.67; if it moves, deep links just render without frame
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:
        return
    first_run = "session_started" not in st.session_state
    st.session_state["session_started"] = True
    if first_run and PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def dataset() -> MovieLens:
    """The dataset, or an error box and a stopped page when it cannot be acquired."""
    leave_legacy_mode()
    try:
        return _load_dataset()
    except DataUnavailableError as err:
        st.error(f"MovieLens 100K is not available on this machine.\n\n```\n{err}\n```")
        st.stop()


@st.cache_resource(show_spinner=False)
def _load_run(path: str, mtime: float) -> Run:
    return load_run(path)


@st.cache_resource(show_spinner="Preparing the split…")
def split_for(config: SplitConfig) -> Split:
    return prepare_split(dataset(), config)


@st.cache_data(show_spinner=False)
def catalogue(run_path: str) -> pd.DataFrame:
    """Movies aligned with the run's item indices."""
    return sup.catalogue(dataset(), run_by_path(run_path))


@st.cache_data(show_spinner=False)
def users(run_path: str) -> pd.DataFrame:
    return sup.user_table(dataset(), run_by_path(run_path))


@st.cache_data(show_spinner=False)
def user_labels(run_path: str) -> dict[int, str]:
    return sup.user_labels(users(run_path))


@st.cache_resource
def job_manager() -> JobManager:
    return JobManager()


@st.cache_resource
def _first_run_lock() -> threading.Lock:
    return threading.Lock()


# ---------------------------------------------------------------------- runs
def runs_dir() -> Path:
    return default_runs_dir()


def _mtime(path: str | Path) -> float:
    """When the run's weights were last written: part of every cache key of a run."""
    return (Path(path) / "weights.npz").stat().st_mtime


def run_by_path(path: str | Path) -> Run:
    return _load_run(str(path), _mtime(path))


def all_runs() -> list[Run]:
    """Every complete run under the runs dir, newest first; damaged ones are reported."""
    runs = []
    for path in list_runs(runs_dir()):
        try:
            runs.append(run_by_path(path))
        except (RunError, OSError, ValueError, KeyError) as err:
            st.warning(f"Skipping run {path.name}: {err}")
    return runs


def ensure_default_run() -> None:
    """First launch: no runs yet, so train the default model once with a progress bar."""
    if list_runs(runs_dir()):
        return
    with _first_run_lock():
        if list_runs(runs_dir()):  # another visitor finished it while we waited
            return
        split_config, train_config = SplitConfig(), TrainConfig()
        bar = st.progress(0.0, text=f"First launch: training {train_config.model} "
                                    "(about 5 seconds)…")

        def report(epoch: int, stats: dict) -> None:
            bar.progress(min(epoch / train_config.epochs, 1.0),
                         text=f"First launch: training {train_config.model}, epoch {epoch}, "
                              f"validation Recall@10 {stats.get('valid_recall@10', 0):.3f}")

        try:
            train_run(dataset(), split_config, train_config,
                      new_run_dir(runs_dir(), train_config.model), callbacks=[report])
        except (ValueError, RuntimeError, OSError) as err:
            st.error(f"Training the default model failed: {err}. Try `recsys train` in a "
                     "terminal to see the full report.")
            st.stop()
        bar.empty()


def default_run_name(runs: list[Run]) -> str:
    """Newest trained embedding model (mf-*, ncf), else newest run with item embeddings
    (maps need them), else the newest run: baselines trained later do not take over."""
    trained = [r for r in runs if r.train_config.model in EMBEDDING_MODELS]
    with_factors = [r for r in runs if r.model.item_factors() is not None]
    return (trained or with_factors or runs)[0].name


def active_run() -> Run:
    """This visitor's active run: picker state, else ``?run=``, else the default."""
    ensure_default_run()
    runs = all_runs()
    if not runs:
        st.error("No usable run found. Train one on the **Train & evaluate** page.")
        st.stop()
    by_name = {r.name: r for r in runs}
    pending = st.session_state.pop(PENDING_RUN, None)
    if pending in by_name:  # before the picker is drawn, so its state may still be set
        st.session_state[RUN_KEY] = pending
    name = st.session_state.get(RUN_KEY) or st.query_params.get("run")
    return by_name.get(name) or by_name[default_run_name(runs)]


def select_run(name: str) -> None:
    """Makes ``name`` this visitor's active run (applied on the next rerun)."""
    st.session_state[PENDING_RUN] = name


def owner() -> str:
    """A stable id of this browser session: jobs are kept per owner."""
    if "owner" not in st.session_state:
        st.session_state["owner"] = uuid.uuid4().hex
    return st.session_state["owner"]


# ---------------------------------------------------------------------- sidebar
def sidebar() -> Run:
    """Run picker and dataset facts; returns the active run."""
    ml = dataset()
    current = active_run()
    runs = all_runs()
    names = [r.name for r in runs]
    if st.session_state.get(RUN_KEY) not in names:
        st.session_state[RUN_KEY] = current.name
    labels = {r.name: r for r in runs}
    with st.sidebar:
        st.subheader("Active model")
        name = st.selectbox(
            "Run", names, key=RUN_KEY,
            format_func=lambda n: f"{labels[n].train_config.model} · {n}",
            help="Your choice only: other visitors keep their own active run.")
        run = labels[name]
        st.query_params["run"] = name
        st.caption(f"Protocol: {run.split_config.describe()}")
        c1, c2 = st.columns(2)
        c1.metric("Recall@10", metric_text(run, "recall@10"))
        c2.metric("NDCG@10", metric_text(run, "ndcg@10"))
        st.divider()
        st.subheader("Dataset")
        st.caption(f"{ml.name}: {len(ml.ratings):,} ratings · {ml.n_users:,} users · "
                   f"{ml.n_items:,} movies")
        st.caption(f"Source: {ml.source}")
    return run


def metric_text(run: Run, name: str) -> str:
    """A test metric of ``run`` for display ("nan" when the run did not record it)."""
    return f"{run.metrics.get(name, float('nan')):.3f}"


def has_item_embeddings(run: Run, purpose: str) -> bool:
    """Whether ``run`` has movie vectors; if not, an info box saying which runs do."""
    if run.model.item_factors() is not None:
        return True
    st.info(f"The active run ({run.train_config.model}) has no movie embeddings {purpose}. "
            "Pick an mf-*, ncf, svd or ease run in the sidebar.")
    return False


def metric_row(items: dict[str, str]) -> None:
    for col, (label, value) in zip(st.columns(len(items)), items.items(), strict=True):
        col.metric(label, value)


# ---------------------------------------------------------------------- serving
@st.cache_resource(show_spinner="Preparing the model for serving…")
def _catalog(path: str, mtime: float) -> Catalog:
    return Catalog.build(_load_run(path, mtime), dataset())


def catalog(run: Run) -> Catalog:
    """The serving catalog of ``run`` (shared, read-only), or an error box and a stopped page
    when the run does not fit the loaded data."""
    try:
        return _catalog(str(run.path), _mtime(run.path))
    except ValueError as err:  # RunError included: other data, or a changed item mapping
        st.error(f"Cannot serve run `{run.name}`: {err}. Pick another run in the sidebar.")
        st.stop()


def query_default(key: str, param: str, cast=int) -> None:
    """Seeds widget ``key`` from ``?param=`` the first time this session draws it."""
    if key not in st.session_state and param in st.query_params:
        try:
            st.session_state[key] = cast(st.query_params[param])
        except ValueError:
            st.warning(f"Ignoring ?{param}={st.query_params[param]}: not a valid value.")


@st.cache_data(show_spinner=False)
def compare_reranking(run_path: str, config) -> pd.DataFrame:
    """Funnel test metrics without and with ``config``'s re-ranking (cached per knobs)."""
    ctx = catalog(run_by_path(run_path))
    table = funnel.compare_reranking(ctx, config)
    keep = ["recall@10", "ndcg@10", "coverage@10", "novelty@10", "intra_list_diversity@10",
            "candidate_recall"]
    return table[[c for c in keep if c in table]]


@st.cache_data(show_spinner=False)
def ann_report(run_path: str, nlist: int, nprobe: int) -> dict:
    """IVF recall and latency against exact search on the run's item factors."""
    factors = run_by_path(run_path).model.item_factors()
    return index.ann_recall_report(factors, nlist=nlist, nprobe=nprobe)


# ---------------------------------------------------------------------- projections
@st.cache_resource(show_spinner=False)
def _projection(path: str, mtime: float, method: str) -> proj.Projection:
    return proj.project_run(_load_run(path, mtime), method, movies=catalogue(path))


def projection(run: Run, method: str = "pca") -> proj.Projection:
    """The run's 2-D item map (cached in memory and in the run dir); never mutate it.

    ValueError when the run has no item embeddings (check ``run.model.item_factors()``)."""
    return _projection(str(run.path), _mtime(run.path), method)


def projection_frame(run_path, method: str = "pca") -> pd.DataFrame:
    """A copy of the map's frame with a ``genre`` column, safe to extend."""
    return sup.map_frame(projection(run_by_path(run_path), method).frame)
