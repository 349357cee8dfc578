"""The model's settings: :class:`TrainConfig` (which model, and every knob a model may read),
shared by the CLI, the app's form and a saved run's ``config.json``. A field means the same for
every model that reads it (a model lists the fields it reads in its ``settings``); its help,
label and bounds are declared with :func:`recsys.settings.option`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from recsys.errors import BadInputError
from recsys.models.registry import MODEL_NAMES
from recsys.settings import MAX_SEED, check_fields, option

# The model the CLI trains without --model and the app trains on first launch: chosen on
# validation Recall@10 *and* the quality of its similar-movie lists (bench/NEIGHBOURS.md):
# mf-als is within 0.003 of mf-bpr on validation Recall@10, +0.014 on test, and its
# neighbours follow genre instead of popularity (head genre lift 2.2 vs 1.8).
DEFAULT_MODEL = "mf-als"

# Where one model needs other defaults than TrainConfig's, chosen on the validation split
# (bench/TUNING.md): star ratings overfit without a much stronger L2; ALS converges in fewer
# sweeps than the torch models need epochs, and 3 conjugate-gradient steps per row from the
# last sweep's vectors (as implicit) give the exact solves' test metrics to 4 digits on P1 and
# P2 in ~20% less time (bench/ALS.md).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mf-mse": {"weight_decay": 0.1},
    "mf-als": {"epochs": 15, "als_cg_steps": 3},
    # mf-bce's compiled engine is below its torch engine on validation on both protocols
    # (P1 0.214 vs 0.220, P2 0.161 vs 0.165; bench/BPR_ENGINE.md): Adam stays its default.
    "mf-bce": {"engine": "torch"},
}


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
    # "auto" is resolved when the config is made, as the device is, so a saved run names the
    # engine that trained it: compiled on the CPU (per-sample SGD, 5x faster than the torch
    # steps on ML-100K, bench/BPR_ENGINE.md), torch on a GPU (a per-sample loop cannot use one).
    # mf-bce's own default is torch (MODEL_DEFAULTS).
    engine: str = option(
        "auto", "mf-bpr, mf-bce: compiled (numba, per-sample SGD with sgd_lr, CPU only), torch "
        "(Adam on batches with lr, CPU or GPU, the tutorial's version) or auto (compiled on the "
        "CPU, torch on a GPU); both minimise the same loss + weight_decay L2",
        choices=("auto", "compiled", "torch"), label="Training engine",
    )
    # 0.07 with the default weight_decay (0.003) had the best validation Recall@10 of mf-bpr on
    # P2 in a 0.02-0.1 x 0.001-0.03 grid, 20 epochs x 4 negatives (bench/BPR_ENGINE.md).
    sgd_lr: float = option(0.07, "mf-bpr, mf-bce compiled engine: SGD step size per sample",
        label="SGD step size (compiled engine)", bounds=(1e-7, 10.0))
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
    # 0 keeps the classic iALS (one lambda for all rows); Rendle et al. (RecSys 2022) use 1.
    als_nu: float = option(
        0.0, "mf-als: frequency-scaled L2, each user's and item's lambda proportional to "
        "(its total confidence)^nu and averaging als_lambda (0 = the same lambda for all)",
        label="ALS frequency exponent ν", bounds=(0.0, 2.0),
    )
    # 0 keeps the classic iALS; on P2 a half-life of a few positives lifted validation
    # Recall@10 more than any other setting (bench/TUNING.md).
    als_recency: float = option(
        0.0, "mf-als: half-life of a positive's extra confidence, counted in the user's later "
        "positives: 1 + als_alpha * 2^(-later / half-life) (0 = every positive alike); with "
        "als_nu, a row's frequency is then its summed weights, which recency keeps small",
        label="ALS recency half-life", bounds=(0.0, 1e6),
    )
    # 0 keeps the exact solves that the pinned results were made with; implicit runs 3 steps.
    als_cg_steps: int = option(
        0, "mf-als: conjugate-gradient steps per row and sweep, started from the last sweep's "
        "vectors as implicit's (0 = solve each row to float precision)",
        label="ALS CG steps", bounds=(0, 100),
    )

    def __post_init__(self) -> None:
        check_fields(self)
        _check_device(self.device)
        if self.device == "auto":  # saved runs and models see the device actually used
            object.__setattr__(self, "device", resolve_device("auto"))
        _resolve_engine(self)
        try:
            layers = self.layer_sizes()
        except ValueError:
            layers = ()
        if not layers or min(layers) < 1:
            raise BadInputError(
                f"ncf_layers must be positive integers separated by commas, got {self.ncf_layers!r}"
            )

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The config of ``model`` with its own defaults (``MODEL_DEFAULTS``) and overrides."""
        return cls(**{"model": model, **MODEL_DEFAULTS.get(model, {}), **overrides})

    @classmethod
    def migrate_values(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Saved values of older versions, rewritten by their model's own
        ``migrate_config`` (values of an unknown model are left to the checks)."""
        from recsys.models.registry import MODELS  # the model classes, imported when loading

        model = values.get("model")
        return MODELS[model].migrate_config(values) if model in MODELS else values

    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(int(x) for x in str(self.ncf_layers).split(",") if x.strip())


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
        raise BadInputError(f"device {device!r} is not available: this machine has {have}; "
                         "use --device cpu or --device auto")
    return device


def _resolve_engine(config: TrainConfig) -> None:
    """Replaces engine "auto" by the engine that will run (compiled on the CPU, torch on a
    GPU); raises BadInputError for the compiled engine on a GPU."""
    on_cpu = config.device == "cpu"
    if config.engine == "auto":
        object.__setattr__(config, "engine", "compiled" if on_cpu else "torch")
    elif config.engine == "compiled" and not on_cpu:
        raise BadInputError(f"the compiled engine runs on the CPU only, not on {config.device}: "
                            "use --engine torch (or auto) for a GPU")


def _check_device(device: str) -> None:
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise BadInputError(f"unknown device {device!r}: choose cpu, cuda (cuda:N for GPU N) or "
                         "auto (cuda when a GPU is available)")

