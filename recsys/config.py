"""Configuration dataclasses: one per component, shared by the CLI, the app and saved runs.

Each field declares its help, plain-words label and allowed ``choices`` or ``bounds``;
:func:`field_specs` reads them for both front ends (the CLI turns every field into a flag, the
app into a widget) and :func:`check_fields` validates against them, so a new knob is added
here once. A field means the same for every model that reads it (a model lists the fields it
reads in its ``settings``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from recsys.checks import check_choice, check_range
from recsys.models.registry import MODEL_NAMES

# The model the CLI trains without --model and the app trains on first launch: chosen on
# validation Recall@10 *and* the quality of its similar-movie lists (bench/NEIGHBOURS.md):
# mf-als is within 0.003 of mf-bpr on validation Recall@10, +0.014 on test, and its
# neighbours follow genre instead of popularity (head genre lift 2.2 vs 1.8).
DEFAULT_MODEL = "mf-als"

MAX_SEED = 2**32 - 1  # numpy and torch both take seeds in 0 .. 2**32 - 1

# Where one model needs other defaults than TrainConfig's, chosen on the validation split
# (bench/TUNING.md): star ratings overfit without a much stronger L2; ALS converges in fewer
# sweeps than the torch models need epochs.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mf-mse": {"weight_decay": 0.1},
    "mf-als": {"epochs": 15},
}


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose ``help`` documents it for the CLI, the app and the reader;
    ``extra`` may declare ``label`` (its name in plain words for forms), ``choices`` (the
    allowed values) and ``bounds`` ((low, high), inclusive)."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class FieldSpec:
    """One config field as a front end draws it: a CLI flag or a form widget."""

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    label: str
    bounds: tuple[float, float] | None = None


_KINDS = {"int": int, "float": float, "bool": bool, "str": str}


def field_specs(cls: type, defaults: Any = None,
                model_help: Mapping[str, str] | None = None) -> list[FieldSpec]:
    """One :class:`FieldSpec` per field of config class ``cls``: the one reading of the
    declarations for the CLI and the form. ``defaults`` (an instance, e.g.
    ``TrainConfig.for_model("mf-mse")``) overrides the declared defaults; ``model_help`` (a
    model's ``setting_help``) replaces the help of the fields whose use that model explains."""
    specs = []
    for f in fields(cls):
        kind = f.type if isinstance(f.type, type) else _KINDS.get(str(f.type), str)
        default = getattr(defaults, f.name) if defaults is not None else (
            f.default if f.default is not MISSING else None)
        help_text = (model_help or {}).get(f.name, f.metadata.get("help", ""))
        specs.append(FieldSpec(f.name, kind, default, help_text, f.metadata.get("choices"),
                               f.metadata.get("label", f.name.replace("_", " ")),
                               f.metadata.get("bounds")))
    return specs


def check_fields(config: Any) -> None:
    """Raises ValueError, naming the field, for a value outside its declared ``choices`` or
    ``bounds``: the one validation of every config's declared fields (a field whose default
    is None may also be None)."""
    for spec in field_specs(type(config)):
        value = getattr(config, spec.name)
        if value is None and spec.default is None:
            continue
        if spec.choices is not None:
            check_choice(spec.name, value, spec.choices)
        if spec.bounds is not None:
            check_range(spec.name, value, *spec.bounds)


@dataclass(frozen=True)
class SplitConfig:
    """How interactions become train / validation / test sets (the evaluation protocol)."""

    split: str = option(
        "temporal",
        "temporal: each user's latest positives are held out (realistic, default); "
        "random: a seeded shuffle of positive events",
        choices=("temporal", "random"),
        label="Split",
    )
    threshold: float = option(4.0, "ratings >= this count as positives (implicit feedback)",
        label="Positive from rating", bounds=(0.0, 10.0))
    test_fraction: float = option(0.2, "share of each user's positives held out for test",
        label="Test share", bounds=(0.01, 0.9))
    valid_fraction: float = option(
        0.1, "share of the remaining train positives held out for validation (early stopping)",
        label="Validation share", bounds=(0.0, 0.9),
    )
    split_seed: int = option(42, "seed of the random split (and tie-breaks)", label="Split seed",
        bounds=(0, MAX_SEED))

    def __post_init__(self) -> None:
        check_fields(self)

    def describe(self) -> str:
        """One line of protocol, printed next to every metric."""
        held_out = (f"test {self.test_fraction:.0%} / valid {self.valid_fraction:.0%}")
        if self.split == "temporal":
            held_out += " of each user's latest positives"
        else:
            held_out += f" of all positive events, shuffled with seed {self.split_seed}"
        return f"{self.split} split, positives = rating >= {self.threshold:g}, {held_out}"


@dataclass(frozen=True)
class TrainConfig:
    """Model choice and hyperparameters.

    The defaults train mf-bpr on ML-100K in a couple of seconds (about one for the 20 epochs
    themselves); lr, weight_decay and batch_size were picked on the validation split within
    that budget (bench/TUNING.md has the longer searches). Use :meth:`for_model` to get a
    model's own defaults.
    """

    model: str = option("mf-bpr", "which model to fit", choices=MODEL_NAMES, label="Model")
    dim: int = option(64, "embedding dimension", label="Embedding dimension", bounds=(1, 1024))
    lr: float = option(0.005, "Adam learning rate", label="Learning rate", bounds=(1e-7, 10.0))
    weight_decay: float = option(
        0.003, "per-example L2 penalty on the embeddings of a batch (the torch models)",
        label="L2 regularisation", bounds=(0.0, 1000.0),
    )
    batch_size: int = option(1024, "positives per optimiser step", label="Batch size",
        bounds=(1, 1_000_000))
    epochs: int = option(20, "training passes: epochs over the training positives (mf-als: "
        "sweeps)", label="Epochs", bounds=(1, 1000))
    negatives: int = option(4, "sampled negatives per positive (1-20)",
        label="Negatives per positive", bounds=(1, 20))
    neg_sampling: str = option(
        "uniform",
        "uniform: every unseen item equally; popularity: proportional to count^alpha",
        choices=("uniform", "popularity"),
        label="Negative sampling",
    )
    alpha: float = option(0.75, "popularity sampling exponent (0 = uniform, 1 = proportional)",
        label="Popularity exponent α", bounds=(0.0, 2.0))
    seed: int = option(42, "seed for initialisation, sampling and shuffling", label="Seed",
        bounds=(0, MAX_SEED))
    patience: int = option(5, "stop after this many epochs without a better validation Recall@10 "
                         "(0 = never stop early); the best epoch is restored",
        label="Early-stopping patience", bounds=(0, 1000),
    )
    refit: bool = option(
        True,
        "after choosing the epoch count on validation, refit on train + validation so the "
        "model knows everything before the test period (standard protocol; doubles fit time)",
        label="Refit on train + validation",
    )
    device: str = option("cpu", "torch device: cpu, cuda (cuda:N for GPU N) or auto (cuda when "
                         "a GPU is available, else cpu)", label="Device")
    threads: int = option(1, "torch CPU threads while fitting and scoring (1 is steadiest for "
                        "small models, and fastest when other work shares the CPU)",
        label="CPU threads", bounds=(1, 256),
    )
    ncf_layers: str = option("64,32,16", "NCF MLP layer sizes, comma-separated",
        label="NCF MLP layers")
    knn_neighbours: int = option(100, "item-kNN: neighbours kept per item",
        label="Neighbours per movie", bounds=(1, 100_000))
    ease_lambda: float = option(250.0, "EASE: L2 regularisation of the item-item matrix",
        label="EASE λ", bounds=(0.0, 1e7))
    als_alpha: float = option(
        1.0, "mf-als: a training positive has confidence 1 + als_alpha, any other cell 1",
        label="ALS confidence α", bounds=(0.0, 1e4),
    )
    als_lambda: float = option(
        10.0, "mf-als: lambda of the whole objective, in units of one unobserved cell's "
        "confidence, as implicit's regularization", label="ALS λ", bounds=(0.0, 1000.0),
    )

    def __post_init__(self) -> None:
        check_fields(self)
        _check_device(self.device)
        if self.device == "auto":  # saved runs and models see the device actually used
            object.__setattr__(self, "device", resolve_device("auto"))
        try:
            layers = self.layer_sizes()
        except ValueError:
            layers = ()
        if not layers or min(layers) < 1:
            raise ValueError(
                f"ncf_layers must be positive integers separated by commas, got {self.ncf_layers!r}"
            )

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The config of ``model`` with its own defaults (``MODEL_DEFAULTS``) and overrides."""
        return cls(**{"model": model, **MODEL_DEFAULTS.get(model, {}), **overrides})

    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(int(x) for x in str(self.ncf_layers).split(",") if x.strip())


def to_dict(config: SplitConfig | TrainConfig) -> dict[str, Any]:
    return asdict(config)


def from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Builds a config from a dict (a saved run's or job's), ignoring unknown keys
    (older/newer runs) with defaults; older mf-als configs are migrated
    (:func:`migrate_train_values`)."""
    if cls is TrainConfig:
        values = migrate_train_values(values)
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def migrate_train_values(values: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig values saved before mf-als had its own ``als_lambda``: its lambda was kept
    in ``weight_decay``, which now means only the torch models' per-example L2."""
    if values.get("model") != "mf-als" or "als_lambda" in values or "weight_decay" not in values:
        return values
    moved = {**values, "als_lambda": values["weight_decay"]}
    del moved["weight_decay"]
    return moved


def resolve_device(device: str) -> str:
    """The torch device ``device`` means on this machine: ``auto`` is cuda when a GPU is
    available, else cpu. Raises ValueError, saying what to use instead, when ``device`` asks
    for a GPU this machine does not have (checked before any work, not mid-training)."""
    _check_device(device)
    if device == "cpu":
        return device  # no torch import needed
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device == "auto":
        return "cuda" if count else "cpu"
    gpu = int(device.partition(":")[2] or 0)
    if gpu >= count:
        have = (f"only {count} CUDA GPU(s)" if count else
                "no CUDA GPU" + (" (this torch is a CPU-only build)" if not torch.version.cuda
                                 else ""))
        raise ValueError(f"device {device!r} is not available: this machine has {have}; "
                         "use --device cpu or --device auto")
    return device


def _check_device(device: str) -> None:
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ValueError(f"unknown device {device!r}: choose cpu, cuda (cuda:N for GPU N) or "
                         "auto (cuda when a GPU is available)")

