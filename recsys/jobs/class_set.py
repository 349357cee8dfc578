"""The class set: every run the pages and the tour need to show their lessons, prepared once.

A fresh install has no runs; the default model alone (mf-als) samples no negatives and settles
in three sweeps, so the lessons on negatives, epochs and the training replay would have nothing
to show, and "metrics against popularity" no baseline. :func:`prepare_class` trains, on the
default protocol, the default model (pinned when nothing is), an mf-bpr run for the training
lessons and every baseline, then computes the maps the pages open on. Runs that are already
there (usable, on this data) are skipped, so running it again costs a second. It is what
``scripts/run.sh``, ``recsys prepare-class`` and the lecturer's "Prepare the class" run.

A class run is found again by its folder name (:data:`CLASS_RUNS`); a folder of that name that
cannot be used (damaged, other data) is left as it is and the run is trained beside it under a
suffixed name (``class-mf-bpr-2``), so nothing is overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.data.protocol import SplitConfig
from recsys.models.config import DEFAULT_MODEL, TrainConfig

if TYPE_CHECKING:
    from recsys.data.loading import MovieLens
    from recsys.storage.runs import Run

PROTOCOL = SplitConfig()  # every class run is trained and evaluated on the default protocol
CLASS_LOCK = ".class.lock"  # held by the one preparation of a runs folder
Progress = Callable[[float, str], Any]  # (fraction done, what is happening now)


@dataclass(frozen=True)
class ClassRun:
    """One run of the class set: its folder, its model and the lesson it is there for."""

    folder: str  # under the runs folder; later copies get "-2", "-3", ...
    model: str
    purpose: str
    maps: tuple[str, ...] = ()  # the 2-D maps computed for it (recsys.lessons.projection)
    settings: tuple[tuple[str, Any], ...] = ()  # (field, value) beside the model's defaults

    def config(self) -> TrainConfig:
        return TrainConfig.for_model(self.model, **dict(self.settings))


DEFAULT = ClassRun("default", DEFAULT_MODEL, "the default model every page opens on",
                   maps=("tsne", "pca", "umap"))
# The training lessons show Adam on mini-batches, the tutorial's loop (the torch engine): with
# the compiled engine's plain SGD, rarely liked movies do not keep their random start length,
# which the vector-length lesson's sentence is about (bench/BPR_ENGINE.md).
TUTORIAL_ENGINE = ("engine", "torch")
TRAINING = ClassRun("class-mf-bpr", "mf-bpr",
                    "the training lessons: sampled negatives, 20 epochs of curves, the replay",
                    maps=("tsne", "pca"), settings=(TUTORIAL_ENGINE,))
CLASS_RUNS: tuple[ClassRun, ...] = (
    DEFAULT,
    TRAINING,
    # Ten times the default weight decay: the vector-length lesson puts two weight decays of
    # one model side by side (Spearman of length and popularity 0.97 against 0.73).
    ClassRun("class-mf-bpr-decay", "mf-bpr", "the vector-length lesson: 10x the weight decay",
             settings=(TUTORIAL_ENGINE, ("weight_decay", 0.03))),
    ClassRun("class-popularity", "popularity", "the baseline every model has to beat"),
    ClassRun("class-itemknn", "itemknn", "a baseline: movies liked together"),
    ClassRun("class-ease", "ease", "a baseline: the strongest linear model"),
    ClassRun("class-svd", "svd", "a baseline: a truncated SVD of the likes"),
    # The config bench.tune chose on validation for the default (temporal) protocol: the
    # leaderboard's live answer to "is an embedding model at EASE's level?" (bench/ALS.md)
    ClassRun("class-mf-als-recency", "mf-als",
             "an embedding model at EASE's level: recency-weighted confidence, tuned on validation",
             settings=(("dim", 128), ("als_lambda", 20.0), ("als_alpha", 10.0),
                       ("als_nu", 0.5), ("als_cg_steps", 0), ("als_recency", 2.0),
                       ("epochs", 60), ("patience", 5))),
)
# Seconds each step took on the 2-core development machine (ML-100K), to weigh the progress bar.
_COST = {"mf-als": 1, "mf-bpr": 5, "popularity": 1, "itemknn": 1, "ease": 2, "svd": 3,
         "pca": 1, "umap": 20, "tsne": 18}


@dataclass(frozen=True)
class ClassStatus:
    """Which class runs a runs folder holds, usable on this data."""

    found: dict[str, Run]  # ClassRun.folder -> the usable run
    missing: tuple[ClassRun, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def class_run_names(runs: Iterable[str], entry: ClassRun) -> list[str]:
    """Of the run folder names ``runs``, those that are copies of ``entry`` (its folder or a
    suffixed one), first-made first."""
    def number(name: str) -> int | None:
        if name == entry.folder:
            return 1
        head, _, tail = name.rpartition("-")
        return int(tail) if head == entry.folder and tail.isdigit() else None

    numbered = [(n, name) for name in runs if (n := number(name)) is not None]
    return [name for _, name in sorted(numbered)]


def find_class_run(usable: Iterable[Run], entry: ClassRun) -> Run | None:
    """The usable run (this data, default protocol) that is ``entry``, or None."""
    by_name = {run.name: run for run in usable
               if run.split_config == PROTOCOL and run.train_config.model == entry.model}
    names = class_run_names(by_name, entry)
    return by_name[names[0]] if names else None


def class_status(runs_dir: str | Path, ml: MovieLens) -> ClassStatus:
    """Loads the runs folder's class runs (only those folders) and says which are missing."""
    from recsys.errors import RunError
    from recsys.storage.runs import list_runs, load_run

    folders = {path.name: path for path in list_runs(runs_dir)}
    fingerprint = ml.fingerprint()
    found: dict[str, Run] = {}
    for entry in CLASS_RUNS:
        usable = []
        for name in class_run_names(folders, entry):
            try:
                run = load_run(folders[name])
            except (RunError, OSError):
                continue
            if run.dataset.get("fingerprint") == fingerprint:
                usable.append(run)
        if (run := find_class_run(usable, entry)) is not None:
            found[entry.folder] = run
    return ClassStatus(found, tuple(e for e in CLASS_RUNS if e.folder not in found))


