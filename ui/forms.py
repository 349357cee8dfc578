"""Config dataclasses as form fields: what the Train page needs to draw a widget per field, and
the configs back from the values (the same dataclasses drive the CLI's flags)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any

from recsys.config import SplitConfig, TrainConfig

# Form layout: the first fields are shown, the rest go into an "advanced" expander.
MAIN_TRAIN_FIELDS = ("model", "dim", "epochs", "lr", "negatives", "neg_sampling", "alpha",
                     "weight_decay", "batch_size")


@dataclass(frozen=True)
class FieldSpec:
    """What a form needs to render one config field as a widget."""

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    label: str


def field_specs(cls: type, defaults: Any = None) -> list[FieldSpec]:
    """One :class:`FieldSpec` per dataclass field, with the default and help text it declares;
    ``defaults`` (an instance, e.g. ``TrainConfig.for_model("mf-mse")``) overrides defaults."""
    kinds = {"int": int, "float": float, "bool": bool, "str": str}
    specs = []
    for f in fields(cls):
        kind = f.type if isinstance(f.type, type) else kinds.get(str(f.type), str)
        default = f.default if f.default is not MISSING else None
        if defaults is not None:
            default = getattr(defaults, f.name)
        specs.append(FieldSpec(f.name, kind, default, f.metadata.get("help", ""),
                               f.metadata.get("choices"),
                               f.metadata.get("label", f.name.replace("_", " "))))
    return specs


def build_configs(values: dict[str, Any]) -> tuple[SplitConfig, TrainConfig]:
    """Split and train configs from one dict of form values (raises ``ValueError``); fields
    the form did not show take the chosen model's own defaults."""
    split_names = {f.name for f in fields(SplitConfig)}
    train_names = {f.name for f in fields(TrainConfig)} - {"model"}
    split = SplitConfig(**{k: v for k, v in values.items() if k in split_names})
    train = TrainConfig.for_model(values.get("model", TrainConfig.model),
                                  **{k: v for k, v in values.items() if k in train_names})
    return split, train
