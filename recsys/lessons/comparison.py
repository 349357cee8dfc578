"""Comparing two runs on users, as an online experiment would: which lists each side serves (an
:class:`Arm` is a run plus how its lists are made: the model's own score, the cosine of user and
item vectors, or the serving funnel with or without re-ranking — the very code the app and the
CLI serve with), the pairs worth comparing, a served-list log replayed against a second run,
and each number of a comparison in one sentence. The statistics (offline A/B, team-draft
interleaving, the detection curve) are :mod:`recsys.evaluation.online`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys.checks import check_choice, check_k
from recsys.errors import BadInputError
from recsys.evaluation.metrics import top_k_items
from recsys.evaluation.online import (
    AB_METRICS,
    ALPHA,
    DEFAULT_SIZES,
    ArmDifference,
    Comparison,
    Progress,
    compare_lists,
)
from recsys.serving.catalog import Catalog
from recsys.serving.funnel import DEFAULT_RERANKING, funnel_batch
from recsys.storage.runs import Run

# ---------------------------------------------------------------------------- arms from runs
VARIANTS = {
    "dot": "the model's own score, as Recommendations and `recsys recommend` list it",
    "cosine": "the cosine of user and item vectors, which ignores vector length and biases",
    "funnel": "the serving funnel with re-ranking off: retrieval, then the model's ranking",
    "rerank": "the serving funnel with the Recommendations page's default re-ranking "
              "(MMR λ 0.7, popularity penalty 0.2)",
}
VECTOR_VARIANTS = ("cosine", "funnel", "rerank")  # need user and item vectors
RERANKING = DEFAULT_RERANKING  # the Recommendations page's default knobs


@dataclass(frozen=True, eq=False)
class Arm:
    """What one side of an experiment serves: a run's catalogue and how its lists are made."""

    catalog: Catalog
    variant: str = "dot"  # a key of VARIANTS

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, tuple(VARIANTS))
        model = self.catalog.run.model
        if self.variant in VECTOR_VARIANTS and not (model.user_vectors and model.item_vectors):
            raise BadInputError(f"the {self.variant} variant needs user and item vectors, which "
                                f"{self.catalog.run.train_config.model} has not: use dot")

    @property
    def label(self) -> str:
        return f"{self.catalog.run.name} ({self.variant})"


def served_lists(arm: Arm, users: np.ndarray, k: int, batch_size: int = 256) -> np.ndarray:
    """(len(users), k) item indices each user index in ``users`` is served by ``arm``, best
    first, -1 where a list runs short; the user's known positives are never served. The same
    code paths as serving: the model's ``score`` ranked as ``Recommender.recommend`` ranks it,
    the cosine FAISS index of :func:`recsys.serving.catalog.recommend`, or
    :func:`recsys.serving.funnel.funnel_batch`."""
    check_k(k)
    catalog, users = arm.catalog, np.asarray(users, np.int64)
    if arm.variant == "dot":
        items, scores = top_k_items(catalog.model.score, users, catalog.seen, k, batch_size)
        return np.where(np.isfinite(scores), items, -1)
    if arm.variant == "cosine":
        vectors = catalog.user_factors("cosine scoring")[users]
        return catalog.index("cosine").search(vectors, k, catalog.seen[users])[0]
    config = RERANKING if arm.variant == "rerank" else RERANKING.ranking_only()
    return np.concatenate([funnel_batch(catalog, users[s:s + batch_size], config, k).items
                           for s in range(0, len(users), batch_size)])


def compare_arms(arm_a: Arm, arm_b: Arm, k: int = 10, seed: int = 0, metric: str = "ndcg",
                 sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = 200,
                 progress: Progress | None = None) -> Comparison:
    """Offline A/B and interleaving of two arms on every user with a test positive."""
    check_choice("metric", metric, AB_METRICS)
    check_comparable(arm_a, arm_b)
    report = progress or (lambda fraction, message: None)
    relevant, users = held_out_users(arm_a.catalog)
    report(0.0, f"serving {arm_a.label} to {len(users):,} test users")
    lists_a = served_lists(arm_a, users, k)
    report(0.2, f"serving {arm_b.label} to {len(users):,} test users")
    lists_b = served_lists(arm_b, users, k)
    report(0.4, "A/B test and interleaving")
    return compare_lists(
        lists_a, lists_b, relevant, users, arm_a.catalog.run.user_ids[users],
        arm_a.catalog.item_counts, k, seed, (arm_a.label, arm_b.label), metric, sizes, repeats,
        lambda fraction, message: report(0.4 + 0.6 * fraction, message))


