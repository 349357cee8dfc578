"""Work the serving pages share instead of redoing on every view: the funnel's two lists from
one retrieval, the users' latest likes sorted once, and the fold-in's item Gram matrix kept per
catalogue. Each shortcut must give what the long way gives."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recsys.errors import BadInputError
from recsys.linalg import FoldInBasis, ridge_fold_in
from recsys.serving import funnel
from recsys.serving.catalog import Catalog
from recsys.serving.coldstart import ColdStartConfig, cold_start, fold_in
from recsys.serving.funnel import FunnelConfig, run_funnel, run_funnels
from tests.synthetic import fit, make_world

CONFIGS = [FunnelConfig(mmr_lambda=0.7, popularity_penalty=0.2),
           FunnelConfig(n_candidates=5, recent_items=3, neighbours_per_item=4, mmr_lambda=0.5,
                        freshness_weight=0.3),
           FunnelConfig(n_candidates=8, exclude_seen=False, popularity_penalty=0.5)]


@pytest.fixture(scope="module")
def svd(tmp_path_factory):
    return fit(make_world(), tmp_path_factory.mktemp("runs"), "svd")


@pytest.fixture(scope="module")
def bpr(tmp_path_factory):
    return fit(make_world(), tmp_path_factory.mktemp("runs"), "mf-bpr")


# ---------------------------------------------------------------------------- the funnel
@pytest.mark.parametrize("config", CONFIGS)
def test_one_retrieval_gives_both_lists_of_two_funnel_runs(svd, config):
    for user_id in svd.run.user_ids[::7]:
        for k in (3, 10):
            got = run_funnels(svd, user_id, (config.ranking_only(), config), k=k)
            for frame, want in zip(got, (run_funnel(svd, user_id, config.ranking_only(), k=k),
                                         run_funnel(svd, user_id, config, k=k)), strict=True):
                pd.testing.assert_frame_equal(frame, want)
                assert frame.attrs == want.attrs


def test_configs_that_retrieve_differently_cannot_share(svd):
    with pytest.raises(BadInputError, match="retrieve differently"):
        run_funnels(svd, 1, (FunnelConfig(), FunnelConfig(n_candidates=3)))
    assert run_funnels(svd, 1, ()) == []


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_one_query_at_a_time_finds_the_same_neighbours(svd, exclude_seen):
    """The single-user path searches each recent like alone; the batch searches them together."""
    index = svd.index("cosine")
    factors = svd.item_factors("test")
    for user in range(0, svd.model.n_users, 3):
        items = funnel._recent_positives(svd, np.array([user]), 5)[0]
        items = items[items >= 0]
        banned = ([svd.seen[user].indices] * len(items) if exclude_seen
                  else [np.array([i]) for i in items])
        for m in (1, 4, 15):
            alone = funnel._neighbour_search(index, factors[items], m, banned, one_by_one=True)
            together = funnel._neighbour_search(index, factors[items], m, banned,
                                                one_by_one=False)
            np.testing.assert_array_equal(alone, together)


def test_a_batch_of_users_lists_what_each_user_alone_gets(svd):
    config = FunnelConfig(n_candidates=4, recent_items=2, neighbours_per_item=3)
    users = np.arange(0, svd.model.n_users, 5)
    batch = funnel.funnel_batch(svd, users, config, k=6)
    for row, user in enumerate(users):
        alone = funnel.funnel_batch(svd, np.array([user]), config, k=6)
        np.testing.assert_array_equal(alone.items[0], batch.items[row])


def test_latest_likes_come_from_the_sorted_positives(svd):
    h = svd.known_positives
    for user in range(0, svd.model.n_users, 4):
        mine = h.user_index == user
        order = np.lexsort((-h.timestamps[mine],))  # newest first, ties in stored order
        want = h.item_index[mine][order][:5]
        got = funnel._recent_positives(svd, np.array([user]), 5)[0]
        np.testing.assert_array_equal(got[:len(want)], want)
        assert (got[len(want):] == -1).all()


# ---------------------------------------------------------------------------- fold-in
def test_the_cached_gram_folds_in_what_the_factors_fold_in(svd):
    config = ColdStartConfig()
    basis = svd.fold_in_basis()
    assert svd.fold_in_basis() is basis  # built once per catalogue
    q = svd.model.item_factors().astype(np.float64)
    np.testing.assert_allclose(basis.gram.numpy(), q.T @ q, rtol=1e-12)
    for liked, disliked in (([1, 2, 3], []), ([11, 14], [1]), ([5], [12, 13, 20])):
        got = fold_in(svd, liked, disliked, config)
        idx = svd.item_indices(liked)[None]
        bad = svd.item_indices(disliked).reshape(1, -1)
        want = ridge_fold_in(svd.model.item_factors(), idx, bad, **config.solver())[0]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        shown = cold_start(svd, liked, disliked, k=5, config=config).attrs["vector"]
        np.testing.assert_allclose(shown, want, rtol=1e-6, atol=1e-7)


def test_each_model_folds_in_against_its_own_gram(svd, bpr):
    """Two runs of the same shape (the same world): neither catalogue serves the other's Gram,
    and a torch model (whose item_factors() is a new array each call) still reuses its own."""
    assert svd.model.item_factors().shape == bpr.model.item_factors().shape
    assert bpr.fold_in_basis() is bpr.fold_in_basis()
    for ctx in (svd, bpr):
        q = ctx.model.item_factors().astype(np.float64)
        np.testing.assert_allclose(ctx.fold_in_basis().gram.numpy(), q.T @ q, rtol=1e-12)
    liked = [1, 2, 3, 4]
    vectors = {}
    for ctx in (svd, bpr):
        want = ridge_fold_in(ctx.model.item_factors(), ctx.item_indices(liked)[None])[0]
        vectors[ctx.model.name] = cold_start(ctx, liked, k=5).attrs["vector"]
        np.testing.assert_allclose(vectors[ctx.model.name], want, rtol=1e-6, atol=1e-7)
    assert not np.allclose(vectors["svd"], vectors["mf-bpr"])


def test_a_catalogue_whose_model_changed_builds_a_new_gram(svd, bpr):
    shared = Catalog(svd.run, svd.split, svd.movies)
    first = shared.fold_in_basis()
    swapped = Catalog(replace(svd.run, model=bpr.model), svd.split, svd.movies,
                      _indexes=shared._indexes)  # the same cache, another model
    assert swapped.fold_in_basis() is not first
    q = bpr.model.item_factors().astype(np.float64)
    np.testing.assert_allclose(swapped.fold_in_basis().gram.numpy(), q.T @ q, rtol=1e-12)


def test_a_basis_is_a_copy_and_must_fit_the_model(svd):
    q = svd.model.item_factors().astype(np.float64)
    basis = FoldInBasis.of(q)
    q[:] = 0.0  # changing the factors afterwards does not reach the basis
    assert np.abs(basis.q.numpy()).sum() > 0
    liked = np.array([[0, 1]])
    np.testing.assert_allclose(svd.model.fold_in(liked, basis=svd.fold_in_basis()),
                               svd.model.fold_in(liked), rtol=1e-6, atol=1e-7)
    wrong = FoldInBasis.of(svd.model.item_factors()[:-1])
    with pytest.raises(BadInputError, match="does not belong"):
        svd.model.fold_in(liked, basis=wrong)
