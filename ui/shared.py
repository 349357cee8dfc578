"""Shared state of the app, reached only through cached functions.

Cached objects (the dataset, loaded runs, serving catalogs, projections) are shared by every
visitor and never mutated. What differs per visitor (the active run, widget values, training
jobs) lives in ``st.session_state``. One cache rule for everything derived from a run
(:func:`per_run`): a Run argument is keyed by its folder's path plus the modification time of
its weights (:func:`run_key`), so a retrained folder is never served stale; every page's
cached data and figures use it.

Which run a visitor sees: the one they picked (or trained) in this session, else ``?run=``,
else the **pinned** run (``recsys pin RUN`` or the Train page), else the best embedding model
on the default protocol. Runs trained on other data and damaged runs are listed apart and
never become anyone's model.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd
import streamlit as st

from recsys.data.loading import MovieLens, load_movielens, movies_for
from recsys.data.protocol import SplitConfig
from recsys.data.splits import Split
from recsys.errors import DataUnavailableError, RecsysError, RunError
from recsys.evaluation import neighbours
from recsys.jobs import class_set
from recsys.jobs.manager import JobManager, JobSnapshot
from recsys.lessons import projection as proj
from recsys.lessons.leaderboard import protocol_key
from recsys.models import model_names
from recsys.serving import funnel, index
from recsys.serving import users as user_tables
from recsys.serving.catalog import Catalog
from recsys.storage.runs import (
    Run,
    default_runs_dir,
    list_runs,
    load_run,
    pin_run,
    pinned_run_name,
    prepare_split,
)
from ui import display, state
from ui.text import plain, short

RUN_KEY = "sb_run"  # the sidebar picker's key: the visitor's active run name
PENDING_RUN = "pending_run"  # set by a page, applied by the picker before it is drawn
EMBEDDING_MODELS = model_names(user_vectors=True)


# ---------------------------------------------------------------------- dataset
@st.cache_resource(show_spinner="Loading MovieLens 100K…")
def _load_dataset() -> MovieLens:
    return load_movielens(progress=False)


def dataset() -> MovieLens:
    """The dataset, or an error box with the loader's message and a stopped page."""
    try:
        return _load_dataset()
    except DataUnavailableError as err:
        problem, reason = "MovieLens 100K is not available on this machine.", err
    except (RecsysError, OSError) as err:  # a data folder that exists but cannot be read
        problem, reason = "The MovieLens files could not be read.", err
    st.error(f"{problem} {plain(reason)}\n\nFix the data folder (or unset `RECSYS_DATA_DIR`) and "
             "reload the page; `recsys data` in a terminal shows the same check.",
             icon=":material/error:")
    st.stop()


# ---------------------------------------------------------------------- runs
def runs_dir() -> Path:
    return default_runs_dir()


def _stamp(path: str | Path) -> int:
    """When a run folder's weights were last written (ns)."""
    return (Path(path) / "weights.npz").stat().st_mtime_ns


def run_key(run: Run) -> tuple[str, int]:
    """The cache key of a run: its folder, and when its weights were last written."""
    return str(run.path), _stamp(run.path)


def per_run(cache: Callable = st.cache_data, **options: Any) -> Callable:
    """``cache`` (``st.cache_data`` or, for objects shared read-only, ``st.cache_resource``)
    with the one rule for data derived from a run: every :class:`Run` argument is keyed by
    :func:`run_key`, never hashed by its arrays."""
    return cache(hash_funcs={Run: run_key}, **options)


@st.cache_resource(show_spinner=False, max_entries=256)  # every run is listed on every page
def _load_run(path: str, stamp: int) -> Run:
    return load_run(path)


def run_by_path(path: str | Path) -> Run:
    return _load_run(str(path), _stamp(path))


@dataclass
class RunBook:
    """The runs under the runs folder, sorted by what the app may do with them."""

    usable: list[Run] = field(default_factory=list)  # this dataset's runs, newest first
    other_data: list[Run] = field(default_factory=list)  # trained on other data: listed only
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (folder name, reason)

    def by_name(self) -> dict[str, Run]:
        return {r.name: r for r in self.usable}


