"""The one list of models. Adding a model = one module under ``recsys/models/`` plus one line
in :data:`_CLASSES`; every "which models can ..." list is derived from the classes'
capability attributes (:class:`recsys.models.base.Recommender`) by :func:`model_names`.

Classes are imported on first use, so the configs can name the models without torch; this
module imports nothing of the package but :mod:`recsys.errors`, so everything may import it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from recsys.errors import BadInputError

# name -> "module:Class", in the order forms and tables list them
_CLASSES = {
    "mf-bpr": "recsys.models.mf:MFBPR",
    "mf-bce": "recsys.models.mf:MFBCE",
    "mf-mse": "recsys.models.mf:MFMSE",
    "mf-als": "recsys.models.als:ALS",
    "ncf": "recsys.models.ncf:NCF",
    "popularity": "recsys.models.baselines:Popularity",
    "itemknn": "recsys.models.baselines:ItemKNN",
    "ease": "recsys.models.baselines:EASE",
    "svd": "recsys.models.baselines:SVD",
}
MODEL_NAMES: tuple[str, ...] = tuple(_CLASSES)


class _Registry(Mapping):
    """name -> model class, importing each class's module when first asked for."""

    def __getitem__(self, name: str) -> type:
        module, _, cls_name = _CLASSES[name].partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
        if cls.name != name:
            raise RuntimeError(f"registry line {name!r} points at {cls.__name__} ({cls.name!r})")
        return cls

    def __iter__(self) -> Iterator[str]:
        return iter(_CLASSES)

    def __len__(self) -> int:
        return len(_CLASSES)


MODELS: Mapping[str, type] = _Registry()  # name -> Recommender subclass


def model_names(**capabilities: Any) -> tuple[str, ...]:
    """Names of the models whose class attributes equal ``capabilities``, e.g.
    ``model_names(user_vectors=True)``; a tuple value means any of its values."""
    def wanted(cls: type) -> bool:
        return all(getattr(cls, key) in (value if isinstance(value, tuple) else (value,))
                   for key, value in capabilities.items())
    return tuple(name for name, cls in MODELS.items() if wanted(cls))


def create_model(config: Any) -> Any:
    """A fresh, unfitted model (a Recommender) for TrainConfig ``config.model``."""
    try:
        cls = MODELS[config.model]
    except KeyError:
        raise BadInputError(
            f"unknown model {config.model!r}: choose one of {', '.join(MODELS)}"
        ) from None
    return cls(config)
