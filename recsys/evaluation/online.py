"""Comparing two recommenders on users, offline: an A/B test and team-draft interleaving.

Both replay what an online experiment would see, using each test user's held-out positives as
the items they would have liked (clicked) had they been shown them:

* **Offline A/B.** The test users are split into two arms by a stable hash of their id and a
  salt (:func:`assign_arms`); arm A is served run A's top-k, arm B run B's. Per arm: Recall,
  NDCG and hit rate at k on the held-out items (:func:`recsys.evaluation.metrics.ranking_metrics`);
  the difference A − B with a bootstrap confidence interval over users (each arm resampled on
  its own), a p-value from **Welch's t-test** (unequal variances: the arms' spreads differ when
  one list is much better), and the users an A/B test would need to detect that difference at
  80 % power, two-sided alpha 0.05, from the per-user variances.
* **Team-draft interleaving** (Radlinski, Kurup & Joachims, CIKM 2008). Every test user gets one
  list that merges A's and B's (:func:`team_draft`); a click is an interleaved item the user
  liked later (a held-out positive), credited to the team that put it there. A user prefers
  the team with more clicks; the preference share of A among users with a preference gets a
  bootstrap confidence interval and a two-sided **sign test** (binomial, p = 1/2) p-value.

The lesson (:func:`detection_curve`): draw users (with replacement, from the test users) at
increasing sample sizes, repeat with seeds, and count how often each test finds the difference
at alpha 0.05 in the direction the full data shows; the size where that reaches 80 % is how
many users each method needs. Interleaving needs far fewer, because every user sees both
rankings and the noise between users cancels out.

Everything is reproducible from one seed (:class:`numpy.random.SeedSequence` spawns one stream
per random step) and vectorised across users; only team-draft loops, over list positions.
This module knows lists, held-out items and statistics only; which lists a run serves (an
arm: a run plus how its lists are made) is :mod:`recsys.lessons.comparison`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy import stats

from recsys.errors import BadInputError
from recsys.evaluation.metrics import ranking_metrics

ALPHA = 0.05  # two-sided significance level of every test here
POWER = 0.80  # the detection rate a sample size has to reach
AB_METRICS = ("recall", "ndcg", "hit")  # per-arm metrics of the A/B table, at k
DEFAULT_SIZES = tuple(int(n) for n in np.unique(np.geomspace(10, 40_000, 22).round(-1)))
COIN_DRAWS = 16  # team-draft coin draws per user for the simulation (even: mirrored pairs)
_BLOCK_ENTRIES = 1_000_000  # simulated users held at once (~8 MB per float array)
Progress = Callable[[float, str], object]  # (fraction done, what is happening now)

_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # splitmix64's constants


# ---------------------------------------------------------------------------- arms
def assign_arms(user_ids: np.ndarray, salt: int = 0) -> np.ndarray:
    """Arm of each user: True for B. A splitmix64 hash of (salt, raw user id), so a user keeps
    their arm across runs, sessions and sample sizes, and a new salt draws a new split.

    Parameters
    ----------
    user_ids : int array (n,), raw user ids
    salt : any integer; the same salt always gives the same split

    Returns
    -------
    bool array (n,)
    """
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps on purpose
        key = _splitmix64(np.asarray(user_ids).astype(np.uint64) ^ _splitmix64(
            np.array([salt % 2**64], np.uint64)))
    return (key >> np.uint64(63)).astype(bool)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(_MIX[0])
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_MIX[1])
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_MIX[2])
    return x ^ (x >> np.uint64(31))


# ---------------------------------------------------------------------------- offline A/B
@dataclass(frozen=True)
class ArmDifference:
    """One metric of the offline A/B test: each arm's mean and the difference A − B."""

    metric: str  # e.g. "ndcg@10"
    mean_a: float
    mean_b: float
    n_a: int  # users in arm A
    n_b: int
    difference: float  # mean_a - mean_b
    ci: tuple[float, float]  # bootstrap percentile interval of the difference (1 - ALPHA)
    p_value: float  # Welch's two-sided t-test
    users_needed: float  # both arms together, for POWER at ALPHA; inf when the difference is 0


