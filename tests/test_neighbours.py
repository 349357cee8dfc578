"""Neighbour quality: the fast measure against slow loops, known answers, and the lenses."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr

from recsys.evaluation import lenses
from recsys.evaluation import neighbours as nb
from recsys.linalg import cosine_item_similarity
from recsys.models import create_model
from recsys.models.config import TrainConfig


def reference_quality(neighbours, items, genres, popularity, heldout, pool):
    """Slow, obviously-correct loops over pairs and users."""
    n_genres = genres.shape[1]
    share = [sum(genres[j, g] for j in pool) / len(pool) for g in range(n_genres)]
    weight = [-math.log(s) if s > 0 else 0.0 for s in share]

    def jaccard(a, b):
        inter = sum(weight[g] for g in range(n_genres) if genres[a, g] and genres[b, g])
        union = sum(weight[g] for g in range(n_genres) if genres[a, g] or genres[b, g])
        return inter / union if union > 0 else 0.0

    pairs = [(q, n) for q, row in zip(items, neighbours, strict=True) for n in row]
    agreement = np.mean([jaccard(q, n) for q, n in pairs])
    chance = np.mean([jaccard(q, c) for q in items for c in pool if c != q])

    def percentile(i):
        below = sum(popularity[j] < popularity[i] for j in pool)
        ties = sum(popularity[j] == popularity[i] for j in pool)
        return (below + ties / 2) / len(pool) * 100

    liked = [set(np.flatnonzero(heldout[u])) for u in range(heldout.shape[0])]

    def co_liked(a, b):
        return a != b and any(a in s and b in s for s in liked)

    share_pairs = np.mean([co_liked(q, n) for q, n in pairs])
    slots = [n for row in neighbours for n in row]
    shuffled = np.mean([co_liked(q, n) for q in items for n in slots])
    k = neighbours.shape[1]
    rho = spearmanr([k - r for _ in items for r in range(k)],
                    [popularity[n] for _, n in pairs])[0]
    return {
        "genre_agreement": agreement,
        "genre_lift": agreement / chance,
        "popularity_pct": float(np.median([percentile(n) for _, n in pairs])),
        "popularity_spearman": rho,
        "cowatch_share": share_pairs,
        "cowatch_lift": share_pairs / shuffled,
    }


def test_measure_matches_reference():
    rng = np.random.default_rng(0)
    n_items, k = 25, 4
    genres = rng.random((n_items, 5)) < 0.3
    popularity = rng.integers(1, 30, n_items)
    heldout = rng.random((40, n_items)) < 0.15
    pool = np.arange(2, n_items)
    items = pool[rng.permutation(len(pool))[:15]]
    neighbours = np.array([rng.choice(pool[pool != q], k, replace=False) for q in items])
    fast = nb.neighbour_quality(neighbours, items, genres, popularity,
                                sp.csr_matrix(heldout), pool=pool)
    slow = reference_quality(neighbours, items, genres, popularity, heldout, pool)
    assert fast.keys() == slow.keys()
    for name, value in slow.items():
        assert math.isclose(fast[name], value, rel_tol=1e-9, abs_tol=1e-12), name


def two_blocks(n_users=60, per_block=10, seed=0):
    """Users like most of one genre block; block A is far more popular than block B."""
    rng = np.random.default_rng(seed)
    n_items = 2 * per_block
    block = np.repeat([0, 1], per_block)
    user_block = (np.arange(n_users) >= int(n_users * 0.8)).astype(int)  # 80% like block A
    likes = (block[None, :] == user_block[:, None]) & (rng.random((n_users, n_items)) < 0.7)
    genres = np.zeros((n_items, 3), bool)
    genres[:, 0] = True  # a genre every movie has ("Drama") carries no weight
    genres[np.arange(n_items), 1 + block] = True
    return sp.csr_matrix(likes.astype(np.float32)), genres, block


def test_known_answer_good_lens_scores_high_popularity_lens_low():
    known, genres, block = two_blocks(seed=0)
    heldout, _, _ = two_blocks(seed=1)
    items = np.arange(known.shape[1])
    popularity = nb.item_counts(known)
    quality = {}
    for name, lens in {"cosine": nb.cooccurrence_lens(known),
                       "popularity": nb.popularity_lens(known)}.items():
        neighbours = nb.top_k_neighbours(lens, items, k=5)
        quality[name] = nb.neighbour_quality(neighbours, items, genres, popularity, heldout)
    good, popular = quality["cosine"], quality["popularity"]
    assert good["genre_agreement"] == pytest.approx(1.0)
    assert good["genre_lift"] == pytest.approx(19 / 9)  # chance: 9 of 19 others share
    assert popular["genre_agreement"] == pytest.approx(0.5)  # right for block A only
    assert popular["popularity_pct"] > 70 and popular["popularity_spearman"] > 0.9
    assert good["cowatch_lift"] > 1.5 > popular["cowatch_lift"]
    # (nearly) the same list for every query: co-liked no more than when shuffled
    assert popular["cowatch_lift"] == pytest.approx(1.0, abs=0.15)


def test_blocked_top_k_matches_argsort():
    rng = np.random.default_rng(3)
    sims = rng.normal(size=(37, 37))
    items = np.sort(rng.choice(37, 23, replace=False))
    fast = nb.top_k_neighbours(lambda block: sims[block], items, k=6, block=5)
    sub = sims[np.ix_(items, items)]
    np.fill_diagonal(sub, -np.inf)
    expected = items[np.argsort(-sub, axis=1, kind="stable")[:, :6]]
    np.testing.assert_array_equal(fast, expected)


@pytest.mark.parametrize("levels", [None, 3, 12])
def test_top_k_keeps_the_full_sorts_order_with_ties(levels):
    """The partition shortcut gives the full stable sort's list, ties at the k-th score
    included: rounded similarities (3 or 12 distinct values) tie often, and duplicated
    item vectors give equal rows; -inf for items a lens never saw too."""
    rng = np.random.default_rng(7)
    sims = rng.normal(size=(60, 60))
    if levels is not None:
        sims = np.round(sims * levels / 4) / levels
    sims[:, 10] = sims[:, 11]  # two items every query scores alike
    sims[5:8] = -np.inf        # queries that score nothing
    items = np.arange(60)
    for k in (1, 5, 9):
        fast = nb.top_k_neighbours(lambda block: sims[block], items, k=k, block=16)
        sub = sims.copy()
        np.fill_diagonal(sub, -np.inf)
        expected = np.argsort(-sub, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(fast, expected)


def test_top_k_refuses_nan_and_too_small_catalogues():
    with pytest.raises(ValueError, match="NaN"):
        nb.top_k_neighbours(lambda block: np.full((len(block), 4), np.nan), np.arange(4), 2)
    with pytest.raises(ValueError, match="more than"):
        nb.top_k_neighbours(lambda block: np.zeros((len(block), 4)), np.arange(4), 4)


@pytest.mark.parametrize("model", ["svd", "ease", "itemknn"])
def test_every_lens_excludes_the_query(block_split, model):
    fitted = create_model(TrainConfig.for_model(model, dim=4, refit=False)).fit(block_split)
    known = block_split.train_pos.to_csr()
    items = nb.catalogue(known, min_positives=1)
    names = ["cooc-cosine", "cooc-damped", "popularity"]
    names += ["weights"] if fitted.item_item_weights() is not None else []
    names += ["cosine", "centred", "debiased"] if fitted.item_factors() is not None else []
    for name in names:
        neighbours = nb.top_k_neighbours(nb.lens_from_model(name, fitted, known), items, k=5)
        assert not (neighbours == items[:, None]).any(), name
        assert all(len(set(row)) == 5 for row in neighbours), name


def test_lens_needs_what_it_reads(block_split):
    fitted = create_model(TrainConfig.for_model("svd", dim=4, refit=False)).fit(block_split)
    with pytest.raises(ValueError, match="no item-item weights"):
        nb.lens_from_model("weights", fitted, block_split.train_pos.to_csr())


def test_unknown_lens_names_the_choices(block_split):
    with pytest.raises(ValueError, match="choose one of"):
        nb.lens_from_model("telepathy", None, block_split.train_pos.to_csr())


def test_debiased_lens_ignores_the_popularity_direction():
    rng = np.random.default_rng(0)
    block = np.repeat(np.arange(6), 5)  # six tastes, each with a blockbuster and a rarity
    counts = np.tile([3, 10, 40, 150, 600], 6)
    known = sp.csr_matrix((np.arange(1000)[:, None] < counts[None, :]).astype(np.float32))
    # a strong popularity axis plus a weaker taste axis per block: cosine pairs blockbusters
    vectors = np.column_stack([np.log(counts), np.eye(6)[block]])
    vectors += rng.normal(scale=0.01, size=vectors.shape)
    items = np.arange(len(block))
    same = {}
    for name, lens in {"cosine": nb.cosine_lens(vectors),
                       "debiased": lenses.lens("debiased").similarity(vectors, known)}.items():
        neighbours = nb.top_k_neighbours(lens, items, k=3)
        same[name] = (block[neighbours] == block[:, None]).mean()
    assert same["debiased"] == 1.0
    assert same["cosine"] < 0.95


def test_cooccurrence_lens_spans_counts_cosine_and_lift():
    known, _, _ = two_blocks()
    items = np.arange(known.shape[1])
    co = (known.T @ known).toarray()
    np.testing.assert_allclose(nb.cooccurrence_lens(known, beta=0.0)(items), co)
    cosine = cosine_item_similarity(known).toarray()
    off = ~np.eye(len(items), dtype=bool)
    np.testing.assert_allclose(nb.cooccurrence_lens(known)(items)[off], cosine[off], rtol=1e-5)
    n = nb.item_counts(known)
    lift = nb.cooccurrence_lens(known, beta=1.0, min_count=30)(items)
    np.testing.assert_allclose(lift, np.where(co >= 30, co / np.outer(n, n), 0.0))


def test_genre_matrix_skips_unknown():
    g = nb.genre_matrix(["Comedy|Drama", "unknown", "", "Drama"])
    assert g.shape == (4, 2)
    assert g.tolist() == [[True, True], [False, False], [False, False], [False, True]]


def test_debiased_vectors_have_no_mean_or_top_direction():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(30, 5)) + np.outer(rng.normal(size=30) * 4, rng.normal(size=5))
    known = sp.csr_matrix(rng.random((40, 30)) < 0.3)
    out = lenses.debiased_vectors(vectors, known)
    seen = nb.item_counts(known) > 0
    centred = vectors - vectors[seen].mean(axis=0)
    top = np.linalg.svd(centred[seen], full_matrices=False)[2][0]
    np.testing.assert_allclose(out @ top, 0.0, atol=1e-10)
    np.testing.assert_allclose(out[seen].mean(axis=0), 0.0, atol=1e-10)
    items = np.arange(30)
    np.testing.assert_allclose(lenses.lens("debiased").similarity(vectors, known)(items),
                               nb.cosine_lens(out)(items))


def test_run_neighbour_quality_is_the_measure_of_the_models_own_lens(block_split):
    genres = ["Sci-Fi|Action" if i < block_split.train.n_items // 2 else "Romance"
              for i in range(block_split.train.n_items)]
    movies = pd.DataFrame({"genres": genres})
    known = block_split.seen_at_test.to_csr()
    items = nb.catalogue(known)
    for name, lens in (("svd", "cosine"), ("itemknn", "weights")):
        model = create_model(TrainConfig.for_model(name, dim=4, refit=False)).fit(block_split)
        got = nb.run_neighbour_quality(model, block_split, movies, k=3)
        assert list(got) == [f"nq_{key}@3" for key in nb.RUN_KEYS]
        neighbours = nb.top_k_neighbours(nb.lens_from_model(lens, model, known), items, 3)
        direct = nb.neighbour_quality(neighbours, items, nb.genre_matrix(genres),
                                      nb.item_counts(known), block_split.test_pos.to_csr())
        assert got["nq_genre_lift@3"] == pytest.approx(direct["genre_lift"])
        assert got["nq_cowatch_lift@3"] == pytest.approx(direct["cowatch_lift"])
        assert got["nq_head_genre_lift@3"] == got["nq_genre_lift@3"]  # head = all < HEAD
        assert got["nq_genre_lift@3"] > 1.5  # the blocks are the genres
    popularity = create_model(TrainConfig.for_model("popularity")).fit(block_split)
    assert nb.run_neighbour_quality(popularity, block_split, movies) == dict.fromkeys(
        [f"nq_{key}@10" for key in nb.RUN_KEYS])


def test_every_model_names_a_serving_lens_exactly_when_it_has_item_vectors():
    from recsys.evaluation.lenses import EMBEDDING_LENSES
    from recsys.models import MODELS

    for name, cls in MODELS.items():
        assert (cls.default_lens in EMBEDDING_LENSES) == cls.item_vectors, name
        assert cls.default_lens is not None or not cls.item_vectors, name
    assert MODELS["mf-bpr"].default_lens == "debiased"  # measured in bench/NEIGHBOURS.md


def test_the_hybrid_lens_needs_and_adds_the_relative_co_likes():
    """Co-likes relative to each query's largest: 1 for its most co-liked movie, 0 for the
    query itself and for movies too rare to be neighbours; the hybrid lens is the debiased
    cosine plus them, and refuses to be built without them."""
    known, _, _ = two_blocks()
    known = known.tolil()
    known[:, 3] = 0.0  # a movie nobody liked: too rare to be anyone's neighbour
    known = known.tocsr()
    items = np.arange(known.shape[1])
    relative = nb.relative_co_likes(known)(items)
    damped = nb.damped_cooccurrence(known)(items)
    rare = nb.item_counts(known) < nb.MIN_POSITIVES
    assert rare[3] and (relative[:, rare] == 0).all() and (np.diag(relative) == 0).all()
    for query in np.flatnonzero(~rare):
        allowed = ~rare & (items != query)
        best = damped[query, allowed].max()
        np.testing.assert_allclose(relative[query, allowed], damped[query, allowed] / best)
    hybrid = lenses.lens("hybrid")
    factors = np.random.default_rng(0).normal(size=(known.shape[1], 4))
    with pytest.raises(ValueError, match="co-likes"):
        hybrid.similarity(factors, known)
    plain = lenses.lens("debiased").similarity(factors, known)(items)
    both = hybrid.similarity(factors, known, nb.relative_co_likes(known))(items)
    np.testing.assert_allclose(both, plain + hybrid.co_likes * relative)
