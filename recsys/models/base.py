"""The one surface every model speaks, so the evaluator, runs, CLI and app treat all alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recsys.data.splits import Part, Split
from recsys.errors import BadInputError
from recsys.evaluation.metrics import top_k_items
from recsys.linalg import FoldInBasis, ridge_fold_in, unit_rows
from recsys.models.config import TrainConfig

EpochCallback = Callable[[int, dict[str, Any]], Any]

# How a model's score() is made (its ``score_kind``).
SCORE_KINDS = {
    "dot": "user vector . item vector",
    "dot+bias": "user vector . item vector + item bias (+ user bias)",
    "rating": "global mean + user and item biases + user . item: predicted stars",
    "item-item": "the user's row of liked items times an item x item matrix",
    "mlp": "a neural network over the user's and the item's vectors",
    "popularity": "the same item counts for every user",
}
BIASED_SCORES = ("dot+bias", "rating")  # the kinds with item_biases() / user_biases()


class Recommender:
    """Base class: subclasses implement ``_fit``, ``score`` and (de)serialisation of state.

    A model is fitted on the training part (and validated on the validation part) of a split,
    never given its test part; after ``fit`` it knows ``n_users`` and ``n_items``. What to
    leave out of a user's list is the caller's to say (``recommend(..., exclude=...)``), as
    in implicit: the model keeps no record of who saw what.
    """

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""
    # What the model can do. Every "which models can ..." list is derived from these
    # (recsys.models.model_names), never written as a list of names.
    user_vectors: ClassVar[bool] = False  # user_factors() gives (n_users, d)
    item_vectors: ClassVar[bool] = False  # item_factors() gives (n_items, d)
    folds_in: ClassVar[bool] = False  # fold_in() places a new user among the item vectors
    iterative: ClassVar[bool] = False  # trained epoch by epoch (recsys.models.trainer.train)
    score_kind: ClassVar[str] = "popularity"  # how score() is made: a key of SCORE_KINDS
    # The TrainConfig fields this model reads: forms show only these.
    settings: ClassVar[tuple[str, ...]] = ("refit",)
    # What a setting means for this model where its general help does not say it (shown by
    # the form instead of the field's help; recsys.settings.field_specs).
    setting_help: ClassVar[dict[str, str]] = {}
    # The validation metric an iterative model's best epoch is chosen on, higher is better?
    monitor: ClassVar[tuple[str, bool]] = ("recall@10", True)
    # The lens (recsys.evaluation.lenses) its similar-movie lists read best through, chosen
    # on genre and co-like agreement (bench/NEIGHBOURS.md); None without item vectors.
    default_lens: ClassVar[str | None] = None
    # Cold start: the weight of this model's fold-in scores against content (TF-IDF of genres
    # and titles) by number of likes, the w in 0, 0.1, ..., 1 with the best Recall@10 on
    # validation users held out of training (bench/COLDSTART.md, `python -m bench.coldstart`).
    # Per model because the z-scored fold-in scores spread differently (mf-bpr loses a fifth of
    # its Recall@10 at w = 0.5 with 5 likes, where mf-als is flat); per count the choice is noisy
    # (189 users), the curves flat within about 0.1 of it. Content alone is far worse than
    # fold-in at every count, so w stays >= 0.5: a little content breaks ties. This default is
    # mf-als's measured schedule, which models the bench has not measured (ncf) use.
    blend_by_likes: ClassVar[dict[int, float]] = {1: 0.9, 2: 0.8, 3: 0.7, 5: 0.5, 10: 0.6,
                                                  20: 0.5}

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig(model=self.name)
        self.n_users = 0
        self.n_items = 0
        self.history: list[dict[str, Any]] = []  # per-epoch stats of the validated fit
        self.refit_epochs = 0
        self._start: tuple[np.ndarray | None, np.ndarray | None] | None = None

    @classmethod
    def migrate_config(cls, values: dict[str, Any]) -> dict[str, Any]:
        """This model's TrainConfig values as saved by an older version (a run's or a job's
        ``config.json``), rewritten to today's fields; by default unchanged."""
        return values

    # ------------------------------------------------------------------ training
    def fit(self, train: Part | Split, valid: Part | None = None,
            callbacks: Sequence[EpochCallback] = ()) -> Recommender:
        """Fits on ``train.positives`` (``train.ratings`` for rating models), choosing the best
        epoch on ``valid``, then (``config.refit``) fits again on both; returns self.

        ``train`` and ``valid`` are :class:`recsys.data.splits.Part` s (``split.fit_parts()``); a
        whole :class:`Split` is accepted as a shorthand for its fit parts (the test part is
        never read)."""
        if isinstance(train, Split):
            if valid is not None:
                raise TypeError("pass either a Split or its fit parts (train, valid), not both")
            train, valid = train.fit_parts()
        self.n_users, self.n_items = train.ratings.n_users, train.ratings.n_items
        self.history = self._fit(train, valid, callbacks, self.config.epochs)
        if self.config.refit and valid is not None and len(valid.positives):
            self.refit_epochs = self._refit(train.concat(valid), callbacks)
        return self

    def _refit(self, train_part: Part, callbacks: Sequence[EpochCallback] = ()) -> int:
        """Fits again on train + validation, iterative models for the best validated epoch
        count; returns the number of epochs it ran (0 for models fitted in one go).

        Callbacks see the refit's epochs too, marked ``phase="refit"`` with ``refit_epochs``
        (the total), so a progress display can show this phase; their return value is ignored
        (the refit always runs its chosen number of epochs)."""
        best = self.history[-1]["best_epoch"] if self.history else self.config.epochs
        epochs = max(1, best)

        def report(epoch: int, stats: dict[str, Any]) -> bool:
            for callback in callbacks:
                callback(epoch, {**stats, "phase": "refit", "refit_epochs": epochs})
            return False

        refit = self._fit(train_part, None, (report,) if callbacks else (), epochs)
        return len(refit) if self.history else 0

    def _fit(self, train_part: Part, valid: Part | None, callbacks: Sequence[EpochCallback],
             epochs: int) -> list[dict[str, Any]]:
        """Fits the parameters on ``train_part`` (iterative models validate each epoch on
        ``valid`` when given); returns the per-epoch stats (empty for models fitted in one
        go, which ignore ``valid`` and ``epochs``)."""
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

    def starting_vectors(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(user, item) vectors the current training phase started from (the training
        replay's epoch 0), as :meth:`remember_start` kept them; before any training, the
        current factors."""
        return self._start if self._start is not None else (self.user_factors(),
                                                            self.item_factors())

    def remember_start(self, users: np.ndarray | None = None,
                       items: np.ndarray | None = None) -> None:
        """Keeps, as float16, the vectors a training phase starts from: ``start_training``
        calls it once the parameters are initialised (``users`` / ``items`` default to the
        model's factors; ALS passes its random items and no users)."""
        if users is None and items is None:
            users, items = self.user_factors(), self.item_factors()
        self._start = tuple(None if v is None else np.array(v, np.float16) for v in (users, items))

    def item_biases(self) -> np.ndarray | None:
        """(n_items,) item biases of the score (``score_kind`` in BIASED_SCORES), else None."""
        return None

    def user_biases(self) -> np.ndarray | None:
        """(n_users,) user biases of the score (``score_kind`` in BIASED_SCORES), else None."""
        return None

    def global_mean(self) -> float:
        """The constant term of the score (mf-mse's mean rating); 0 for the others."""
        return 0.0

    def fold_in(self, liked: np.ndarray, disliked: np.ndarray | None = None,
                basis: FoldInBasis | None = None, **solver: float) -> np.ndarray:
        """Vectors of new users from what they liked and disliked, without retraining.

        Parameters
        ----------
        liked, disliked : (B, L) and (B, M) int item indices, the same counts for every user.
        basis : this model's :meth:`fold_in_basis`, kept by a caller that folds in many users
            against unchanging factors (None: computed from the factors on every call).
        **solver : ``reg``, ``unobserved_weight``, ``disliked_weight`` of
            :func:`recsys.linalg.ridge_fold_in` (the implicit-ALS user step).

        Returns
        -------
        (B, d) float32 user vectors, comparable with :meth:`user_factors`' rows; ValueError for
        models that cannot (``folds_in`` false).
        """
        self._check_folds_in()
        if basis is None:
            return ridge_fold_in(self.item_factors(), liked, disliked, **solver)
        if basis.shape != (self.n_items, self.item_factors().shape[1]):
            raise BadInputError(f"a fold-in basis of {basis.shape[0]} x {basis.shape[1]} item "
                                f"factors does not belong to this {self.name} model")
        return ridge_fold_in(basis, liked, disliked, **solver)

    def fold_in_basis(self) -> FoldInBasis:
        """What every :meth:`fold_in` against the current item factors shares (their Gram
        matrix), for a caller that folds in many users while the factors stay as they are:
        the serving :class:`~recsys.serving.catalog.Catalog` keeps one per loaded run."""
        self._check_folds_in()
        return FoldInBasis.of(self.item_factors())

    def _check_folds_in(self) -> None:
        if not self.folds_in:
            raise BadInputError(f"fold-in needs a dot-product model (folds_in), {self.name} is "
                             f"not one: its scores are {self.score_kind}")

    def score_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """Scores (B, n_items) float64 of every item for user vectors (B, d), e.g. folded-in
        ones: the dot product plus the item biases (constant per-user terms left out)."""
        q = self.item_factors()
        if q is None or self.score_kind not in ("dot", *BIASED_SCORES):
            raise BadInputError(f"{self.name} does not score items by a dot product with a vector")
        scores = np.asarray(vectors, np.float64) @ q.T.astype(np.float64)
        biases = self.item_biases()
        return scores if biases is None else scores + biases

    def item_item_weights(self) -> np.ndarray | sp.csr_matrix | None:
        """(n_items, n_items) W with scores = liked_row @ W for item-to-item models (kNN,
        EASE), else None: lets callers score a new user from a list of liked items."""
        return None

    def recommend(
        self, user: int, k: int = 10, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores for user index ``user``, best first, leaving out
        the items in row ``user`` of ``exclude`` (users x items, e.g. the known positives)."""
        self._check_user(user)
        items, scores = top_k_items(self.score, np.array([user]), exclude, k)
        keep = np.isfinite(scores[0])
        return items[0][keep], scores[0][keep]

    def similar_items(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most cosine-similar to item index ``item`` (itself excluded)."""
        self._check_item(item)
        factors = self.item_factors()
        if factors is None:
            raise BadInputError(f"{self.name} has no item representation to compare items with")
        unit = unit_rows(factors)
        sims = unit @ unit[item]
        sims[item] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        return top, sims[top]

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild the fitted model, as plain numpy arrays."""
        return {
            "shape": np.array([self.n_users, self.n_items], np.int64),
            **{f"param.{k}": v for k, v in self._params().items()},
        }

    def load_state(self, state: dict[str, np.ndarray]) -> Recommender:
        """Restores a model saved with :meth:`state` (arrays only: nothing is unpickled).

        Runs saved before models stopped keeping the known positives also hold
        ``seen_indptr`` / ``seen_indices``: they are ignored."""
        self.n_users, self.n_items = (int(x) for x in state["shape"])
        self._load_params({k[6:]: v for k, v in state.items() if k.startswith("param.")})
        return self

    def _params(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_params(self, params: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def _check_user(self, user: int) -> None:
        if not 0 <= int(user) < self.n_users:
            raise BadInputError(f"user index {user} out of range [0, {self.n_users})")

    def _check_item(self, item: int) -> None:
        if not 0 <= int(item) < self.n_items:
            raise BadInputError(f"item index {item} out of range [0, {self.n_items})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_users={self.n_users}, n_items={self.n_items})"


class FactorModel(Recommender):
    """A model whose whole state is plain user and item factor matrices (svd, mf-als):
    score = users @ items.T. Subclasses set ``self.users`` / ``self.items`` in ``_fit``."""

    user_vectors = item_vectors = folds_in = True
    default_lens = "cosine"
    score_kind = "dot"
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
