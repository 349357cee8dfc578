"""Run directories: one trained model with its config, metrics, history, id mappings and data
fingerprint, written atomically and loaded without unpickling anything."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.config import SplitConfig, TrainConfig, from_dict, to_dict
from recsys.data import MovieLens
from recsys.evaluation import evaluate_model
from recsys.interactions import Interactions
from recsys.models import Recommender, create_model
from recsys.splits import Split, make_split

FILES = ("config.json", "metrics.json", "history.json", "mappings.json", "dataset.json",
         "weights.npz")


class RunError(ValueError):
    """A run directory is missing, incomplete, or belongs to other data."""


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
    extra: dict[str, Any] = field(default_factory=dict)

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
    phase("fit")
    start = time.perf_counter()
    model.fit(split, callbacks)
    fit_seconds = time.perf_counter() - start
    phase("test")
    test = evaluate_model(model, split, k=k, part="test")
    metrics = {
        **test.to_dict(),
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
        save_run(run, out_dir)
    return run


def save_run(run: Run, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Writes the run into a temporary sibling directory, then renames it into place, so an
    interrupted save never leaves a half-written run."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise RunError(f"{out} already exists: choose another --out or delete it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        _write_json(tmp / "config.json",
                    {"split": to_dict(run.split_config), "train": to_dict(run.train_config)})
        _write_json(tmp / "metrics.json", run.metrics)
        _write_json(tmp / "history.json", run.history)
        _write_json(tmp / "dataset.json", run.dataset)
        _write_json(tmp / "mappings.json", {"user_ids": run.user_ids.tolist(),
                                            "item_ids": run.item_ids.tolist()})
        np.savez(tmp / "weights.npz", **run.model.state())
        if out.exists():
            trash = out.parent / f".{out.name}.old-{time.time_ns()}"
            out.rename(trash)
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    run.path = out
    return out


def load_run(path: str | Path) -> Run:
    """Loads a run directory written by :func:`save_run` (arrays only, never pickles)."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"no run directory at {path}: train one with `recsys train --out {path}`")
    missing = [f for f in FILES if not (path / f).exists()]
    if missing:
        raise RunError(f"{path} is not a complete run (missing {', '.join(missing)})")
    config = _read_json(path / "config.json")
    split_config = from_dict(SplitConfig, config["split"])
    train_config = from_dict(TrainConfig, config["train"])
    mappings = _read_json(path / "mappings.json")
    with np.load(path / "weights.npz", allow_pickle=False) as arrays:
        state = {k: arrays[k] for k in arrays.files}
    model = create_model(train_config).load_state(state)
    model.history = _read_json(path / "history.json")
    return Run(
        path=path,
        model=model,
        split_config=split_config,
        train_config=train_config,
        metrics=_read_json(path / "metrics.json"),
        history=model.history,
        dataset=_read_json(path / "dataset.json"),
        user_ids=np.asarray(mappings["user_ids"], np.int64),
        item_ids=np.asarray(mappings["item_ids"], np.int64),
    )


def list_runs(root: str | Path) -> list[Path]:
    """Complete run directories under ``root``, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "weights.npz").exists()]
    # weights.npz is written once; the folder's own time moves when caches are added to it.
    return sorted(runs, key=lambda p: (p / "weights.npz").stat().st_mtime, reverse=True)


def default_runs_dir() -> Path:
    """Where runs go unless told otherwise: ``$RECSYS_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("RECSYS_RUNS_DIR", "runs"))


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=_json_default) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunError(f"{path} is not valid JSON ({err}): the run is damaged, retrain it") from err


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
