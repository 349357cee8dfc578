"""Configuration dataclasses: one per component, shared by the CLI, the app and saved runs.

Each field's ``metadata["help"]`` documents its default; the CLI turns every field into a flag
and the app into a widget, so a new knob is added here once.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from recsys.checks import check_choice, check_range
from recsys.models.registry import MODEL_NAMES

# The model the CLI trains without --model and the app trains on first launch: chosen on
# validation Recall@10 *and* the quality of its similar-movie lists (bench/NEIGHBOURS.md):
# mf-als is within 0.003 of mf-bpr on validation Recall@10, +0.014 on test, and its
# neighbours follow genre instead of popularity (head genre lift 2.2 vs 1.8).
DEFAULT_MODEL = "mf-als"

# Where one model needs other defaults than TrainConfig's, chosen on the validation split
# (bench/TUNING.md): star ratings overfit without a much stronger L2.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mf-mse": {"weight_decay": 0.1},
    # ALS: epochs are sweeps and weight_decay is the lambda of the whole objective
    "mf-als": {"epochs": 15, "weight_decay": 10.0},
}


def option(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field whose ``help`` documents it for the CLI, the app and the reader;
    ``label`` (in ``extra``) is its name in plain words for forms."""
    return field(default=default, metadata={"help": help, **extra})


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
        label="Positive from rating")
    test_fraction: float = option(0.2, "share of each user's positives held out for test",
        label="Test share")
    valid_fraction: float = option(
        0.1, "share of the remaining train positives held out for validation (early stopping)",
        label="Validation share",
    )
    split_seed: int = option(42, "seed of the random split (and tie-breaks)", label="Split seed")

    def __post_init__(self) -> None:
        check_choice("split", self.split, ("temporal", "random"))
        check_range("threshold", self.threshold, 0.0, 10.0)
        check_range("test_fraction", self.test_fraction, 0.01, 0.9)
        check_range("valid_fraction", self.valid_fraction, 0.0, 0.9)

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
    dim: int = option(64, "embedding dimension (factors for svd)", label="Embedding dimension")
    lr: float = option(0.005, "Adam learning rate", label="Learning rate")
    weight_decay: float = option(
        0.003,
        "per-example L2 penalty on the embeddings of a batch (mf-als: lambda of the whole "
        "objective, in units of one unobserved cell's confidence, as implicit's regularization)",
        label="L2 regularisation",
    )
    batch_size: int = option(1024, "positives per optimiser step", label="Batch size")
    epochs: int = option(20, "passes over the training positives (mf-als: ALS sweeps)",
        label="Epochs")
    negatives: int = option(4, "sampled negatives per positive (1-20)",
        label="Negatives per positive")
    neg_sampling: str = option(
        "uniform",
        "uniform: every unseen item equally; popularity: proportional to count^alpha",
        choices=("uniform", "popularity"),
        label="Negative sampling",
    )
    alpha: float = option(0.75, "popularity sampling exponent (0 = uniform, 1 = proportional)",
        label="Popularity exponent α")
    seed: int = option(42, "seed for initialisation, sampling and shuffling", label="Seed")
    patience: int = option(5, "stop after this many epochs without a better validation Recall@10 "
                         "(0 = never stop early); the best epoch is restored",
        label="Early-stopping patience",
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
        label="CPU threads",
    )
    ncf_layers: str = option("64,32,16", "NCF MLP layer sizes, comma-separated",
        label="NCF MLP layers")
    knn_neighbours: int = option(100, "item-kNN: neighbours kept per item",
        label="Neighbours per movie")
    ease_lambda: float = option(250.0, "EASE: L2 regularisation of the item-item matrix",
        label="EASE λ")
    als_alpha: float = option(
        1.0, "mf-als: a training positive has confidence 1 + als_alpha, any other cell 1",
        label="ALS confidence α",
    )

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODEL_NAMES)
        check_choice("neg_sampling", self.neg_sampling, ("uniform", "popularity"))
        check_range("dim", self.dim, 1, 1024)
        check_range("lr", self.lr, 1e-7, 10.0)
        check_range("weight_decay", self.weight_decay, 0.0, 1000.0)
        check_range("batch_size", self.batch_size, 1, 1_000_000)
        check_range("epochs", self.epochs, 1, 1000)
        check_range("negatives", self.negatives, 1, 20)
        check_range("alpha", self.alpha, 0.0, 2.0)
        check_range("patience", self.patience, 0, 1000)
        check_range("threads", self.threads, 1, 256)
        check_range("knn_neighbours", self.knn_neighbours, 1, 100_000)
        check_range("ease_lambda", self.ease_lambda, 0.0, 1e7)
        check_range("als_alpha", self.als_alpha, 0.0, 1e4)
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
    """Builds a config from a dict, ignoring unknown keys (older/newer runs) with defaults."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


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


def __getattr__(name: str) -> Any:
    # bench/ still imports EMBEDDING_MODELS from here: the models trained epoch by epoch,
    # derived from the registry (recsys.models.model_names) and imported only when asked for.
    if name == "EMBEDDING_MODELS":
        from recsys.models.registry import model_names

        return model_names(iterative=True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
