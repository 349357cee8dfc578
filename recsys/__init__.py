"""recsys: train, evaluate and look inside embedding recommenders on MovieLens."""

__version__ = "0.1.0"
