"""The names of the similar-movie lists ("lenses") and one sentence on each.

Kept free of heavy imports, so the CLI can offer ``--lens`` without loading the model code;
the lists themselves are computed in :mod:`recsys.serving.catalog` and
:mod:`recsys.evaluation.neighbours`.
"""

EMBEDDING_LENSES = ("cosine", "debiased", "dot")  # serving.similar_movies' embedding lists
COOCCURRENCE_LENS = "cooc-damped"  # the reference list beside them
LENS_DESCRIPTIONS = {
    "cosine": "Movies whose embedding points the same way: the angle only, vector length and "
              "biases ignored.",
    "debiased": "Cosine after removing the embedding's shared popularity direction, so famous "
                "movies stop being everyone's neighbour.",
    "dot": "Raw inner product of embeddings: long vectors, usually popular movies, rank high.",
    "cooc-damped": "Liked by the same people, no model at all: co-likes divided by "
                   "(n_a·n_b)^0.75 + 20, which damps both blockbusters and tiny counts.",
}