def run_book() -> RunBook:
    """Every run folder, loaded (cached) and sorted into usable / other data / damaged: one
    shared, read-only book per state of the folder (which runs, when their weights were
    written), so a page view costs one listing of the folder, not a load check per run."""
    listing = []
    for path in list_runs(runs_dir()):
        try:
            listing.append((str(path), _stamp(path)))
        except OSError:  # deleted since it was listed
            continue
    return _run_book(tuple(listing), dataset().fingerprint())


@st.cache_resource(show_spinner=False, max_entries=16)
def _run_book(listing: tuple[tuple[str, int], ...], fingerprint: str) -> RunBook:
    book = RunBook()
    for path, _ in listing:
        try:
            run = run_by_path(path)
        except (RunError, OSError) as err:
            book.damaged.append((Path(path).name, str(err)))
            continue
        if run.dataset.get("fingerprint") == fingerprint:
            book.usable.append(run)
        else:
            book.other_data.append(run)
    return book


def default_run(book: RunBook) -> Run:
    """The pinned run, else the best embedding model on the default protocol, else the
    newest usable run: never simply the newest experiment."""
    by_name = book.by_name()
    pinned = pinned_run_name(runs_dir())
    if pinned in by_name:
        return by_name[pinned]
    default_protocol = protocol_key(class_set.PROTOCOL)
    candidates = [r for r in book.usable if r.train_config.model in EMBEDDING_MODELS
                  and protocol_key(r.split_config) == default_protocol]
    if candidates:
        return max(candidates, key=lambda r: _number(r.metrics.get("recall@10")))
    return book.usable[0]


def _number(value) -> float:
    """A metric as a float for sorting; -inf for anything that is not a number."""
    return float(value) if isinstance(value, (int, float)) and value == value else -float("inf")


def active_run() -> Run:
    """This visitor's active run: their pick, else ``?run=``, else the default. Trains the
    default model first when there is no usable run at all (first launch)."""
    book = run_book()
    if not book.usable:
        first_launch(book)  # stops the page until the default model is trained
    by_name = book.by_name()
    pending = st.session_state.pop(PENDING_RUN, None)
    if pending in by_name:  # before the picker is drawn, so its state may still be set
        st.session_state[RUN_KEY] = pending
        state.remember(RUN_KEY, pending)
    state.carry(RUN_KEY)
    name = st.session_state.get(RUN_KEY)
    if name not in by_name:
        linked = state.query_value("run", str, lambda n: n in by_name)
        name = linked or default_run(book).name
        st.session_state[RUN_KEY] = name
    return by_name[name]


def select_run(name: str) -> None:
    """Makes ``name`` this visitor's active run (applied on the next rerun); others keep
    theirs."""
    st.session_state[PENDING_RUN] = name


def pin(run: Run) -> None:
    """Makes ``run`` the default model of new visitors and links without ``?run=``."""
    pin_run(runs_dir(), run.name)


def pinned_name() -> str | None:
    return pinned_run_name(runs_dir())


# ---------------------------------------------------------------------- training jobs
@st.cache_resource
def _job_manager() -> JobManager:
    return JobManager(runs_dir() / ".jobs", max_running=1)


def job_manager() -> JobManager:
    """One manager per server: workers run in their own processes, one at a time. Where the
    runs folder cannot hold jobs (read-only, full), an error box that says so and a stopped
    page (the manager is tried again on the next visit)."""
    try:
        return _job_manager()
    except OSError as err:
        where = err.filename or runs_dir() / ".jobs"
        st.error(f"Training is unavailable here: {plain(str(where))} cannot be created or "
                 f"written ({plain(err.strerror or str(err))}). Start the app with "
                 "RECSYS_RUNS_DIR set to a folder you can write to.")
        st.stop()


