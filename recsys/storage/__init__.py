"""Trained models on disk: a run folder's config, weights, metrics, history and id mappings
(``runs``: train, save, load, pin, check), the vectors of every epoch for the map's training
replay (``replay``), and exports that reproduce the metrics or feed the Embedding Projector
(``export``)."""
