"""recsys.evaluation.online: the vectorised A/B and interleaving code against plain reference
loops written here, the statistics against scipy's own tests, and invariants on real runs
(identical arms show no preference; mf-als beats popularity with the right sign)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from recsys.evaluation import online
from recsys.lessons import comparison


# ---------------------------------------------------------------------------- references
def reference_team_draft(list_a, list_b, coins):
    """Radlinski et al. (2008), Algorithm 2, for one user, as written in the paper."""
    a = [i for i in list_a if i >= 0]
    b = [i for i in list_b if i >= 0]
    merged, teams = [], []
    while (len(merged) < len(list_a) and any(i not in merged for i in a)
           and any(i not in merged for i in b)):
        position = len(merged)
        picks_a, picks_b = teams.count(0), teams.count(1)
        if picks_a < picks_b or (picks_a == picks_b and coins[position]):
            merged.append(next(i for i in a if i not in merged))
            teams.append(0)
        else:
            merged.append(next(i for i in b if i not in merged))
            teams.append(1)
    return merged, teams


def reference_clicks(merged, teams, liked):
    clicks = [0, 0]
    for item, team in zip(merged, teams, strict=True):
        if item in liked:
            clicks[team] += 1
    return clicks


def random_lists(rng, n_users, k, n_items, short=0.2):
    """Overlapping lists of distinct items, some of them cut short (-1 padded)."""
    lists = np.array([rng.choice(n_items, k, replace=False) for _ in range(n_users)])
    lengths = np.where(rng.random(n_users) < short, rng.integers(0, k, n_users), k)
    return np.where(np.arange(k)[None, :] < lengths[:, None], lists, -1)


# ---------------------------------------------------------------------------- team draft
def test_team_draft_equals_the_papers_algorithm_user_by_user():
    rng = np.random.default_rng(3)
    n_users, k = 300, 8
    lists_a, lists_b = (random_lists(rng, n_users, k, n_items=14) for _ in range(2))
    coins = rng.random((n_users, k)) < 0.5
    merged, teams = online.team_draft(lists_a, lists_b, coins)
    liked = sp.random(n_users, 14, density=0.3, format="csr", random_state=4)
    clicks_a, clicks_b = online.clicks_per_team(merged, teams, liked)
    for user in range(n_users):
        want, want_teams = reference_team_draft(lists_a[user], lists_b[user], coins[user])
        got = merged[user][merged[user] >= 0].tolist()
        assert got == want and teams[user][: len(want)].tolist() == want_teams, user
        assert (teams[user][len(want):] == -1).all()
        assert [clicks_a[user], clicks_b[user]] == reference_clicks(
            want, want_teams, set(liked[user].indices))


def test_team_draft_keeps_the_teams_balanced_and_each_teams_order():
    rng = np.random.default_rng(5)
    lists_a, lists_b = (random_lists(rng, 200, 10, n_items=30, short=0) for _ in range(2))
    merged, teams = online.team_draft(lists_a, lists_b, rng.random((200, 10)) < 0.5)
    for user in range(200):
        picks_a = (teams[user] == 0).cumsum()
        picks_b = (teams[user] == 1).cumsum()
        assert np.abs(picks_a - picks_b).max() <= 1  # after every pick
        from_a = merged[user][teams[user] == 0]  # A's picks keep A's order
        assert (np.diff([np.flatnonzero(lists_a[user] == i)[0] for i in from_a]) > 0).all()
        assert len(set(merged[user][merged[user] >= 0])) == (merged[user] >= 0).sum()


def test_identical_lists_tie_exactly_over_mirrored_coins():
    """With A = B the coin alone decides who gets each click; every coin draw's mirror image
    gives B exactly A's clicks, so over all draws the preferences cancel."""
    rng = np.random.default_rng(0)
    lists = random_lists(rng, 100, 10, n_items=40, short=0)
    liked = sp.random(100, 40, density=0.25, format="csr", random_state=1, data_rvs=np.ones)
    clicks_a, clicks_b = online.interleaved_clicks(lists, lists, liked, rng, draws=8)
    outcome = online.preferences(clicks_a, clicks_b)
    np.testing.assert_array_equal(outcome[:, :4], -outcome[:, 4:])
    total = np.asarray(liked[np.arange(100)[:, None], lists].sum(axis=1)).ravel()
    np.testing.assert_array_equal(clicks_a + clicks_b, np.repeat(total[:, None], 8, axis=1))
    curve = online.detection_curve(rng.random(100), rng.random(100), outcome, "x", rng,
                                   sizes=(50, 5000), repeats=50)
    assert (curve.interleaving_rate == 0).all()  # no difference over all draws: never "found"