@st.cache_resource
def _first_launch_lock() -> threading.Lock:
    return threading.Lock()


CLASS_SET_ENV = "RECSYS_CLASS_SET"  # "no-maps": a first launch prepares the runs, not the maps


def first_launch(book: RunBook) -> None:
    """No usable run: start (once per server) the preparation of the class set in its own
    process (:mod:`recsys.jobs.class_set`: the default model first, pinned, then mf-bpr, the
    baselines and the maps, as ``scripts/run.sh``) and show its progress until the default
    model is saved. Stops the page meanwhile."""
    with _first_launch_lock():
        now = class_set.preparation(runs_dir())
        if now is None or not now.running:
            try:
                class_set.start_preparation(
                    runs_dir(), maps=os.environ.get(CLASS_SET_ENV) != "no-maps")
            except OSError as err:
                st.error(f"Cannot prepare the default model: {plain(runs_dir())} cannot be "
                         f"written ({plain(err.strerror or str(err))}). Start the app with "
                         "RECSYS_RUNS_DIR set to a folder you can write to.")
                st.stop()
    st.info("First launch: no trained model on this machine yet, so the class set is being "
            "prepared: the default model first (a few seconds; every page works as soon as it "
            "is saved), then in the background an mf-bpr run for the training lessons, the "
            "baselines and the maps.", icon=":material/model_training:")
    if book.other_data or book.damaged:
        st.caption(f"{len(book.other_data)} run(s) of other data and {len(book.damaged)} "
                   "damaged run(s) were found and are not used.")
    _first_launch_progress()
    st.stop()


@st.fragment(run_every=1.0)
def _first_launch_progress() -> None:
    if run_book().usable:  # the default model is saved: redraw the page with it
        st.rerun(scope="app")
    now = class_set.preparation(runs_dir())
    if now is not None and not now.running:
        st.error(f"Preparing the default model failed: {plain(now.message)}. Run `recsys "
                 "prepare-class` in a terminal to see the full report, then reload.")
        return
    fraction, message = (now.fraction, now.message) if now else (0.0, "starting")
    st.progress(fraction, text=plain(message))


def job_from(job_id: str | None) -> JobSnapshot | None:
    """A job by id (from the session or the URL), or None for an unknown or malformed id."""
    if not job_id:
        return None
    return job_manager().snapshot(str(job_id))


# ---------------------------------------------------------------------- data of a run
@st.cache_resource(show_spinner="Preparing the split…", max_entries=8)
def split_for(config: SplitConfig) -> Split:
    return prepare_split(dataset(), config)


@per_run(show_spinner=False, max_entries=32)
def catalogue(run: Run) -> pd.DataFrame:
    """Movies aligned with the run's item indices (a copy: safe to change)."""
    return movies_for(dataset(), run.item_ids)


@dataclass(frozen=True)
class MovieNames:
    """A run's movie titles for the pages' pickers and lookups, built once per run and shared
    read-only: reading them out of the catalogue's Arrow-backed text column on every page view
    cost 4 ms of CPU (measured), and ``catalogue`` hands each call its own copy."""

    titles: MappingProxyType  # item id -> title, most rated first (the pickers' order)
    by_popularity: tuple[int, ...]  # the same item ids, most rated first


@per_run(st.cache_resource, show_spinner=False, max_entries=32)
def movie_names(run: Run) -> MovieNames:
    """The run's :class:`MovieNames` (shared, read-only)."""
    movies = catalogue(run).sort_values("popularity", ascending=False)
    titles = dict(zip(movies["item_id"].tolist(), movies["title"].tolist(), strict=True))
    return MovieNames(MappingProxyType(titles), tuple(titles))


@per_run(show_spinner=False, max_entries=32)
def users(run: Run) -> pd.DataFrame:
    return user_tables.user_table(dataset(), run)


@per_run(show_spinner=False, max_entries=32)
def user_labels(run: Run) -> dict[int, str]:
    return user_tables.user_labels(users(run))


