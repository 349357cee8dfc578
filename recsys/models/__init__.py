"""Recommenders behind one surface (see :class:`recsys.models.base.Recommender`)."""

from recsys.models.registry import MODELS, create_model, model_names

__all__ = ["MODELS", "create_model", "model_names"]