# ---------------------------------------------------------------------------- statistics
def test_welch_p_values_equal_scipys_test_row_by_row():
    rng = np.random.default_rng(1)
    values_a, values_b = rng.random((40, 60)), rng.random((40, 60)) + 0.1
    mask_a, mask_b = rng.random((40, 60)) < 0.5, rng.random((40, 60)) < 0.4
    got = online.welch_p_values(values_a, values_b, mask_a, mask_b)
    for row in range(40):
        want = stats.ttest_ind(values_a[row][mask_a[row]], values_b[row][mask_b[row]],
                               equal_var=False).pvalue
        # the one-pass variance loses a few ulps of values in [0, 1]: far below 1e-9
        assert got[row] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_degenerate_arms_get_p_one():
    assert online.welch_p_values(np.ones((1, 5)), np.ones((1, 5)))[0] == 1.0
    assert online.welch_p_values(np.zeros((1, 1)), np.ones((1, 5)))[0] == 1.0


def test_sign_test_equals_scipys_binomial_test():
    wins = np.array([[0, 0], [3, 0], [7, 3], [30, 45], [250, 210], [12, 12]])
    got = online.sign_test_p_values(wins[:, 0], wins[:, 1])
    for (a, b), p in zip(wins, got, strict=True):
        want = 1.0 if a + b == 0 else stats.binomtest(int(a), int(a + b), 0.5).pvalue
        assert p == pytest.approx(want, rel=1e-9)


def test_ab_test_against_plain_means_and_normal_theory():
    rng = np.random.default_rng(2)
    n = 4000
    values_a = (rng.random(n) < 0.6).astype(float)
    values_b = (rng.random(n) < 0.5).astype(float)
    in_b = online.assign_arms(np.arange(1, n + 1), salt=7)
    row = online.ab_test(values_a, values_b, in_b, "hit@10", np.random.default_rng(0))
    arm_a, arm_b = values_a[~in_b], values_b[in_b]
    assert (row.n_a, row.n_b) == (len(arm_a), len(arm_b))
    assert row.difference == pytest.approx(arm_a.mean() - arm_b.mean(), abs=1e-12)
    se = np.sqrt(arm_a.var(ddof=1) / len(arm_a) + arm_b.var(ddof=1) / len(arm_b))
    low, high = row.difference - 1.96 * se, row.difference + 1.96 * se
    # 2,000 bootstrap draws: the percentile interval's ends wander ~5 % of its width
    assert row.ci[0] == pytest.approx(low, abs=0.1 * (high - low))
    assert row.ci[1] == pytest.approx(high, abs=0.1 * (high - low))
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    want = 2 * np.ceil(z**2 * (arm_a.var(ddof=1) + arm_b.var(ddof=1)) / row.difference**2)
    assert row.users_needed == want


def test_assign_arms_is_stable_balanced_and_salted():
    ids = np.arange(1, 20_001)
    arms = online.assign_arms(ids, salt=0)
    np.testing.assert_array_equal(arms, online.assign_arms(ids, salt=0))
    order = np.random.default_rng(0).permutation(len(ids))
    np.testing.assert_array_equal(online.assign_arms(ids[order], salt=0), arms[order])
    assert abs(arms.mean() - 0.5) < 5 * 0.5 / np.sqrt(len(ids))  # 5 standard errors
    other = online.assign_arms(ids, salt=1)
    assert abs((arms == other).mean() - 0.5) < 5 * 0.5 / np.sqrt(len(ids))  # a new split