def ab_test(values_a: np.ndarray, values_b: np.ndarray, in_b: np.ndarray, metric: str,
            rng: np.random.Generator, n_boot: int = 2000) -> ArmDifference:
    """The offline A/B result of one metric.

    ``values_a[j]`` / ``values_b[j]`` are user j's metric under list A / B (every user has both,
    offline); ``in_b`` says which arm user j is in, and only that arm's value is used.
    """
    arm_a, arm_b = np.asarray(values_a, float)[~in_b], np.asarray(values_b, float)[in_b]
    if len(arm_a) < 2 or len(arm_b) < 2:
        raise BadInputError("each arm needs at least two users: compare on more users")
    boot_a = arm_a[rng.integers(0, len(arm_a), (n_boot, len(arm_a)))].mean(axis=1)
    boot_b = arm_b[rng.integers(0, len(arm_b), (n_boot, len(arm_b)))].mean(axis=1)
    low, high = np.quantile(boot_a - boot_b, [ALPHA / 2, 1 - ALPHA / 2])
    difference = arm_a.mean() - arm_b.mean()
    return ArmDifference(
        metric=metric, mean_a=float(arm_a.mean()), mean_b=float(arm_b.mean()),
        n_a=len(arm_a), n_b=len(arm_b), difference=float(difference),
        ci=(float(low), float(high)),
        p_value=float(welch_p_values(arm_a[None], arm_b[None])[0]),
        users_needed=ab_users_needed(difference, arm_a.var(ddof=1), arm_b.var(ddof=1)))


def welch_p_values(arm_a: np.ndarray, arm_b: np.ndarray, mask_a: np.ndarray | None = None,
                   mask_b: np.ndarray | None = None) -> np.ndarray:
    """Two-sided Welch's t-test per row: rows of ``arm_a`` against the same rows of ``arm_b``,
    counting only the entries where the masks are True (all when None). A row whose arms have
    under two users or no spread at all gets p = 1 (nothing can be told apart)."""
    mask_a = np.ones(arm_a.shape, bool) if mask_a is None else mask_a
    mask_b = np.ones(arm_b.shape, bool) if mask_b is None else mask_b
    return _welch(arm_a, arm_b, mask_a, mask_b)[1]


def _welch(arm_a: np.ndarray, arm_b: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray):
    """Per row: the difference of the masked means and its Welch two-sided p-value."""
    n_a, mean_a, var_a = _masked_moments(arm_a, mask_a)
    n_b, mean_b, var_b = _masked_moments(arm_b, mask_b)
    se2_a, se2_b = var_a / np.maximum(n_a, 1), var_b / np.maximum(n_b, 1)
    se2 = se2_a + se2_b
    ok = (n_a >= 2) & (n_b >= 2) & (se2 > 0)
    safe = np.where(ok, se2, 1.0)
    t = (mean_a - mean_b) / np.sqrt(safe)
    df = safe**2 / (se2_a**2 / np.maximum(n_a - 1, 1) + se2_b**2 / np.maximum(n_b - 1, 1)
                    + (~ok))  # + 1 where not ok: avoids 0/0, the p-value is replaced anyway
    return mean_a - mean_b, np.where(ok, 2 * stats.t.sf(np.abs(t), df), 1.0)


def _masked_moments(values: np.ndarray, mask: np.ndarray):
    """Per row: count, mean and unbiased variance of the masked entries (from the sums of
    values and squares: one pass, exact enough for metrics in [0, 1] in float64)."""
    n = mask.sum(axis=-1)
    kept = np.where(mask, values, 0.0)
    total, squares = kept.sum(axis=-1), np.einsum("...i,...i->...", kept, kept)
    mean = total / np.maximum(n, 1)
    variance = np.maximum(squares - total * mean, 0.0) / np.maximum(n - 1, 1)
    return n, mean, variance


def ab_users_needed(difference: float, var_a: float, var_b: float) -> float:
    """Users (both arms, split evenly) a two-sided A/B test at ALPHA needs to find
    ``difference`` with probability POWER: ``2 (z_{1-a/2} + z_power)^2 (var_a + var_b) / d^2``
    (the normal approximation of the two-sample test)."""
    if difference == 0 or not np.isfinite(difference):
        return float("inf")
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
    return float(2 * np.ceil(z**2 * (var_a + var_b) / difference**2))


