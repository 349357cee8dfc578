"""Non-neural baselines on the same surface: popularity, item-kNN, EASE and truncated SVD."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd

from recsys.data.splits import Part
from recsys.linalg import top_k_cosine_similarity
from recsys.memory import check_fits
from recsys.models.base import EpochCallback, FactorModel, Recommender


class Popularity(Recommender):
    """Everyone gets the most-liked training items: the bar every personalised model must beat."""

    name = "popularity"
    description = "Most-liked items in the training set, the same list for every user."

    def _fit(self, train_part: Part, valid: Part | None, callbacks: Sequence[EpochCallback],
             epochs: int) -> list:
        self.counts = train_part.positives.item_counts().astype(np.float32)
        return []  # fitted in one go: no epochs

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(users), self.n_items))

    def _params(self):
        return {"counts": self.counts}

    def _load_params(self, params) -> None:
        self.counts = params["counts"]


class ItemKNN(Recommender):
    """Item-item cosine similarity of training columns; a user's score sums their items' rows.

    Only each item's ``knn_neighbours`` most similar items are kept (sparse), as is usual.
    """

    name = "itemknn"
    blend_by_likes = {1: 0.9, 2: 1.0, 3: 0.7, 5: 0.9, 10: 0.7, 20: 0.7}
    settings = ("knn_neighbours", "refit")
    description = "Co-occurrence neighbours: items liked by the same users (cosine)."
    score_kind = "item-item"

    def _fit(self, train_part: Part, valid: Part | None, callbacks: Sequence[EpochCallback],
             epochs: int) -> list:
        self.train = train_part.positives.to_csr()
        self.similarity = top_k_cosine_similarity(self.train, self.config.knn_neighbours)
        return []  # fitted in one go: no epochs

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.train[users] @ self.similarity).todense(), np.float32)

    def item_item_weights(self) -> sp.csr_matrix:
        return self.similarity

    def similar_items(self, item: int, k: int = 10):
        self._check_item(item)
        row = self.similarity[item].toarray().ravel()  # the kept neighbours, then zeros
        row[item] = -np.inf
        top = np.argsort(-row, kind="stable")[:k]
        return top, row[top]

    def _params(self):
        return {**_csr_to_arrays("train", self.train), **_csr_to_arrays("sim", self.similarity)}

    def _load_params(self, params) -> None:
        self.train = _csr_from_arrays("train", params)
        self.similarity = _csr_from_arrays("sim", params)


class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck 2019): closed-form item-item weights.

    ``B = I - P / diag(P)`` with ``P = (X^T X + lambda I)^-1`` and a zero diagonal.
    """

    name = "ease"
    blend_by_likes = {1: 1.0, 2: 0.6, 3: 0.7, 5: 0.6, 10: 0.6, 20: 0.4}
    settings = ("ease_lambda", "refit")
    description = "Closed-form linear item-to-item model (Steck 2019), a strong baseline."
    item_vectors = True  # the columns of B
    default_lens = "cosine"
    score_kind = "item-item"

    def _fit(self, train_part: Part, valid: Part | None, callbacks: Sequence[EpochCallback],
             epochs: int) -> list:
        self.train = train_part.positives.to_csr()
        n = self.train.shape[1]
        # at the peak the float64 gram and its inverse, then the inverse and float32 weights
        check_fits(f"EASE on {n:,} items (dense item x item float64 gram and inverse)",
                   16 * n * n, "use a factor model (mf-als, mf-bpr) or fewer items")
        gram = (self.train.T @ self.train).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.config.ease_lambda
        weights = np.linalg.inv(gram)
        del gram
        weights /= -np.diag(weights).copy()  # -P / diag(P), in place
        np.fill_diagonal(weights, 0.0)
        self.weights = weights.astype(np.float32)
        return []  # fitted in one go: no epochs

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.train[users] @ self.weights, np.float32)

    def item_item_weights(self) -> np.ndarray:
        return self.weights

    def item_factors(self) -> np.ndarray:
        """Columns of B: items alike when the same items predict them."""
        return self.weights.T

    def _params(self):
        return {**_csr_to_arrays("train", self.train), "weights": self.weights}

    def _load_params(self, params) -> None:
        self.train = _csr_from_arrays("train", params)
        self.weights = params["weights"]


class SVD(FactorModel):
    """Truncated SVD of the binary training matrix: the classic linear embedding."""

    name = "svd"
    blend_by_likes = {1: 1.0, 2: 0.8, 3: 0.7, 5: 0.5, 10: 0.6, 20: 0.6}
    settings = ("dim", "seed", "refit")
    setting_help = {"dim": "number of singular vectors kept (the embedding dimension)"}
    description = "Truncated SVD of the user x item matrix: embeddings without training."

    def _fit(self, train_part: Part, valid: Part | None, callbacks: Sequence[EpochCallback],
             epochs: int) -> list:
        train = train_part.positives.to_csr()
        dim = min(self.config.dim, min(train.shape) - 1)
        u, s, vt = randomized_svd(train, dim, random_state=self.config.seed)
        root = np.sqrt(s)
        self.users = (u * root).astype(np.float32)
        self.items = (vt.T * root).astype(np.float32)
        return []  # fitted in one go: no epochs


def _csr_to_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    return {
        f"{prefix}.data": m.data,
        f"{prefix}.indices": m.indices.astype(np.int64),
        f"{prefix}.indptr": m.indptr.astype(np.int64),
        f"{prefix}.shape": np.array(m.shape, np.int64),
    }


def _csr_from_arrays(prefix: str, params: dict[str, np.ndarray]) -> sp.csr_matrix:
    return sp.csr_matrix(
        (params[f"{prefix}.data"], params[f"{prefix}.indices"], params[f"{prefix}.indptr"]),
        shape=tuple(params[f"{prefix}.shape"]),
    )
