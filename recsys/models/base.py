"""The one surface every model speaks, so the evaluator, runs, CLI and app treat all alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recsys.config import TrainConfig
from recsys.evaluation import top_k_items

EpochCallback = Callable[[int, dict[str, Any]], Any]


class Recommender:
    """Base class: subclasses implement ``_fit``, ``score`` and (de)serialisation of state.

    After ``fit`` the model knows ``n_users``, ``n_items`` and ``seen`` (every positive a user
    had before the test period), which ``recommend(exclude_seen=True)`` filters out.
    """

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""
    has_embeddings: ClassVar[bool] = False
    # The TrainConfig fields this model reads: forms and CLIs show only these.
    settings: ClassVar[tuple[str, ...]] = ("refit",)

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig(model=self.name)
        self.n_users = 0
        self.n_items = 0
        self.seen: sp.csr_matrix | None = None
        self.history: list[dict[str, Any]] = []  # per-epoch stats of the validated fit
        self.refit_epochs = 0

    # ------------------------------------------------------------------ training
    def fit(self, split: Any, callbacks: Sequence[EpochCallback] = ()) -> Recommender:
        """Fits on ``split.train_pos`` (``split.train`` for rating models); returns self."""
        self.n_users, self.n_items = split.train.n_users, split.train.n_items
        self.seen = split.seen_at_test.to_csr()
        self._fit(split, callbacks)
        if self.config.refit and len(split.valid_pos):
            self._refit(split, callbacks)
        return self

    def _refit(self, split: Any, callbacks: Sequence[EpochCallback] = ()) -> None:
        """Fits again on train + validation; torch models for the best validated epoch count.

        Callbacks see the refit's epochs too, marked ``phase="refit"`` with ``refit_epochs``
        (the total), so a progress display can show this phase; their return value is ignored
        (the refit always runs its chosen number of epochs)."""
        selection = self.history
        best = selection[-1]["best_epoch"] if selection else self.config.epochs
        chosen = self.config
        epochs = max(1, best)
        self.config = replace(chosen, epochs=epochs, patience=0)

        def report(epoch: int, stats: dict[str, Any]) -> bool:
            for callback in callbacks:
                callback(epoch, {**stats, "phase": "refit", "refit_epochs": epochs})
            return False

        try:
            self._fit(split.without_validation(), (report,) if callbacks else ())
        finally:
            self.config = chosen
        refit_history = self.history
        self.history = selection
        self.refit_epochs = len(refit_history) if selection else 0

    def _fit(self, split: Any, callbacks: Sequence[EpochCallback]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring
    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user, shape (len(users), n_items), higher is better."""
        raise NotImplementedError

    def user_factors(self) -> np.ndarray | None:
        """User embeddings (n_users, dim), or None for models without them."""
        return None

    def item_factors(self) -> np.ndarray | None:
        """Item embeddings (n_items, dim) used for maps and similarity, or None."""
        return None

    def item_item_weights(self) -> np.ndarray | sp.csr_matrix | None:
        """(n_items, n_items) W with scores = history_row @ W for item-to-item models (kNN,
        EASE), else None: lets callers score a new user from a list of liked items."""
        return None

    def recommend(
        self, user: int, k: int = 10, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores for user index ``user``, best first."""
        self._check_user(user)
        exclude = self.seen if exclude_seen else None
        items, scores = top_k_items(self.score, np.array([user]), exclude, k)
        keep = np.isfinite(scores[0])
        return items[0][keep], scores[0][keep]

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most cosine-similar to item index ``item`` (itself excluded)."""
        self._check_item(item)
        factors = self.item_factors()
        if factors is None:
            raise ValueError(f"{self.name} has no item representation to compare items with")
        unit = factors / np.maximum(np.linalg.norm(factors, axis=1, keepdims=True), 1e-12)
        sims = unit @ unit[item]
        sims[item] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        return top, sims[top]

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild the fitted model, as plain numpy arrays."""
        seen = self.seen if self.seen is not None else sp.csr_matrix((self.n_users, self.n_items))
        return {
            "seen_indptr": seen.indptr.astype(np.int64),
            "seen_indices": seen.indices.astype(np.int64),
            "shape": np.array([self.n_users, self.n_items], np.int64),
            **{f"param.{k}": v for k, v in self._params().items()},
        }

    def load_state(self, state: dict[str, np.ndarray]) -> Recommender:
        """Restores a model saved with :meth:`state` (arrays only: nothing is unpickled)."""
        self.n_users, self.n_items = (int(x) for x in state["shape"])
        indptr, indices = state["seen_indptr"], state["seen_indices"]
        self.seen = sp.csr_matrix(
            (np.ones(len(indices), np.float32), indices, indptr), shape=(self.n_users, self.n_items)
        )
        self._load_params({k[6:]: v for k, v in state.items() if k.startswith("param.")})
        return self

    def _params(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_params(self, params: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def _check_user(self, user: int) -> None:
        if not 0 <= int(user) < self.n_users:
            raise ValueError(f"user index {user} out of range [0, {self.n_users})")

    def _check_item(self, item: int) -> None:
        if not 0 <= int(item) < self.n_items:
            raise ValueError(f"item index {item} out of range [0, {self.n_items})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_users={self.n_users}, n_items={self.n_items})"


class FactorModel(Recommender):
    """A model whose whole state is plain user and item factor matrices (svd, mf-als):
    score = users @ items.T. Subclasses set ``self.users`` / ``self.items`` in ``_fit``."""

    has_embeddings = True
    users: np.ndarray
    items: np.ndarray

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.users[users] @ self.items.T

    def user_factors(self) -> np.ndarray:
        return self.users

    def item_factors(self) -> np.ndarray:
        return self.items

    def _params(self):
        return {"users": self.users, "items": self.items}

    def _load_params(self, params) -> None:
        self.users, self.items = params["users"], params["items"]