def test_interleaving_test_counts_and_bootstrap():
    rng = np.random.default_rng(4)
    clicks_a, clicks_b = rng.poisson(0.9, 3000), rng.poisson(0.7, 3000)
    result = online.interleaving_test(clicks_a, clicks_b, np.random.default_rng(0))
    assert result.wins_a == (clicks_a > clicks_b).sum()
    assert result.wins_b == (clicks_a < clicks_b).sum()
    assert result.no_clicks == ((clicks_a == 0) & (clicks_b == 0)).sum()
    assert result.n_users == 3000
    share = result.wins_a / (result.wins_a + result.wins_b)
    se = np.sqrt(share * (1 - share) / (result.wins_a + result.wins_b))
    assert result.ci[0] == pytest.approx(share - 1.96 * se, abs=0.4 * 1.96 * se)
    assert result.ci[1] == pytest.approx(share + 1.96 * se, abs=0.4 * 1.96 * se)


# ---------------------------------------------------------------------------- the simulation
def reference_detection(values_a, values_b, outcome, rng, sizes, repeats):
    """The detection rates with scipy's tests, one simulated experiment at a time (the same
    random draws, in the same order, as the vectorised code)."""
    ab_sign = np.sign(values_a.mean() - values_b.mean())
    il_sign = np.sign(outcome.sum())
    rates = []
    for size in sizes:
        users = rng.integers(0, len(values_a), (repeats, size))
        in_b = rng.random(users.shape) < 0.5
        draws = rng.integers(0, outcome.shape[1], users.shape)
        found_ab = found_il = 0
        for r in range(repeats):
            a, b = values_a[users[r]][~in_b[r]], values_b[users[r]][in_b[r]]
            if len(a) >= 2 and len(b) >= 2 and (a.var() + b.var()) > 0:
                p = stats.ttest_ind(a, b, equal_var=False).pvalue
                found_ab += p < 0.05 and np.sign(a.mean() - b.mean()) == ab_sign != 0
            o = outcome[users[r], draws[r]]
            wins_a, wins_b = int((o > 0).sum()), int((o < 0).sum())
            if wins_a + wins_b:
                p = stats.binomtest(wins_a, wins_a + wins_b, 0.5).pvalue
                found_il += p < 0.05 and np.sign(wins_a - wins_b) == il_sign != 0
        rates.append((found_ab / repeats, found_il / repeats))
    return np.array(rates)


def test_detection_curve_equals_the_reference_loop():
    rng = np.random.default_rng(6)
    values_a = (rng.random(500) < 0.55).astype(float) * rng.random(500)
    values_b = (rng.random(500) < 0.45).astype(float) * rng.random(500)
    outcome = rng.choice([-1, 0, 0, 1, 1], (500, 4))
    sizes, repeats = (20, 80, 300), 60
    curve = online.detection_curve(values_a, values_b, outcome, "x", np.random.default_rng(9),
                                   sizes, repeats)
    want = reference_detection(values_a, values_b, outcome, np.random.default_rng(9), sizes,
                               repeats)
    # a p-value within float rounding of 0.05 could flip one repeat: one repeat of tolerance
    np.testing.assert_allclose(curve.ab_rate, want[:, 0], atol=1.01 / repeats)
    np.testing.assert_allclose(curve.interleaving_rate, want[:, 1], atol=1.01 / repeats)


def test_simulated_ab_size_agrees_with_the_power_formula():
    """Hit rates of 0.6 against 0.5: the normal-approximation formula asks ~770 users; the
    simulated curve reaches 80 % between half and twice that."""
    rng = np.random.default_rng(8)
    values_a = (rng.random(20_000) < 0.6).astype(float)
    values_b = (rng.random(20_000) < 0.5).astype(float)
    formula = online.ab_users_needed(0.1, 0.24, 0.25)
    assert 760 <= formula <= 780
    curve = online.detection_curve(values_a, values_b, np.zeros((20_000, 1)), "hit", rng,
                                   sizes=(200, 385, 770, 1540, 3080), repeats=300)
    assert curve.ab_users in (385, 770, 1540), curve.ab_rate
    assert curve.interleaving_users is None  # every outcome a tie: nothing to find


# ---------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def catalogs(movielens, tmp_path_factory):
    from recsys.data.protocol import SplitConfig
    from recsys.models.config import TrainConfig
    from recsys.serving.catalog import Catalog
    from recsys.storage.runs import load_run, train_run

    root = tmp_path_factory.mktemp("online")
    built = {}
    for name in ("mf-als", "popularity"):
        train_run(movielens, SplitConfig(), TrainConfig.for_model(name, threads=1), root / name)
        built[name] = Catalog.build(load_run(root / name), movielens)
    return built