def held_out_users(catalog: Catalog) -> tuple[sp.csr_matrix, np.ndarray]:
    """The test positives (users x items csr) and the indices of the users with at least one:
    the users both experiments run on."""
    relevant = catalog.split.test_pos.to_csr()
    return relevant, np.flatnonzero(np.diff(relevant.indptr) > 0)


def check_comparable(arm_a: Arm, arm_b: Arm) -> None:
    """Both runs must split the same data the same way, or their test users differ."""
    a, b = arm_a.catalog, arm_b.catalog
    same = (a.run.split_config == b.run.split_config
            and np.array_equal(a.run.user_ids, b.run.user_ids)
            and np.array_equal(a.run.item_ids, b.run.item_ids))
    if not same:
        raise BadInputError(f"runs {a.run.name} and {b.run.name} were trained on different "
                            "splits or data, so they have different test users: compare runs "
                            "of one protocol")


@dataclass(frozen=True)
class SuggestedPair:
    """Two arms worth comparing, by run name and variant, and why."""

    run_a: str
    variant_a: str
    run_b: str
    variant_b: str
    why: str

    @property
    def label(self) -> str:
        def side(run: str, variant: str) -> str:
            return run if variant == "dot" else f"{run} ({variant})"
        return f"{side(self.run_a, self.variant_a)} vs {side(self.run_b, self.variant_b)}"


def suggested_pairs(runs: Sequence[Run], pinned: str | None = None) -> list[SuggestedPair]:
    """The comparisons that teach something, among ``runs``: a learned model against
    popularity, mf-bpr against mf-als, dot against cosine scoring, and re-ranking on against
    off. The mf-als run is the pinned one when it is an mf-als run."""
    by_model: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: (r.name != pinned, r.name)):  # the pinned run first
        by_model.setdefault(run.train_config.model, run)
    main, popular, bpr = (by_model.get(m) for m in ("mf-als", "popularity", "mf-bpr"))
    pairs = []
    if main and popular:
        pairs.append(SuggestedPair(main.name, "dot", popular.name, "dot",
                                   "a learned model against the baseline every model must beat"))
    if bpr and main:
        pairs.append(SuggestedPair(bpr.name, "dot", main.name, "dot",
                                   "two learned models of similar quality: the hard case"))
    if main:
        pairs.append(SuggestedPair(main.name, "dot", main.name, "cosine",
                                   "one run, two ways to score: does vector length help?"))
        pairs.append(SuggestedPair(main.name, "rerank", main.name, "funnel",
                                   "re-ranking for variety on against off: what does it cost?"))
    return pairs


# ---------------------------------------------------------------------------- a served log
@dataclass(frozen=True, eq=False)
class LoggedLists:
    """The first ``/recommend`` list a served-list log holds for each user, as item indices."""

    users: np.ndarray  # (n,) user indices of the run, in first-served order
    lists: np.ndarray  # (n, k) item indices, -1 for empty slots and unknown movies
    runs: tuple[str, ...]  # the run names the log's records name
    read: int  # records read
    used: int  # records that gave a user's list (the rest: other endpoints, repeat visits)


def logged_lists(records: Iterable[Mapping], catalog: Catalog, k: int) -> LoggedLists:
    """Each user's first ``/recommend`` list in ``records`` (dicts as
    :func:`recsys.serving.served_log.read_records` yields them), cut or padded to ``k``: the
    impressions an interleaving of the log against another run starts from. Records of other
    data (their ``fingerprint``) raise BadInputError; unknown users are left out."""
    check_k(k)
    fingerprint = catalog.run.dataset.get("fingerprint")
    item_index = {int(m): i for i, m in enumerate(catalog.run.item_ids)}
    user_index = {int(u): i for i, u in enumerate(catalog.run.user_ids)}
    first: dict[int, list[int]] = {}
    runs, read = set(), 0
    for record in records:  # parsing the log: one dict per record, no per-user maths
        read += 1
        user = record.get("inputs", {}).get("user")
        if record.get("endpoint") != "recommend" or user not in user_index:
            continue
        if record.get("fingerprint") != fingerprint:
            raise BadInputError(f"record {record.get('request_id')} was served on other data "
                                f"(fingerprint {record.get('fingerprint')}, the run's "
                                f"{fingerprint}): replay it against a run of that data")
        runs.add(str(record.get("run")))
        items = [item_index.get(int(i["movie_id"]), -1) for i in record["items"][:k]]
        first.setdefault(user_index[user], items + [-1] * (k - len(items)))
    if not first:
        raise BadInputError("the log holds no /recommend list of a user this run knows")
    return LoggedLists(np.fromiter(first, np.int64, len(first)),
                       np.array(list(first.values()), np.int64).reshape(len(first), k),
                       tuple(sorted(runs)), read, len(first))