@per_run(st.cache_resource, show_spinner="Preparing the model for serving…", max_entries=16)
def _catalog(run: Run) -> Catalog:
    return Catalog.build(run, dataset())


def catalog(run: Run) -> Catalog:
    """The serving catalog of ``run`` (shared, read-only), or an error box and a stopped page
    when the run does not fit the loaded data."""
    try:
        return _catalog(run)
    except RecsysError as err:  # RunError included: other data, or a changed item mapping
        st.error(f"Cannot serve run {short(run.name)}: {plain(err)}. Pick another run in the "
                 "sidebar.")
        st.stop()


def has_item_embeddings(run: Run, purpose: str) -> bool:
    """Whether ``run`` has movie vectors; if not, an info box saying which models do."""
    if run.model.item_factors() is not None:
        return True
    st.info(f"The active run ({run.train_config.model}) has no movie vectors {purpose}. Pick "
            f"a run of {', '.join(EMBEDDING_MODELS)} in the sidebar.")
    return False


@per_run(show_spinner=False, max_entries=64)
def compare_reranking(run: Run, config) -> pd.DataFrame:
    """Funnel test metrics without and with ``config``'s re-ranking (cached per knobs)."""
    table = funnel.compare_reranking(_catalog(run), config)
    keep = ["recall@10", "ndcg@10", "coverage@10", "novelty@10", "intra_list_diversity@10",
            "candidate_recall"]
    return table[[c for c in keep if c in table]]


@per_run(show_spinner=False, max_entries=64)
def ann_report(run: Run, nlist: int, nprobe: int) -> dict:
    """IVF recall and latency against exact search on the run's item factors."""
    return index.ann_recall_report(run.model.item_factors(), nlist=nlist, nprobe=nprobe)


@per_run(show_spinner="Measuring the lists over the whole catalogue…", max_entries=64)
def lens_quality(run: Run, lens: str) -> dict:
    """Neighbour quality of ``run``'s similar-movie lens ``lens`` over the whole catalogue
    (``nq_*@10`` keys, None where it cannot be measured)."""
    return neighbours.run_neighbour_quality(run.model, split_for(run.split_config),
                                            catalogue(run), lens=lens)


# ---------------------------------------------------------------------- projections
@per_run(st.cache_resource, show_spinner=False, max_entries=32)
def projection(run: Run, method: str = "pca") -> proj.Projection:
    """The run's 2-D item map (cached in memory and in the run dir); never mutate it.

    A RecsysError when the run has no item embeddings (check ``run.model.item_factors()``)."""
    return proj.project_run(run, method, movies=catalogue(run))


@per_run(st.cache_resource, show_spinner=False, max_entries=32)
def item_map(run: Run, method: str = "tsne") -> proj.Projection:
    """The app's map of the movies (:func:`recsys.lessons.projection.project_item_map`: the
    movies with enough likes, debiased unit vectors; cached in memory and in the run dir);
    never mutate it. A RecsysError when the run has no item embeddings."""
    settings = replace(proj.DEFAULT_MAP, method=method)
    return proj.project_item_map(run, catalog(run).seen, settings, movies=catalogue(run))


def item_map_is_cached(run: Run, method: str) -> bool:
    return proj.item_map_is_cached(run.path, method)


@per_run(show_spinner=False, max_entries=32)
def item_map_frame(run: Run, method: str = "tsne") -> pd.DataFrame:
    """The item map's frame with ``label`` and ``ratings`` columns (a copy: safe to extend)."""
    return display.map_frame(item_map(run, method).frame, catalogue(run))


def projection_is_cached(run: Run, method: str) -> bool:
    """Whether the map was computed already (by the training worker or an earlier visit)."""
    folder = Path(run.path) / "projections"
    return folder.is_dir() and any(folder.glob(f"items-{method}-*.npz"))


@per_run(show_spinner=False, max_entries=32)
def projection_frame(run: Run, method: str = "pca") -> pd.DataFrame:
    """The map's frame with ``genre`` and ``ratings`` columns (a copy: safe to extend)."""
    return display.map_frame(projection(run, method).frame, catalogue(run))


