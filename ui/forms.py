"""Config dataclasses as form fields: what the Train page needs to draw a widget per field, and
the configs back from the values. The fields are read by :func:`recsys.settings.field_specs`,
the same routine that makes the CLI's flags."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from recsys import settings
from recsys.data.protocol import SplitConfig
from recsys.models import MODELS
from recsys.models.config import TrainConfig
from recsys.settings import FieldSpec

__all__ = ["MAIN_TRAIN_FIELDS", "FieldSpec", "build_configs", "field_specs", "number_limits"]

# Form layout: the first fields are shown, the rest go into an "advanced" expander.
MAIN_TRAIN_FIELDS = ("model", "dim", "epochs", "lr", "negatives", "neg_sampling", "alpha",
                     "weight_decay", "batch_size", "als_lambda")


def field_specs(cls: type, defaults: Any = None) -> list[FieldSpec]:
    """One :class:`FieldSpec` per dataclass field, with the default and help text it declares;
    ``defaults`` (an instance, e.g. ``TrainConfig.for_model("mf-mse")``) overrides defaults,
    and for a TrainConfig its model's own help replaces a field's where the model has one."""
    model_help = (MODELS[defaults.model].setting_help if isinstance(defaults, TrainConfig)
                  else None)
    return settings.field_specs(cls, defaults, model_help)


def number_limits(spec: FieldSpec) -> dict[str, Any]:
    """``min_value``/``max_value`` of a number widget for ``spec``: its declared bounds in the
    field's own type, so the form cannot take a value the config would reject."""
    if spec.bounds is None:
        return {}
    low, high = spec.bounds
    return {"min_value": spec.kind(low), "max_value": spec.kind(high)}


def build_configs(values: dict[str, Any]) -> tuple[SplitConfig, TrainConfig]:
    """Split and train configs from one dict of form values (raises ``ValueError``); fields
    the form did not show take the chosen model's own defaults."""
    split_names = {f.name for f in fields(SplitConfig)}
    train_names = {f.name for f in fields(TrainConfig)} - {"model"}
    split = SplitConfig(**{k: v for k, v in values.items() if k in split_names})
    train = TrainConfig.for_model(values.get("model", TrainConfig.model),
                                  **{k: v for k, v in values.items() if k in train_names})
    return split, train