# ---------------------------------------------------------------------------- interleaving
def team_draft(lists_a: np.ndarray, lists_b: np.ndarray,
               coins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Team-draft interleaving of every user's two lists at once (Radlinski et al. 2008).

    At each position the team with fewer picks so far picks next (on a tie, ``coins`` says A),
    taking its highest-ranked item not yet in the merged list; it stops when either list has
    nothing new left, or the merged list is as long as the inputs.

    Parameters
    ----------
    lists_a, lists_b : int arrays (n_users, k), item indices best first, -1 for empty slots
    coins : bool array (n_users, k), the coin read at each position when the teams are even

    Returns
    -------
    merged : int64 array (n_users, k), -1 past the end of a user's merged list
    teams : int8 array (n_users, k), 0 = picked by A, 1 = by B, -1 = empty
    """
    n, k = lists_a.shape
    rows = np.arange(n)
    used_a, used_b = lists_a < 0, lists_b < 0  # empty slots count as taken
    picks_a, picks_b = np.zeros(n, np.int64), np.zeros(n, np.int64)
    merged = np.full((n, k), -1, np.int64)
    teams = np.full((n, k), -1, np.int8)
    for position in range(k):  # a loop over positions; every user moves at once
        active = ~used_a.all(axis=1) & ~used_b.all(axis=1)
        a_turn = (picks_a < picks_b) | ((picks_a == picks_b) & coins[:, position])
        pick = np.where(a_turn, lists_a[rows, np.argmax(~used_a, axis=1)],
                        lists_b[rows, np.argmax(~used_b, axis=1)])
        pick = np.where(active, pick, -1)
        merged[:, position] = pick
        teams[:, position] = np.where(active, np.where(a_turn, 0, 1), -1)
        picks_a += active & a_turn
        picks_b += active & ~a_turn
        used_a |= (lists_a == pick[:, None]) & active[:, None]
        used_b |= (lists_b == pick[:, None]) & active[:, None]
    return merged, teams


def clicks_per_team(merged: np.ndarray, teams: np.ndarray,
                    relevant_rows: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Simulated clicks credited to A and to B per user: a click is a merged item in the
    user's row of ``relevant_rows`` (the items they liked later, in the test part)."""
    n, k = merged.shape
    clicked = np.asarray(relevant_rows[np.repeat(np.arange(n), k),
                                       np.maximum(merged, 0).ravel()]).reshape(n, k) > 0
    clicked &= merged >= 0
    return (clicked & (teams == 0)).sum(axis=1), (clicked & (teams == 1)).sum(axis=1)


def interleaved_clicks(lists_a: np.ndarray, lists_b: np.ndarray, relevant_rows: sp.csr_matrix,
                       rng: np.random.Generator,
                       draws: int = COIN_DRAWS) -> tuple[np.ndarray, np.ndarray]:
    """Clicks credited to A and B, shape (n_users, draws): every user interleaved ``draws``
    times with fresh coins, half of them the mirror image (every coin flipped) of the other
    half. Column 0 is the experiment reported; all columns feed the simulation, where the
    mirrored coins cancel the coins' luck: two identical lists then tie exactly on average."""
    n, k = lists_a.shape
    half = rng.random((draws // 2, n, k)) < 0.5
    coins = np.concatenate([half, ~half]).reshape(-1, k)
    merged, teams = team_draft(np.tile(lists_a, (draws, 1)), np.tile(lists_b, (draws, 1)), coins)
    clicks_a, clicks_b = clicks_per_team(merged, teams, sp.vstack([relevant_rows] * draws).tocsr())
    return clicks_a.reshape(draws, n).T, clicks_b.reshape(draws, n).T


@dataclass(frozen=True)
class InterleavingResult:
    """Who the users preferred when shown both rankings merged."""

    wins_a: int  # users with more clicks on A's picks
    wins_b: int
    ties: int  # equal clicks
    no_clicks: int  # users who clicked nothing (ties too)
    clicks_a: int  # all clicks credited to A
    clicks_b: int
    share_a: float  # wins_a / (wins_a + wins_b); 0.5 = no preference; nan without any winner
    ci: tuple[float, float]  # bootstrap percentile interval of share_a over users
    p_value: float  # two-sided sign test of wins_a against wins_b
    users_needed: float  # users a sign test at ALPHA needs for POWER (normal approximation)

    @property
    def n_users(self) -> int:
        return self.wins_a + self.wins_b + self.ties


def preferences(clicks_a: np.ndarray, clicks_b: np.ndarray) -> np.ndarray:
    """Per user: +1 prefers A (more clicks on A's picks), -1 prefers B, 0 tie."""
    return np.sign(np.asarray(clicks_a, np.int64) - np.asarray(clicks_b, np.int64))


def interleaving_test(clicks_a: np.ndarray, clicks_b: np.ndarray, rng: np.random.Generator,
                      n_boot: int = 2000) -> InterleavingResult:
    """The interleaving preference, its bootstrap interval and its sign test."""
    outcome = preferences(clicks_a, clicks_b)
    wins_a, wins_b = int((outcome > 0).sum()), int((outcome < 0).sum())
    boot = outcome[rng.integers(0, len(outcome), (n_boot, len(outcome)))]
    boot_a, boot_b = (boot > 0).sum(axis=1), (boot < 0).sum(axis=1)
    decided = boot_a + boot_b
    shares = boot_a[decided > 0] / decided[decided > 0]
    ci = (tuple(float(q) for q in np.quantile(shares, [ALPHA / 2, 1 - ALPHA / 2]))
          if len(shares) else (float("nan"), float("nan")))
    return InterleavingResult(
        wins_a=wins_a, wins_b=wins_b, ties=len(outcome) - wins_a - wins_b,
        no_clicks=int(np.sum((np.asarray(clicks_a) + clicks_b) == 0)),
        clicks_a=int(np.sum(clicks_a)), clicks_b=int(np.sum(clicks_b)),
        share_a=wins_a / (wins_a + wins_b) if wins_a + wins_b else float("nan"), ci=ci,
        p_value=float(sign_test_p_values(np.array([wins_a]), np.array([wins_b]))[0]),
        users_needed=interleaving_users_needed(wins_a, wins_b, len(outcome)))


def sign_test_p_values(wins_a: np.ndarray, wins_b: np.ndarray) -> np.ndarray:
    """Two-sided exact sign test per entry: the binomial probability, under p = 1/2, of a split
    at least as uneven as ``wins_a`` : ``wins_b`` (ties left out, as the sign test does)."""
    n = wins_a + wins_b
    tail = stats.binom.cdf(np.minimum(wins_a, wins_b), np.maximum(n, 1), 0.5)
    return np.where(n > 0, np.minimum(1.0, 2 * tail), 1.0)


def interleaving_users_needed(wins_a: int, wins_b: int, n_users: int) -> float:
    """Users a sign test at ALPHA needs to detect a preference share ``wins_a / (wins_a +
    wins_b)`` with probability POWER, counting that only the users with a preference (this share
    of ``n_users``) enter the test: the normal approximation of the binomial test."""
    decided = wins_a + wins_b
    if decided == 0 or wins_a == wins_b:
        return float("inf")
    share = wins_a / decided
    z_alpha, z_power = stats.norm.ppf(1 - ALPHA / 2), stats.norm.ppf(POWER)
    n_decided = ((z_alpha * 0.5 + z_power * np.sqrt(share * (1 - share))) / (share - 0.5)) ** 2
    return float(np.ceil(n_decided * n_users / decided))


# ---------------------------------------------------------------------------- the lesson
@dataclass(frozen=True, eq=False)
class DetectionCurve:
    """How often each test finds the difference, by number of users in the experiment."""

    sizes: np.ndarray  # (S,) users per simulated experiment (both A/B arms together)
    ab_rate: np.ndarray  # (S,) share of repeats where Welch's test found it, right direction
    interleaving_rate: np.ndarray  # (S,) the same for the sign test on interleaving
    repeats: int
    metric: str  # the A/B test's metric

    def users_needed(self, rates: np.ndarray) -> int | None:
        """The smallest size whose detection rate reaches POWER; None if none does."""
        reached = np.flatnonzero(rates >= POWER)
        return int(self.sizes[reached[0]]) if len(reached) else None

    @property
    def ab_users(self) -> int | None:
        return self.users_needed(self.ab_rate)

    @property
    def interleaving_users(self) -> int | None:
        return self.users_needed(self.interleaving_rate)


def detection_curve(values_a: np.ndarray, values_b: np.ndarray, outcome: np.ndarray,
                    metric: str, rng: np.random.Generator,
                    sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = 200,
                    progress: Progress | None = None) -> DetectionCurve:
    """Detection rates of A/B (on ``metric``) and of interleaving at each sample size.

    Each repeat draws ``size`` users with replacement from the test users (a population like
    them), gives each a fair coin for their A/B arm (a fresh split per experiment) and runs
    both tests on the same users: Welch's test on ``values_a`` of arm A against ``values_b`` of
    arm B, and the sign test on their interleaving outcome (+1/-1/0), read from one of the
    user's team-draft coin draws (``outcome`` is (n_users, draws), a fresh draw per simulated
    user). A detection is a p-value under ALPHA with the sign of the difference over all test
    users (all draws): a pair with no difference there is never "detected".
    """
    values_a, values_b = np.asarray(values_a, float), np.asarray(values_b, float)
    outcome = np.asarray(outcome).reshape(len(values_a), -1)
    ab_sign = np.sign(values_a.mean() - values_b.mean())
    il_sign = np.sign(outcome.sum())
    ab_rate, il_rate = np.zeros(len(sizes)), np.zeros(len(sizes))
    for i, size in enumerate(sizes):  # a few sizes; the repeats of one size in big blocks
        ab_found, il_found = [], []
        block = max(1, _BLOCK_ENTRIES // size)  # bounds memory at the largest sizes
        for start in range(0, repeats, block):
            users = rng.integers(0, len(values_a), (min(block, repeats - start), size))
            in_b = rng.random(users.shape) < 0.5
            diff, p_ab = _welch(values_a[users], values_b[users], ~in_b, in_b)
            ab_found.append((p_ab < ALPHA) & (np.sign(diff) == ab_sign) & (ab_sign != 0))
            drawn = outcome[users, rng.integers(0, outcome.shape[1], users.shape)]
            wins_a, wins_b = (drawn > 0).sum(axis=1), (drawn < 0).sum(axis=1)
            il_found.append((sign_test_p_values(wins_a, wins_b) < ALPHA)
                            & (np.sign(wins_a - wins_b) == il_sign) & (il_sign != 0))
        ab_rate[i], il_rate[i] = np.concatenate(ab_found).mean(), np.concatenate(il_found).mean()
        if progress:
            progress((i + 1) / len(sizes), f"simulated experiments of {size:,} users")
    return DetectionCurve(np.asarray(sizes), ab_rate, il_rate, repeats, metric)


# ---------------------------------------------------------------------------- the comparison
@dataclass(frozen=True, eq=False)
class Comparison:
    """An offline A/B test and an interleaving experiment between two arms, on the test users."""

    label_a: str
    label_b: str
    k: int
    seed: int
    user_ids: np.ndarray  # (n,) raw ids of the test users, in the order of the arrays below
    in_b: np.ndarray  # (n,) bool: the user's A/B arm
    ab: tuple[ArmDifference, ...]  # one per metric of AB_METRICS
    interleaving: InterleavingResult
    curve: DetectionCurve
    outcome: np.ndarray = field(repr=False)  # (n, COIN_DRAWS) +1 / -1 / 0 per coin draw

    def ab_metric(self, name: str) -> ArmDifference:
        """The A/B row of metric ``name`` ("ndcg" or "ndcg@10")."""
        for row in self.ab:
            if row.metric.split("@")[0] == name.split("@")[0]:
                return row
        raise BadInputError(f"unknown metric {name!r}: choose one of {', '.join(AB_METRICS)}")


def compare_lists(lists_a: np.ndarray, lists_b: np.ndarray, relevant: sp.csr_matrix,
                  users: np.ndarray, user_ids: np.ndarray, item_counts: np.ndarray, k: int,
                  seed: int = 0, labels: tuple[str, str] = ("A", "B"), metric: str = "ndcg",
                  sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = 200,
                  progress: Progress | None = None) -> Comparison:
    """Both experiments on two sets of served lists.

    Parameters
    ----------
    lists_a, lists_b : int arrays (n, k), each user's list under A and B, -1 for empty slots
    relevant : csr (all users x items), the held-out positives
    users : (n,) row indices of the users in ``relevant``; ``user_ids`` their raw ids (the arm
        hash reads these)
    item_counts : (n_items,) known positives per item (for the novelty metric computed beside)
    seed : one seed for the arm split's salt, the coins, the bootstraps and the simulation
    metric : the A/B metric the detection curve uses
    """
    coin_seed, ab_seed, il_seed, curve_seed = np.random.SeedSequence(seed).spawn(4)
    per_user = [ranking_metrics(lists, relevant, users, k, item_counts, relevant.shape[0])[1]
                for lists in (lists_a, lists_b)]
    in_b = assign_arms(user_ids, salt=seed)
    ab_rng = np.random.default_rng(ab_seed)
    ab = tuple(ab_test(per_user[0][f"{m}@{k}"], per_user[1][f"{m}@{k}"], in_b, f"{m}@{k}",
                       ab_rng) for m in AB_METRICS)
    clicks_a, clicks_b = interleaved_clicks(lists_a, lists_b, relevant[users],
                                            np.random.default_rng(coin_seed))
    result = interleaving_test(clicks_a[:, 0], clicks_b[:, 0], np.random.default_rng(il_seed))
    outcome = preferences(clicks_a, clicks_b)
    curve = detection_curve(per_user[0][f"{metric}@{k}"], per_user[1][f"{metric}@{k}"],
                            outcome, f"{metric}@{k}", np.random.default_rng(curve_seed),
                            sizes, repeats, progress)
    return Comparison(labels[0], labels[1], k, seed, np.asarray(user_ids), in_b, ab, result,
                      curve, outcome)