# ---------------------------------------------------------------------- sidebar
def context() -> tuple[MovieLens, Run]:
    """The dataset and this visitor's active run, with the sidebar's model section drawn."""
    ml = dataset()
    run = active_run()
    sidebar(ml, run, run_book())
    warm_job_manager()
    return ml, run


def warm_job_manager() -> None:
    """Creates the server's job manager on a visitor's first page, whichever it is, so that
    its warm standby worker (recsys/jobs/standby.py) is ready by the time someone presses
    Train; created on the Train page itself, it was still warming up at the first click. A
    runs folder that cannot hold jobs says so on the Train page, not here."""
    with contextlib.suppress(OSError):
        _job_manager()


def sidebar(ml: MovieLens, run: Run, book: RunBook) -> None:
    """Run picker, the active run's protocol and metrics, skipped runs, dataset facts."""
    by_name = book.by_name()
    pinned = pinned_name()
    with st.sidebar:
        st.divider()
        st.selectbox(
            "Active model", list(by_name), key=RUN_KEY,
            format_func=lambda n: f"{by_name[n].train_config.model} · R@10 "
                                  f"{metric_text(by_name[n], 'recall@10')} · {n}"
                                  f"{' · pinned' if n == pinned else ''}",
            help="Your choice only: other visitors keep their own. The *pinned* run is the "
                 "default for new visitors (pin another on the Train & evaluate page or with "
                 "`recsys pin RUN`).")
        state.remember(RUN_KEY, run.name)
        st.query_params["run"] = run.name
        st.caption(plain(run.split_config.describe()))
        c1, c2 = st.columns(2)
        c1.metric("Recall@10", metric_text(run, "recall@10"), help="test, K = 10")
        c2.metric("NDCG@10", metric_text(run, "ndcg@10"), help="test, K = 10")
        if book.damaged:
            names = ", ".join(short(name, 40) for name, _ in book.damaged)
            st.warning(f"Skipped {len(book.damaged)} damaged run folder"
                       f"{'s' if len(book.damaged) > 1 else ''}: {names}. "
                       f"{plain(book.damaged[0][1])}", icon=":material/warning:")
        if book.other_data:
            st.caption(f"{len(book.other_data)} run(s) trained on other data are not offered "
                       "(listed on Train & evaluate).")
        st.divider()
        st.caption(f"**Data:** {plain(ml.name)} · {len(ml.ratings):,} ratings · "
                   f"{ml.n_users:,} users · {ml.n_items:,} movies  \n"
                   f"Source: {short(ml.source, 120)}")
        lecturer_controls()


# ---------------------------------------------------------------------- the lecturer
LECTURER = "lecturer"  # session key: this browser has unlocked the lecturer's controls
LECTURER_ENV = "RECSYS_LECTURER_KEY"


def lecturer_key() -> str | None:
    """The key that unlocks the lecturer's controls (``$RECSYS_LECTURER_KEY``); None when
    no lecturer is configured: one person's app, where anyone may pin the default."""
    return os.environ.get(LECTURER_ENV) or None


def is_lecturer() -> bool:
    """Whether this browser session has entered the lecturer's key."""
    key = lecturer_key()
    return key is not None and st.session_state.get(LECTURER) == key


def may_pin_for_everyone() -> bool:
    """Pinning sets the default model of every visitor: the lecturer's, where there is one."""
    return lecturer_key() is None or is_lecturer()


def may_control(job: JobSnapshot) -> bool:
    """Stop and Cancel: where a lecturer is configured (a class shares the server), the
    browser session that started the job (its id is a secret kept in the session, never in
    the URL a student shares) and the lecturer; in one person's app, anyone (a reload, a new
    session, still finds its Stop button)."""
    return lecturer_key() is None or job.owner == state.owner() or is_lecturer()


