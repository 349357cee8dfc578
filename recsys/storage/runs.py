"""Run directories: one trained model with its config, metrics, history, id mappings and data
fingerprint, written atomically and loaded without unpickling anything."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import stat
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from recsys.data.interactions import Interactions
from recsys.data.loading import MovieLens, movies_for
from recsys.data.protocol import SplitConfig
from recsys.data.splits import Split, make_split
from recsys.errors import RunError
from recsys.evaluation.metrics import evaluate_model
from recsys.evaluation.neighbours import run_neighbour_quality
from recsys.models import create_model
from recsys.models.base import Recommender
from recsys.models.config import TrainConfig
from recsys.settings import from_dict, to_dict
from recsys.storage.replay import Replay, ReplayRecorder, write_replay

FILES = ("config.json", "metrics.json", "history.json", "mappings.json", "dataset.json",
         "weights.npz")
PIN_FILE = "pinned.json"  # names the app's default run for new visitors (not a run itself)
MAX_JSON_BYTES = 64 * 2**20  # far above any real run file; stops a runaway read early
MAX_PIN_BYTES = 64 * 2**10
# What restoring weights of the wrong size or kind raises: a missing array (KeyError), numpy's
# shape errors (ValueError), torch's "size mismatch" (RuntimeError). Not TypeError or
# AttributeError: those are bugs in a model's loading code, which must surface as tracebacks
# rather than set aside every run of that model as damaged.
_MISFIT_ERRORS = (KeyError, ValueError, RuntimeError)


@dataclass(eq=False)
class Run:
    """A fitted model plus everything needed to explain and reproduce its numbers."""

    path: Path | None
    model: Recommender
    split_config: SplitConfig
    train_config: TrainConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    dataset: dict[str, Any]
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def name(self) -> str:
        return self.path.name if self.path else self.train_config.model

    def check_dataset(self, ml: MovieLens) -> None:
        """Raises :class:`RunError` unless ``ml`` is the data this run was trained on."""
        if ml.fingerprint() != self.dataset.get("fingerprint"):
            raise RunError(
                f"run {self.name} was trained on {self.dataset.get('name')} with fingerprint "
                f"{self.dataset.get('fingerprint')}, but the loaded data ({ml.name}) has "
                f"{ml.fingerprint()}: load the same dataset or retrain"
            )


def build_events(ml: MovieLens) -> Interactions:
    """All rated events of ``ml`` indexed over every movie in its catalogue."""
    item_ids = np.union1d(ml.movies["item_id"].to_numpy(np.int64),
                          ml.ratings["item_id"].to_numpy(np.int64))
    return Interactions.from_frame(ml.ratings, item_ids=item_ids)


def prepare_split(ml: MovieLens, config: SplitConfig | None = None) -> Split:
    """The split a run with ``config`` is trained and evaluated on (deterministic)."""
    return make_split(build_events(ml), config or SplitConfig())


def train_run(
    ml: MovieLens,
    split_config: SplitConfig,
    train_config: TrainConfig,
    out_dir: str | Path | None = None,
    callbacks: Sequence[Callable[[int, dict[str, Any]], Any]] = (),
    split: Split | None = None,
    k: int = 10,
    on_phase: Callable[[str], Any] | None = None,
) -> Run:
    """Fits ``train_config.model`` on the split, evaluates it on test and (if ``out_dir``)
    saves it. Pass a ready ``split`` to skip rebuilding it. ``on_phase(name)`` is told when
    each phase starts: "split", "fit", "test", "save" (epochs are reported by ``callbacks``)."""
    phase = on_phase or (lambda name: None)
    if split is None:
        phase("split")
        split = prepare_split(ml, split_config)
    model = create_model(train_config)
    recorder = ReplayRecorder(model)  # the vectors per epoch, for the map's training replay
    phase("fit")
    start = time.perf_counter()
    model.fit(*split.fit_parts(), (*callbacks, recorder))  # the test part is only ever evaluated on
    fit_seconds = time.perf_counter() - start
    phase("test")
    test = evaluate_model(model, split, k=k, part="test")
    metrics = {
        **test.to_dict(),
        # how good its similar-movie lists are, over the whole catalogue (~0.3 s)
        **run_neighbour_quality(model, split, movies_for(ml, split.train.item_ids)),
        "fit_seconds": fit_seconds,
        "split_counts": split.counts(),
        "model": train_config.model,
    }
    run = Run(
        path=None,
        model=model,
        split_config=split_config,
        train_config=train_config,
        metrics=metrics,
        history=model.history,
        dataset={"name": ml.name, "fingerprint": ml.fingerprint(), "source": ml.source,
                 "ratings": len(ml.ratings)},
        user_ids=split.train.user_ids,
        item_ids=split.train.item_ids,
    )
    if out_dir is not None:
        phase("save")
        save_run(run, out_dir, replay=recorder.replay())
    return run


def save_run(run: Run, out_dir: str | Path, overwrite: bool = False,
             replay: Replay | None = None) -> Path:
    """Writes the run (with its training ``replay``, when there is one) into a temporary
    sibling directory, then renames it into place, so an interrupted save, or a disk that
    fills up, never leaves a half-written run: the OSError (ENOSPC) is raised instead.

    Without ``overwrite`` the rename itself claims the name: of two processes saving to the
    same folder at once exactly one succeeds, the other gets a :class:`RunError` and nothing
    of the first is touched. Temporary folders left beside it by processes that died are
    removed first (:func:`remove_stale_temporaries`).
    """
    out = Path(out_dir)
    if os.path.lexists(out) and not overwrite:
        raise _exists(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        _write_run_files(run, tmp)
        if replay is not None:
            write_replay(replay, tmp)
        if overwrite and out.exists():
            trash = out.parent / f".{out.name}.old-{time.time_ns()}"
            out.rename(trash)
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            _claim(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    run.path = out
    return out


def _write_run_files(run: Run, folder: Path) -> None:
    _write_json(folder / "config.json",
                {"split": to_dict(run.split_config), "train": to_dict(run.train_config)})
    _write_json(folder / "metrics.json", run.metrics)
    _write_json(folder / "history.json", run.history)
    _write_json(folder / "dataset.json", run.dataset)
    _write_json(folder / "mappings.json", {"user_ids": run.user_ids.tolist(),
                                           "item_ids": run.item_ids.tolist()})
    np.savez(folder / "weights.npz", **run.model.state())


def _claim(tmp: Path, out: Path) -> None:
    """Renames the full folder ``tmp`` to ``out`` unless something already has that name.

    rename(2) replaces only an empty folder, so a run that another process has just put at
    ``out`` (or a file there) makes it fail; the check before catches an empty folder too."""
    if os.path.lexists(out):
        raise _exists(out)
    try:
        os.rename(tmp, out)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise _exists(out) from err
        raise


def _exists(out: Path) -> RunError:
    return RunError(f"{out} already exists: choose another --out or delete it")


_TEMPORARY = re.compile(r"\..+\.tmp-(\d+)-\d+(\.npz)?")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Removes the temporary files and folders (``.NAME.tmp-PID-NS``) that processes which
    are no longer alive left in ``folder`` (killed while saving); returns what was removed.

    A temporary of a live process, including this one, is never touched."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = _TEMPORARY.fullmatch(entry.name)
        if found and not pid_is_alive(int(found.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            removed.append(entry)
    return removed


def pid_is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one we may not signal counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a number we cannot check: leave it
    return True


def load_run(path: str | Path) -> Run:
    """Loads a run directory written by :func:`save_run` (arrays only, never pickles).

    The run is checked as a whole, so any damage (a missing or unreadable file, a value of the
    wrong type, weights that fit neither the config nor the id mappings) raises one
    :class:`RunError` naming the run and saying what to do, never a stray traceback.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"no run directory at {path}: train one with `recsys train --out {path}`")
    _check_files(path)
    split_config, train_config = _read_config(path)
    user_ids, item_ids = _read_mappings(path)
    history = _read_json(path / "history.json", list, "a list of epochs")
    if not all(isinstance(epoch, dict) for epoch in history):
        raise _damaged(path, "history.json should hold one object per epoch")
    metrics = _read_json(path / "metrics.json", dict, "an object")
    dataset = _read_json(path / "dataset.json", dict, "an object")
    model = _load_model(path, train_config)
    _check_model_fits(path, model, len(user_ids), len(item_ids))
    model.history = history
    return Run(
        path=path,
        model=model,
        split_config=split_config,
        train_config=train_config,
        metrics=metrics,
        history=history,
        dataset=dataset,
        user_ids=user_ids,
        item_ids=item_ids,
    )


