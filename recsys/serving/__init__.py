"""Answers from one run: a :class:`~recsys.serving.catalog.Catalog` (the run with its split,
titles and FAISS indexes) gives titled recommendations with explanations and similar movies
(``catalog``, ``index``); a retrieval -> ranking -> re-ranking funnel (``funnel``); a new user
from a handful of likes (``coldstart``); a run's users as tables (``users``)."""