SMALL = dict(sizes=(50, 200, 800), repeats=40)  # a quick curve: the invariants need no more


@pytest.mark.movielens
def test_mf_als_beats_popularity_with_the_right_sign(catalogs):
    result = comparison.compare_arms(comparison.Arm(catalogs["mf-als"]),
                                 comparison.Arm(catalogs["popularity"]), seed=0, **SMALL)
    ndcg = result.ab_metric("ndcg")
    assert ndcg.difference > 0 and ndcg.ci[0] > 0 and ndcg.p_value < 0.05
    il = result.interleaving
    assert il.wins_a > il.wins_b and il.ci[0] > 0.5 and il.p_value < 0.05
    swapped = comparison.compare_arms(comparison.Arm(catalogs["popularity"]),
                                  comparison.Arm(catalogs["mf-als"]), seed=0, **SMALL)
    assert swapped.ab_metric("ndcg").difference < 0
    assert swapped.interleaving.wins_b > swapped.interleaving.wins_a
    assert result.curve.interleaving_rate[-1] >= 0.8


@pytest.mark.movielens
def test_identical_arms_show_no_significant_preference(catalogs):
    arm = comparison.Arm(catalogs["mf-als"])
    significant = 0
    for seed in range(5):
        result = comparison.compare_arms(arm, arm, seed=seed, **SMALL)
        significant += result.interleaving.p_value < 0.05
        assert (result.curve.interleaving_rate == 0).all()
        assert (result.curve.ab_rate == 0).all()  # the same lists: no difference to find
        outcome = result.outcome
        half = outcome.shape[1] // 2
        np.testing.assert_array_equal(outcome[:, :half], -outcome[:, half:])
    assert significant <= 1  # each seed is significant with probability 5 %


@pytest.mark.movielens
def test_a_seed_reproduces_every_number(catalogs):
    arms = comparison.Arm(catalogs["mf-als"]), comparison.Arm(catalogs["popularity"])
    first, again = (comparison.compare_arms(*arms, seed=3, **SMALL) for _ in range(2))
    other = comparison.compare_arms(*arms, seed=4, **SMALL)
    assert first.ab == again.ab and first.interleaving == again.interleaving
    np.testing.assert_array_equal(first.curve.ab_rate, again.curve.ab_rate)
    np.testing.assert_array_equal(first.outcome, again.outcome)
    assert not np.array_equal(first.in_b, other.in_b)
    assert first.interleaving != other.interleaving


@pytest.mark.movielens
def test_served_lists_are_the_lists_serving_gives(catalogs):
    from recsys.serving.catalog import recommend
    from recsys.serving.funnel import run_funnel

    catalog = catalogs["mf-als"]
    users = np.arange(0, catalog.run.model.n_users, 97)
    ids = catalog.run.user_ids[users]
    item_ids = catalog.run.item_ids
    for variant in ("dot", "cosine"):
        lists = comparison.served_lists(comparison.Arm(catalog, variant), users, 10)
        for user_id, row in zip(ids, lists, strict=True):
            served = recommend(catalog, int(user_id), 10, scoring=variant)["item_id"]
            assert item_ids[row].tolist() == served.tolist()
    lists = comparison.served_lists(comparison.Arm(catalog, "rerank"), users, 10)
    for user_id, row in zip(ids, lists, strict=True):
        served = run_funnel(catalog, int(user_id), comparison.RERANKING, 10)["item_id"]
        assert item_ids[row].tolist() == served.tolist()


@pytest.mark.movielens
def test_arms_check_what_they_can_serve(catalogs):
    with pytest.raises(online.BadInputError, match="needs user and item vectors"):
        comparison.Arm(catalogs["popularity"], "cosine")
    with pytest.raises(online.BadInputError, match="unknown variant"):
        comparison.Arm(catalogs["mf-als"], "sideways")


@pytest.mark.movielens
def test_suggested_pairs_name_the_runs(catalogs):
    runs = [c.run for c in catalogs.values()]
    labels = [p.label for p in comparison.suggested_pairs(runs)]
    assert labels[0] == "mf-als vs popularity"
    assert "mf-als vs mf-als (cosine)" in labels
    assert "mf-als (rerank) vs mf-als (funnel)" in labels
