"""Lenses: the ways "similar movies" are read off a model's item vectors.

A :class:`Lens` names the vectors it searches (the model's item factors, or the same without
their shared popularity direction) and the inner product it ranks them by (cosine or raw dot).
The one object serves every place that lists neighbours: FAISS serving indexes
``lens.space`` with ``lens.metric`` (:mod:`recsys.serving.catalog`), the neighbour-quality
measure ranks with :meth:`Lens.similarity` (:mod:`recsys.evaluation.neighbours`), and the CLI
and the pages offer :data:`EMBEDDING_LENSES` with each lens's description. A model names the
lens its lists read best through (``Recommender.default_lens``, bench/NEIGHBOURS.md).

Kept free of heavy imports (numpy is imported when a lens computes), so the CLI can offer
``--lens`` without loading the model code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recsys.errors import BadInputError

if TYPE_CHECKING:
    import numpy as np
    import scipy.sparse as sp

SPACES = ("items", "items-debiased")  # what a lens searches: the factors, or debiased ones


@dataclass(frozen=True)
class Lens:
    """One way to call two movies similar from a model's item vectors."""

    name: str
    space: str  # "items": the item factors; "items-debiased": without the popularity axis
    metric: str  # "cosine": the angle only; "dot": the raw inner product (length counts)
    description: str  # one sentence for the CLI's help and the page
    # Weight of the co-likes term added to the vector similarity (1 for the query's most
    # co-liked movie: neighbours.relative_co_likes); 0 for a pure embedding lens, which FAISS
    # searches.
    co_likes: float = 0.0

    def vectors(self, item_factors: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
        """The vectors this lens searches (``known``: the positives the model was fitted on,
        over which the popularity direction is measured)."""
        if self.space == "items-debiased":
            return debiased_vectors(item_factors, known)
        return item_factors

    def similarity(self, item_factors: np.ndarray, known: sp.csr_matrix,
                   co_liked: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> Callable[[np.ndarray], np.ndarray]:
        """``rows(block) -> (len(block), n_items)`` similarities in float64, ranked as serving
        ranks them: the neighbour-quality measure's view of this lens. A lens with
        ``co_likes`` adds ``co_likes * co_liked(block)``, each query's co-likes relative to
        its largest (:func:`recsys.evaluation.neighbours.relative_co_likes`)."""
        import numpy as np

        from recsys.linalg import unit_rows

        v = np.asarray(self.vectors(item_factors, known), np.float64)
        if self.metric == "cosine":
            v = unit_rows(v)
        if not self.co_likes:
            return lambda block: v[block] @ v.T
        if co_liked is None:
            raise BadInputError(f"the {self.name} lens also reads co-likes: pass co_liked "
                                "(recsys.evaluation.neighbours.relative_co_likes)")
        return lambda block: v[block] @ v.T + self.co_likes * co_liked(block)


def debiased_vectors(vectors: np.ndarray, known: sp.csr_matrix) -> np.ndarray:
    """Item vectors centred and without their top principal component ("all but the top",
    Mu & Viswanath 2018), both taken over the items with known positives; float64 (n, d).

    On MovieLens that component is popularity, which otherwise makes every famous movie the
    neighbour of every other.
    """
    import numpy as np

    v = np.asarray(vectors, np.float64)
    seen = np.asarray((known != 0).sum(axis=0)).ravel() > 0
    v = v - v[seen].mean(axis=0)
    top = np.linalg.svd(v[seen], full_matrices=False)[2][0]
    return v - np.outer(v @ top, top)


_EMBEDDING = (
    Lens("cosine", "items", "cosine",
         "Movies whose embedding points the same way: the angle only, vector length and "
         "biases ignored."),
    Lens("debiased", "items-debiased", "cosine",
         "Cosine after removing the embedding's shared popularity direction, so famous "
         "movies stop being everyone's neighbour."),
    Lens("hybrid", "items-debiased", "cosine",
         "Debiased cosine plus co-likes (each movie's damped co-occurrence over the query's "
         "largest), equal weights: a movie leads where the embedding and the people who "
         "liked both agree. Not a pure embedding list: half of its score is co-likes.",
         co_likes=1.0),
    Lens("dot", "items", "dot",
         "Raw inner product of embeddings: long vectors, usually popular movies, rank high."),
)
LENSES: dict[str, Lens] = {lens.name: lens for lens in _EMBEDDING}
EMBEDDING_LENSES = tuple(LENSES)  # the names, in the order pages and the CLI list them
COOCCURRENCE_LENS = "cooc-damped"  # the reference list beside them: no model at all
LENS_DESCRIPTIONS = {
    **{lens.name: lens.description for lens in _EMBEDDING},
    COOCCURRENCE_LENS: "Liked by the same people, no model at all: co-likes divided by "
                       "(n_a·n_b)^0.75 + 20, which damps both blockbusters and tiny counts.",
}


def lens(name: str) -> Lens:
    """The embedding lens called ``name``; BadInputError naming the choices otherwise."""
    if name not in LENSES:
        raise BadInputError(f"unknown lens {name!r}: choose one of {', '.join(LENSES)}")
    return LENSES[name]