def lecturer_controls() -> None:
    """The sidebar's lecturer section: the key to unlock, or a note that none is set."""
    key = lecturer_key()
    with st.expander("Lecturer", icon=":material/school:"):
        if key is None:
            st.caption(f"No lecturer key is set ({LECTURER_ENV}), so this is one person's "
                       "app: anyone may pin the default model and stop any training job. Set "
                       "it before sharing the URL with a class: then only the lecturer may "
                       "pin, and a job's Stop and Cancel stay with the browser tab that "
                       "started it (and the lecturer).")
            prepare_class_control()
        elif is_lecturer():
            st.caption("Lecturer controls are on in this browser: pin the default for "
                       "everyone, stop or cancel any job, train without visitor limits.")
            prepare_class_control()
            if st.button("Lock", key="lecturer_lock"):
                st.session_state.pop(LECTURER, None)
                st.rerun()
        else:
            entered = st.text_input("Lecturer key", type="password", key="lecturer_entry")
            if entered and hmac.compare_digest(entered, key):
                st.session_state[LECTURER] = key
                st.rerun()
            elif entered:
                st.error("That is not the lecturer key.")


# ---------------------------------------------------------------------- the class set
def class_run(entry: class_set.ClassRun) -> Run | None:
    """The class set's run for ``entry`` (e.g. ``class_set.TRAINING``, the mf-bpr run of the
    training lessons), or None while it is not prepared."""
    return class_set.find_class_run(run_book().usable, entry)


def lesson_run(run: Run) -> tuple[Run, str | None]:
    """The run a lesson on negatives, epochs or the replay should draw: the active ``run`` when
    it trains with sampled negatives epoch by epoch, else the class set's mf-bpr run, with the
    sentence that says so (or the active run and a hint to prepare the class set)."""
    if "negatives" in run.model.settings and run.model.iterative:
        return run, None
    entry = class_set.TRAINING
    lesson = class_run(entry)
    if lesson is None:
        return run, (f"The active run ({run.train_config.model}) samples no negatives; the "
                     f"class set's {entry.model} run, which does, is not prepared yet: "
                     f"{PREPARE_HINT}")
    return lesson, (f"Shown on the class set's {entry.model} run ({short(lesson.name)}): the "
                    f"active run, {run.train_config.model}, samples no negatives.")


PREPARE_HINT = ("the lecturer's **Prepare the class** (sidebar, Lecturer) or `recsys "
                "prepare-class` trains it with every baseline in about a minute.")


def prepare_class_control() -> None:
    """The lecturer's "Prepare the class": starts the background preparation of the class set
    (:mod:`recsys.jobs.class_set`) and shows its progress; says when the set is complete."""
    state_now = class_set.preparation(runs_dir())
    usable = run_book().usable
    missing = [e for e in class_set.CLASS_RUNS if class_set.find_class_run(usable, e) is None]
    if state_now is not None and state_now.running:
        _preparation_progress()
        return
    if missing:
        st.caption("Not prepared yet: " + ", ".join(f"{e.model} ({e.purpose})" for e in missing))
    else:
        st.caption("The class set is ready: the default model, an mf-bpr run for the training "
                   "lessons and every baseline.")
    if st.button("Prepare the class", key="prepare_class", icon=":material/school:",
                 help="Trains what is missing of the class set and computes its maps, in the "
                      "background at low priority (about a minute on 2 cores)."):
        class_set.start_preparation(runs_dir())
        st.rerun()


@st.fragment(run_every=1.0)
def _preparation_progress() -> None:
    now = class_set.preparation(runs_dir())
    if now is None or not now.running:
        st.rerun(scope="app")
    st.progress(now.fraction, text=f"Preparing the class: {plain(now.message)}")


def metric_text(run: Run, name: str) -> str:
    """A test metric of ``run`` for display ("–" when the run did not record it)."""
    value = run.metrics.get(name)
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


def metric_row(items: dict[str, str]) -> None:
    for col, (label, value) in zip(st.columns(len(items)), items.items(), strict=True):
        col.metric(label, value)