def prepare_class(ml: MovieLens, runs_dir: str | Path, progress: Progress | None = None,
                  maps: bool = True, train: bool = True) -> ClassStatus:
    """Trains the missing class runs (``train``), pins the default run when no run is pinned,
    and computes the missing maps (``maps``); returns what the folder holds afterwards.

    One split is built and shared by every training; each run is saved whole or not at all
    (:func:`recsys.storage.runs.save_run`), so an interrupted preparation resumes where it
    stopped. Maps already computed load in milliseconds and are not recomputed. A second
    preparation of the same folder (``scripts/run.sh`` and the lecturer's button, say) waits
    for the first, then finds everything done.
    """
    report = progress or (lambda fraction, message: None)
    runs_dir = Path(runs_dir)
    with _one_at_a_time(runs_dir, report):
        return _prepare(ml, runs_dir, report, maps, train)


def _prepare(ml: MovieLens, runs_dir: Path, report: Progress, maps: bool,
             train: bool) -> ClassStatus:
    from recsys.storage.runs import prepare_split, train_run

    status = class_status(runs_dir, ml)
    todo_train = status.missing if train else ()
    total = sum(_COST.get(e.model, 5) for e in todo_train)
    total += sum(_COST.get(m, 5) for e in CLASS_RUNS for m in e.maps) if maps else 0
    done = 0.0
    found = dict(status.found)
    split = prepare_split(ml, PROTOCOL) if todo_train else None
    for entry in todo_train:
        report(done / max(total, 1), f"training {entry.model} ({entry.purpose})")
        start = time.perf_counter()
        out = _free_folder(runs_dir, entry)
        found[entry.folder] = train_run(ml, PROTOCOL, entry.config(), out, split=split)
        done += _COST.get(entry.model, 5)
        report(done / max(total, 1),
               f"trained {entry.model} in {time.perf_counter() - start:.1f} s -> {out.name}")
        if entry.folder == DEFAULT.folder:  # pinned at once: served while the rest trains
            _pin_unless_pinned(runs_dir, found, report, done / max(total, 1))
    _pin_unless_pinned(runs_dir, found, report, done / max(total, 1))
    if maps:
        from recsys.lessons.projection import project_app_map

        known = (split or prepare_split(ml, PROTOCOL)).seen_at_test.to_csr()
        for entry in CLASS_RUNS:
            run = found.get(entry.folder)
            for method in entry.maps:
                if run is not None:
                    report(done / max(total, 1), f"{method} map of {run.name}")
                    project_app_map(run, method, known)
                done += _COST.get(method, 5)
    report(1.0, "the class set is ready")
    return ClassStatus(found, tuple(e for e in CLASS_RUNS if e.folder not in found))


