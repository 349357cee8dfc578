"""Configuration dataclasses: one per component, shared by the CLI, the app and saved runs.

Each field's ``metadata["help"]`` documents its default; the CLI turns every field into a flag
and the app into a widget, so a new knob is added here once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

MODEL_NAMES = (
    "mf-bpr", "mf-bce", "mf-mse", "mf-als", "ncf", "popularity", "itemknn", "ease", "svd"
)
EMBEDDING_MODELS = ("mf-bpr", "mf-bce", "mf-mse", "mf-als", "ncf")

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
        _check_choice("split", self.split, ("temporal", "random"))
        _check_range("threshold", self.threshold, 0.0, 10.0)
        _check_range("test_fraction", self.test_fraction, 0.01, 0.9)
        _check_range("valid_fraction", self.valid_fraction, 0.0, 0.9)

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
    device: str = option("cpu", "torch device: cpu or cuda", label="Device")
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
        _check_choice("model", self.model, MODEL_NAMES)
        _check_choice("neg_sampling", self.neg_sampling, ("uniform", "popularity"))
        _check_range("dim", self.dim, 1, 1024)
        _check_range("lr", self.lr, 1e-7, 10.0)
        _check_range("weight_decay", self.weight_decay, 0.0, 1000.0)
        _check_range("batch_size", self.batch_size, 1, 1_000_000)
        _check_range("epochs", self.epochs, 1, 1000)
        _check_range("negatives", self.negatives, 1, 20)
        _check_range("alpha", self.alpha, 0.0, 2.0)
        _check_range("patience", self.patience, 0, 1000)
        _check_range("threads", self.threads, 1, 256)
        _check_range("knn_neighbours", self.knn_neighbours, 1, 100_000)
        _check_range("ease_lambda", self.ease_lambda, 0.0, 1e7)
        _check_range("als_alpha", self.als_alpha, 0.0, 1e4)
        if not self.device.startswith(("cpu", "cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:n]', got {self.device!r}")
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


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