def compare_log(logged: LoggedLists, arm_b: Arm, seed: int = 0, metric: str = "ndcg",
                sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = 200) -> Comparison:
    """The logged lists (arm A) against ``arm_b``'s lists of the same length for the same
    users, on those of them with a test positive: the A/B test and the interleaving a replay
    of the log gives."""
    check_choice("metric", metric, AB_METRICS)
    k = logged.lists.shape[1]
    relevant, _ = held_out_users(arm_b.catalog)
    keep = np.diff(relevant.indptr)[logged.users] > 0
    users = logged.users[keep]
    if len(users) < 4:
        raise BadInputError(f"only {len(users)} logged users have test positives: the "
                            "experiments need at least 4, two per arm")
    label = f"served log ({', '.join(logged.runs)})"
    return compare_lists(logged.lists[keep], served_lists(arm_b, users, k), relevant,
                         users, arm_b.catalog.run.user_ids[users], arm_b.catalog.item_counts,
                         k, seed, (label, arm_b.label), metric, sizes, repeats)


# ---------------------------------------------------------------------------- in words
def explain(comparison: Comparison) -> dict[str, str]:
    """One plain sentence per number of ``comparison``, shared by the CLI and the app: keys
    are the A/B metrics ("ndcg@10", ...), "interleaving", "clicks" and "lesson"."""
    c, il = comparison, comparison.interleaving
    words = {row.metric: _ab_sentence(row) for row in c.ab}
    words["interleaving"] = (
        f"Shown one list merging both by team draft, {il.wins_a:,} users clicked more of A's "
        f"picks and {il.wins_b:,} more of B's ({il.ties:,} tied, {il.no_clicks:,} of them "
        f"clicking nothing): A won {_share(il.share_a)} of the users with a preference "
        f"(95 % interval {_share(il.ci[0])} to {_share(il.ci[1])}, bootstrap over users), "
        f"{_p(il.p_value)} (two-sided sign test), {_verdict(il.p_value)}.")
    words["clicks"] = (
        f"A click is a merged item the user liked later (a held-out movie): {il.clicks_a:,} "
        f"went to A's picks and {il.clicks_b:,} to B's.")
    words["lesson"] = _lesson(c)
    return words


def _ab_sentence(row: ArmDifference) -> str:
    needed = ("no finite number of users could find it (no difference)"
              if not np.isfinite(row.users_needed)
              else f"an A/B test needs about {row.users_needed:,.0f} users to find a difference "
                   "this size 80 % of the time")
    return (f"{row.metric}: arm A's {row.n_a:,} users averaged {row.mean_a:.4f}, arm B's "
            f"{row.n_b:,} {row.mean_b:.4f}; A − B = {row.difference:+.4f} (95 % interval "
            f"{row.ci[0]:+.4f} to {row.ci[1]:+.4f}, bootstrap over users), {_p(row.p_value)} "
            f"(Welch's t-test), {_verdict(row.p_value)}; {needed}.")


def _lesson(c: Comparison) -> str:
    curve = c.curve
    ab, il, largest = curve.ab_users, curve.interleaving_users, int(curve.sizes[-1])

    def users(n: int | None) -> str:
        return f"{n:,} users" if n is not None else f"more than {largest:,} users"

    text = (f"In {curve.repeats} simulated experiments per size (users drawn from the test "
            f"users), an A/B test on {curve.metric} found the difference 80 % of the time "
            f"with {users(ab)}, interleaving with {users(il)}")
    if ab is not None and il is not None:
        return text + f": {ab / il:.1f} times fewer users for interleaving."
    if ab is None and il is not None:
        return text + f": at least {largest / il:.0f} times fewer users for interleaving."
    return text + "."


def _p(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.2g}"


def _verdict(p: float) -> str:
    return ("a real difference at the 5 % level" if p < ALPHA
            else "not distinguishable from chance at the 5 % level")


def _share(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.1%}"