def _pin_unless_pinned(runs_dir: Path, found: dict[str, Run], report: Progress,
                       fraction: float) -> None:
    """Pins the class set's default run when no run is pinned (an existing pin is the
    lecturer's choice and is kept)."""
    from recsys.storage.runs import pin_run, pinned_run_name

    if DEFAULT.folder in found and pinned_run_name(runs_dir) is None:
        pin_run(runs_dir, found[DEFAULT.folder].name)
        report(fraction, f"pinned {found[DEFAULT.folder].name} as the default model")


def _free_folder(runs_dir: Path, entry: ClassRun) -> Path:
    """``entry``'s folder, or the next suffixed name when that one is taken by a run that
    cannot be used here (never overwritten: it may be someone's)."""
    taken = {p.name for p in runs_dir.iterdir()} if runs_dir.is_dir() else set()
    name, number = entry.folder, 1
    while name in taken:
        number += 1
        name = f"{entry.folder}-{number}"
    return runs_dir / name


@contextlib.contextmanager
def _one_at_a_time(runs_dir: Path, report: Progress) -> Iterator[None]:
    """Holds ``runs_dir/.class.lock`` (the OS drops it when the holder dies)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(runs_dir / CLASS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report(0.0, "another preparation of this runs folder is under way: waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- in the background
CLASS_LOG = ".class.log"  # what the background preparation prints, one line per step
_LINE = re.compile(r"\[\s*(\d+)%\s+[\d.]+ s\] (.*)")


def start_preparation(runs_dir: str | Path, maps: bool = True) -> int:
    """Starts ``recsys prepare-class`` for ``runs_dir`` in its own process at low priority
    (the app's "Prepare the class"), writing :data:`CLASS_LOG`; returns its pid. The process
    outlives a page and is not a child the server has to reap: it is started in its own
    session and its parent does not wait for it."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / CLASS_LOG, "wb") as log:
        process = subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", "recsys.cli", "prepare-class",
             "--runs-dir", str(runs_dir), "--no-download", *([] if maps else ["--no-maps"])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    _STARTED.append(process)
    return process.pid


_STARTED: list[subprocess.Popen] = []  # polled by preparation(), so none stays a zombie
START_SECONDS = 30.0  # a fresh log counts as a preparation starting up (imports, data) this long
_FINAL = ("the class set is ready", "recsys prepare-class: error", "not trained:")


@dataclass(frozen=True)
class Preparation:
    """What the last preparation of a runs folder said: running or not, how far, its step."""

    running: bool
    fraction: float
    message: str


def preparation(runs_dir: str | Path) -> Preparation | None:
    """The state of the runs folder's preparation, from its lock and its log; None when none
    was ever started from the app (or the log is gone). A log younger than
    :data:`START_SECONDS` without a last word counts as running: the process takes the lock
    only once it has imported and loaded the data."""
    for process in list(_STARTED):
        if process.poll() is not None:
            _STARTED.remove(process)
    runs_dir = Path(runs_dir)
    try:
        log = runs_dir / CLASS_LOG
        lines = log.read_text(errors="replace").splitlines()
        age = time.time() - log.stat().st_mtime
    except OSError:
        return None
    fraction, message = 0.0, "starting"
    for line in lines:
        if (match := _LINE.fullmatch(line.strip())) is not None:
            fraction, message = int(match[1]) / 100, match[2]
        elif line.strip():
            message = line.strip()  # e.g. the data source, or an error's one line
    finished = any(line.startswith(_FINAL) or _FINAL[0] in line for line in lines)
    starting = age < START_SECONDS and not finished
    return Preparation(is_preparing(runs_dir) or starting, fraction, message)


def is_preparing(runs_dir: str | Path) -> bool:
    """Whether some process holds ``runs_dir``'s preparation lock right now."""
    try:
        fd = os.open(Path(runs_dir) / CLASS_LOCK, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