def list_runs(root: str | Path) -> list[Path]:
    """Complete run directories under ``root``, newest first (hidden folders such as
    ``.jobs`` and files such as ``pinned.json`` are not runs)."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = []
    for p in root.iterdir():
        if p.is_dir() and not p.name.startswith("."):
            try:  # weights.npz is written once; the folder's own time moves as caches are added
                runs.append(((p / "weights.npz").stat().st_mtime, p))
            except OSError:  # not a complete run, or deleted while we looked
                continue
    return [p for _, p in sorted(runs, key=lambda pair: pair[0], reverse=True)]


def default_runs_dir() -> Path:
    """Where runs go unless told otherwise: ``$RECSYS_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("RECSYS_RUNS_DIR", "runs"))


# ---------------------------------------------------------------------------- the pinned run
def pin_run(runs_dir: str | Path, name: str) -> Path:
    """Makes ``runs_dir/name`` the app's default model for new visitors; returns its path.

    The run must load (:func:`load_run`); ``pinned.json`` is replaced atomically, so readers
    see the old pin or the new one, never half a file.
    """
    root = Path(runs_dir)
    path = root / _plain_name(name, root)
    load_run(path)
    pin = {"run": name, "pinned_at": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = root / f".{PIN_FILE}.tmp-{os.getpid()}-{time.time_ns()}"
    try:
        _write_json(tmp, pin)
        os.replace(tmp, root / PIN_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def pinned_run_name(runs_dir: str | Path) -> str | None:
    """The pinned run's folder name, or None when nothing usable is pinned (no pin, an
    unreadable ``pinned.json``, or a pinned folder that is gone). Never raises."""
    root = Path(runs_dir)
    try:
        pin = json.loads(_read_regular(root / PIN_FILE, MAX_PIN_BYTES))
        name = _plain_name(pin["run"], root)
        return name if (root / name).is_dir() else None
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None


def unpin_run(runs_dir: str | Path) -> None:
    """Removes the pin: the app falls back to its own choice of default run."""
    (Path(runs_dir) / PIN_FILE).unlink(missing_ok=True)


def _plain_name(name: str, root: Path) -> str:
    """``name`` if it is one visible folder name inside ``root``, else a RunError."""
    # Path(name).name differs from name for "a/b", "/abs", "a/" (and "C:\\x" on Windows).
    if (not isinstance(name, str) or not name or name.startswith(".") or "\0" in name
            or Path(name).name != name):
        raise RunError(f"{name!r} is not a run folder name: give the name of a run folder "
                       f"inside {root}, e.g. one listed there")
    return name


# ---------------------------------------------------------------------------- checking a run
def _damaged(path: Path, problem: str) -> RunError:
    """The one error for a run that cannot be used: which run, what is wrong, what to do."""
    return RunError(f"run {_label(path)} is damaged: {problem}; retrain it or delete the folder")


def _label(path: Path) -> str:
    return path.name if path.name not in ("", "..") else str(path.resolve())


def _check_files(path: Path) -> None:
    """Raises unless every run file exists and is a regular file (a FIFO would block the
    reader, a device such as /dev/zero would never end)."""
    missing = []
    for name in FILES:
        try:
            info = os.stat(path / name)
        except FileNotFoundError:
            missing.append(name)
            continue
        except OSError as err:
            raise _damaged(path, f"{name} cannot be read ({err.strerror})") from err
        if not stat.S_ISREG(info.st_mode):
            raise _damaged(path, f"{name} is not a regular file")
    if missing:
        raise RunError(f"run {_label(path)} is not a complete run (missing {', '.join(missing)}); "
                       "retrain it or delete the folder")


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (OSError or ValueError if not)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError(f"{path.name} is not a regular file")
    with open(path, "rb") as f:
        data = f.read(limit + 1)  # capped even if the file grows after the check
    if len(data) > limit:
        raise ValueError(f"{path.name} is larger than {limit:,} bytes")
    return data


def _read_json(path: Path, kind: type, described: str) -> Any:
    """The JSON value of a run file, which must be a ``kind`` (``described`` in words)."""
    try:
        data = _read_regular(path, MAX_JSON_BYTES)
    except OSError as err:
        raise _damaged(path.parent, f"{path.name} cannot be read ({err.strerror})") from err
    except ValueError as err:
        raise _damaged(path.parent, str(err)) from err
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as err:  # ValueError: bad JSON or bad UTF-8
        raise _damaged(path.parent, f"{path.name} is not valid JSON") from err
    if not isinstance(value, kind):
        raise _damaged(path.parent, f"{path.name} should hold {described}, "
                                    f"not {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a number")


def _read_config(path: Path) -> tuple[SplitConfig, TrainConfig]:
    config = _read_json(path / "config.json", dict, "an object")
    if not isinstance(config.get("split"), dict) or not isinstance(config.get("train"), dict):
        raise _damaged(path, "config.json lacks its split and train settings")
    return _config(path, SplitConfig, config["split"]), _config(path, TrainConfig, config["train"])


def _config(path: Path, cls: type, values: dict[str, Any]) -> Any:
    """``cls`` from a run's settings, refusing values of the wrong type before the dataclass
    compares them (which would fail with a bare TypeError)."""
    for f in fields(cls):
        if f.name in values and not _is_kind(values[f.name], type(f.default)):
            shown = json.dumps(values[f.name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise _damaged(path, f"config.json sets {f.name} to {shown}, which is not "
                                 f"{_KIND_WORDS[type(f.default)]}")
    try:
        return from_dict(cls, values)
    except (TypeError, ValueError) as err:
        raise _damaged(path, f"config.json has an invalid setting ({err})") from err


_KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _is_kind(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _read_mappings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    mappings = _read_json(path / "mappings.json", dict, "an object")
    return _ids(path, mappings, "user_ids"), _ids(path, mappings, "item_ids")


def _ids(path: Path, mappings: dict[str, Any], key: str) -> np.ndarray:
    """One id list of ``mappings.json`` as int64: whole numbers, each once."""
    values = mappings.get(key)
    if not isinstance(values, list):
        raise _damaged(path, f"mappings.json lacks the list {key}")
    try:
        ids = np.asarray(values) if values else np.zeros(0, np.int64)
    except (ValueError, TypeError, OverflowError):  # ragged nesting
        ids = np.zeros((0, 0))
    if ids.ndim != 1 or ids.dtype.kind != "i":  # floats, text, null, true/false, huge numbers
        raise _damaged(path, f"mappings.json {key} are not all whole numbers")
    if len(np.unique(ids)) != len(ids):
        raise _damaged(path, f"mappings.json lists some {key} twice")
    return ids.astype(np.int64, copy=False)


# Arrays older runs hold and no model reads any more: models kept the known positives
# (train + validation) until they stopped being given anything beyond the fit parts.
_RETIRED_WEIGHTS = ("seen_indptr", "seen_indices")


def _load_model(path: Path, config: TrainConfig) -> Recommender:
    """The model of ``config`` restored from ``weights.npz``, whose arrays are checked first."""
    state = {key: value for key, value in _read_weights(path).items()
             if key not in _RETIRED_WEIGHTS}
    _check_state(path, state)
    try:
        return create_model(config).load_state(state)
    except _MISFIT_ERRORS as err:
        # RuntimeError: torch's "size mismatch" when config.json's dim differs from the weights
        raise _damaged(path, f"weights.npz does not fit the {config.model} model "
                             "described in config.json") from err


def _read_weights(path: Path) -> dict[str, Any]:
    """Every entry of ``weights.npz``; unreadable archives and pickles become RunErrors."""
    try:
        data = open(path / "weights.npz", "rb")  # closed by the with below
    except OSError as err:
        raise _damaged(path, f"weights.npz cannot be read ({err.strerror})") from err
    with data:
        if os.fstat(data.fileno()).st_size == 0:
            raise _damaged(path, "weights.npz is empty")
        try:
            archive = np.load(data, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):  # a lone .npy array
                return {}
            with archive:
                return {key: archive[key] for key in archive.files}
        except ValueError as err:
            if "Object arrays" in str(err):  # numpy's refusal to unpickle (allow_pickle=False)
                raise _damaged(path, "weights.npz holds pickled objects, which are never "
                                     "loaded") from err
            raise _damaged(path, "weights.npz is truncated or not an array archive") from err
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise _damaged(path, "weights.npz is truncated or not an array archive") from err


def _check_state(path: Path, state: dict[str, Any]) -> None:
    """Raises unless the arrays have the types and shapes :meth:`Recommender.state` writes:
    integer index arrays, finite float values, sparse matrices whose indices stay in range."""
    for key, value in state.items():
        if not isinstance(value, np.ndarray):
            raise _damaged(path, f"weights.npz entry {key} is not an array")
        if _is_index_array(key):
            if value.dtype.kind not in "iu":
                raise _damaged(path, f"weights.npz array {key} should hold whole numbers")
        elif value.dtype.kind != "f":
            raise _damaged(path, f"weights.npz array {key} should hold decimal numbers")
        elif not np.isfinite(value).all():
            raise _damaged(path, f"weights.npz array {key} holds NaN or infinite values")
    if "shape" not in state:
        raise _damaged(path, "weights.npz lacks the array shape")
    shape = _matrix_shape(path, "shape", state["shape"])
    if min(shape) < 1:
        raise _damaged(path, "weights.npz describes a model with no users or no items")
    for key in state:
        if key.startswith("param.") and key.endswith(".indptr"):
            prefix = key.removesuffix(".indptr")
            parts = [f"{prefix}.{part}" for part in ("indices", "shape", "data")]
            if not all(part in state for part in parts):
                raise _damaged(path, f"weights.npz lacks part of the sparse matrix {prefix}")
            indices, shape_key, data = parts
            if state[indices].shape != state[data].shape:
                raise _damaged(path, f"weights.npz sparse matrix {prefix} is inconsistent")
            _check_csr(path, prefix, state[key], state[indices],
                       _matrix_shape(path, shape_key, state[shape_key]))


def _is_index_array(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("shape", "indptr", "indices")


def _matrix_shape(path: Path, key: str, value: np.ndarray) -> tuple[int, int]:
    if value.shape != (2,) or value.min() < 0 or value.max() > 2**40:
        raise _damaged(path, f"weights.npz array {key} is not a matrix shape")
    return int(value[0]), int(value[1])


def _check_csr(path: Path, name: str, indptr: np.ndarray, indices: np.ndarray,
               shape: tuple[int, int]) -> None:
    """Raises unless (indptr, indices) is a valid CSR structure of ``shape`` (vectorised)."""
    valid = (indptr.ndim == 1 and indices.ndim == 1 and len(indptr) == shape[0] + 1
             and indptr[0] == 0 and indptr[-1] == len(indices)
             and bool((np.diff(indptr) >= 0).all())
             and (len(indices) == 0 or (indices.min() >= 0 and indices.max() < shape[1])))
    if not valid:
        raise _damaged(path, f"weights.npz sparse matrix {name} is inconsistent")


def _check_model_fits(path: Path, model: Recommender, n_user_ids: int, n_item_ids: int) -> None:
    """The loaded model agrees with the id mappings and can score its first and last user."""
    if (n_user_ids, n_item_ids) != (model.n_users, model.n_items):
        raise _damaged(path, f"mappings.json lists {n_user_ids} users and {n_item_ids} items "
                             f"but the weights are for {model.n_users} and {model.n_items}")
    misfit = _damaged(path, f"weights.npz does not fit the {model.name} model described in "
                            "config.json")
    try:
        factors = {"user": (model.user_factors(), model.n_users),
                   "item": (model.item_factors(), model.n_items)}
    except _MISFIT_ERRORS as err:
        raise misfit from err
    for kind, (vectors, count) in factors.items():
        if vectors is not None and (np.ndim(vectors) != 2 or len(vectors) != count):
            raise _damaged(path, f"weights.npz has {kind} vectors of shape "
                                 f"{np.shape(vectors)} for {count} {kind}s")
    try:
        scores = model.score(np.array([0, model.n_users - 1]))
    except _MISFIT_ERRORS as err:
        raise misfit from err
    if np.shape(scores) != (2, model.n_items):
        raise misfit


def _write_json(path: Path, value: Any) -> None:
    path.write_text(to_json(value) + "\n")


def to_json(value: Any) -> str:
    """Standard JSON (RFC 8259) of ``value``: numpy values become numbers or lists, and NaN
    or infinite numbers, which JSON cannot hold, become null."""
    return json.dumps(_finite(value), indent=2, default=_json_default, allow_nan=False)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (Python or numpy) replaced by None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
