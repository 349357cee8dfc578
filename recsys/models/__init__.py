"""Recommenders behind one surface (see :class:`recsys.models.base.Recommender`)."""

from recsys.models.base import Recommender
from recsys.models.registry import MODELS, create_model

__all__ = ["MODELS", "Recommender", "create_model"]
