"""Model names -> classes. Adding a model is one module plus one line here."""

from __future__ import annotations

from recsys.config import TrainConfig
from recsys.models.als import ALS
from recsys.models.base import Recommender
from recsys.models.baselines import EASE, SVD, ItemKNN, Popularity
from recsys.models.mf import MFBCE, MFBPR, MFMSE
from recsys.models.ncf import NCF

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (MFBPR, MFBCE, MFMSE, ALS, NCF, Popularity, ItemKNN, EASE, SVD)
}


def create_model(config: TrainConfig) -> Recommender:
    """A fresh, unfitted model for ``config.model``."""
    try:
        cls = MODELS[config.model]
    except KeyError:
        raise ValueError(
            f"unknown model {config.model!r}: choose one of {', '.join(MODELS)}"
        ) from None
    return cls(config)
