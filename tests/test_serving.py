"""Serving on a synthetic two-taste world where every right answer is known."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation import lenses
from recsys.evaluation import neighbours as nb
from recsys.serving import catalog as serving
from tests.numeric import assert_ranking_is_stable, dot_rounding_bound
from tests.synthetic import (
    block_of_item,
    block_of_user,
    fit,
    make_world,
)


@pytest.fixture(scope="module")
def world():
    return make_world()


@pytest.fixture(scope="module")
def svd(world, tmp_path_factory):
    return fit(world, tmp_path_factory.mktemp("runs"), "svd")


@pytest.fixture(scope="module")
def bpr(world, tmp_path_factory):
    return fit(world, tmp_path_factory.mktemp("runs"), "mf-bpr")


@pytest.fixture(scope="module")
def knn(world, tmp_path_factory):
    return fit(world, tmp_path_factory.mktemp("runs"), "itemknn")


@pytest.mark.parametrize("scoring", ["dot", "cosine"])
def test_recommendations_come_from_the_users_block(svd, scoring):
    for user_id in (3, 33):
        recs = serving.recommend(svd, user_id, k=2, scoring=scoring)
        assert list(recs.columns) == ["rank", "item_id", "title", "year", "genres", "score"]
        assert recs["rank"].tolist() == [1, 2]
        assert {block_of_item(i) for i in recs["item_id"]} == {block_of_user(user_id)}
        seen = set(svd.run.item_ids[svd.seen[svd.user_index(user_id)].indices])
        assert not seen & set(recs["item_id"])
        assert recs["score"].is_monotonic_decreasing


def test_cosine_needs_user_embeddings(knn):
    with pytest.raises(ValueError, match="no user embeddings"):
        serving.recommend(knn, 3, scoring="cosine")
    assert len(serving.recommend(knn, 3, k=3)) == 3  # dot works for any model


def test_explanations_point_into_the_users_history(svd, knn):
    for ctx in (svd, knn):
        recs = serving.recommend(ctx, 5, k=3, explain=True)
        history = set(ctx.run.item_ids[ctx.seen[ctx.user_index(5)].indices])
        for reasons in recs["because_items"]:
            assert 1 <= len(reasons) <= 3
            assert {item for item, _, _ in reasons} <= history
            assert block_of_item(reasons[0][0]) == 0  # the closest reason shares the taste
            sims = [s for _, _, s in reasons]
            assert sims == sorted(sims, reverse=True)


def test_mf_score_decomposition_adds_up(bpr):
    recs = serving.recommend(bpr, 25, k=5, explain=True)
    parts = recs["dot"] + recs["item_bias"] + recs["user_bias"]
    np.testing.assert_allclose(parts, recs["score"], rtol=1e-4, atol=1e-5)


def test_similar_movies_in_both_spaces(svd, knn):
    result = serving.similar_movies(svd, 4, k=5)
    assert result.movie["item_id"] == 4
    assert {block_of_item(i) for i in result.embedding["item_id"]} == {0}
    assert {block_of_item(i) for i in result.cooccurrence["item_id"]} == {0}
    assert 4 not in set(result.embedding["item_id"]) | set(result.cooccurrence["item_id"])
    assert set(result.overlap) == (set(result.embedding["item_id"])
                                   & set(result.cooccurrence["item_id"]))
    assert result.embedding["score"].is_monotonic_decreasing
    only_cooc = serving.similar_movies(knn, "alpha space 4", k=5)
    assert only_cooc.embedding is None and "co-occurrence only" in only_cooc.note
    assert {block_of_item(i) for i in only_cooc.cooccurrence["item_id"]} == {0}


def test_similar_users_share_the_taste(svd, knn):
    for ctx in (svd, knn):
        near = serving.similar_users(ctx, 30, k=5)
        assert {block_of_user(u) for u in near["user_id"]} == {1}
        assert 30 not in set(near["user_id"])
        assert (near["n_shared"] > 0).all()
        assert all(block_of_item(int(t.split()[2])) == 1 for t in near["shared"][0])


def test_title_search_is_forgiving(svd):
    assert serving.find_movies(svd, "ALPHA space 7")["item_id"].tolist() == [7]
    assert serving.resolve_movie(svd, "star trek 1982") == svd.item_index(22)
    assert serving.resolve_movie(svd, "Star Trek II (1982)") == svd.item_index(22)
    assert serving.resolve_movie(svd, "17") == svd.item_index(17)
    with pytest.raises(serving.AmbiguousMovieError) as err:
        serving.resolve_movie(svd, "star trek")
    assert set(err.value.candidates["item_id"]) == {21, 22}
    assert "Star Trek II (1982) [id 22]" in str(err.value)
    with pytest.raises(ValueError, match="no movie title contains"):
        serving.resolve_movie(svd, "casablanca")


def test_article_moved_to_the_front():
    assert serving._article_first("godfather, the") == "the godfather"
    assert serving._parse_query("  Star Wars (1977) ") == ("star wars", 1977)
    assert serving._parse_query("1984") == ("1984", None)


def test_unknown_ids_raise(svd):
    with pytest.raises(ValueError, match="unknown user id 999"):
        serving.recommend(svd, 999)
    with pytest.raises(ValueError, match="unknown movie id 999"):
        serving.similar_movies(svd, 999)
    with pytest.raises(ValueError, match="unknown user id"):
        serving.similar_users(svd, 0)
    with pytest.raises(ValueError, match="scoring"):
        serving.recommend(svd, 1, scoring="l2")


def test_catalog_refuses_other_data(svd):
    other = make_world(seed=1)
    with pytest.raises(ValueError, match="fingerprint"):
        serving.Catalog.build(svd.run, other)


def test_title_without_its_article_is_an_exact_match():
    movies = pd.DataFrame({
        "item_id": [127, 187], "title": ["Godfather, The (1972)", "Godfather: Part II, The (1974)"],
        "year": pd.array([1972, 1974], dtype="Int64"), "genres": ["Drama", "Drama"],
        "popularity": [413, 209],
    })
    catalog = serving.Catalog(run=None, split=None, movies=movies)
    found = serving.find_movies(catalog, "godfather")
    assert found["title"].tolist()[0] == "Godfather, The (1972)"
    assert found.attrs["exact"].tolist() == [True, False]
    assert serving.find_movies(catalog, "the godfather").attrs["exact"][0]


def test_a_seen_movie_is_not_explained_by_itself(bpr):
    user_id = int(bpr.run.user_ids[0])
    seen_item = int(bpr.seen[0].indices[0])
    explained = serving.explain_items(bpr, user_id, np.array([seen_item]))
    reasons = explained["because_items"][0]
    assert reasons and all(item != bpr.run.item_ids[seen_item] for item, _, _ in reasons)


@pytest.mark.parametrize("lens", serving.EMBEDDING_LENSES)
def test_every_lens_finds_the_movies_block(svd, lens):
    result = serving.similar_movies(svd, 4, k=5, lens=lens)
    assert result.lens == lens and set(result.embedding["lens"]) == {lens}
    if lens != "debiased":  # here the top principal axis is the taste itself, not popularity
        assert {block_of_item(i) for i in result.embedding["item_id"]} == {0}
    assert result.embedding["score"].is_monotonic_decreasing
    assert set(result.cooccurrence["lens"]) == {serving.COOCCURRENCE_LENS}
    popularity = svd.movies.set_index("item_id")["popularity"]
    for frame in (result.embedding, result.cooccurrence):
        assert frame["popularity"].tolist() == popularity[frame["item_id"]].tolist()
    assert set(serving.LENS_DESCRIPTIONS) == {*serving.EMBEDDING_LENSES,
                                              serving.COOCCURRENCE_LENS}


@pytest.mark.parametrize("name", serving.EMBEDDING_LENSES)
def test_one_lens_object_serving_and_the_measure_rank_alike(bpr, name):
    """FAISS serving (float32) lists what the neighbour-quality measure ranks with the same
    :class:`~recsys.evaluation.lenses.Lens` (numpy, float64): the same movies, in order, where
    no two scores lie within float32 rounding (checked), and the same scores to that bound."""
    lens = lenses.lens(name)
    item = bpr.item_index(4)
    co_liked = nb.relative_co_likes(bpr.seen) if lens.co_likes else None  # the hybrid lens
    sims = lens.similarity(bpr.item_factors("test"), bpr.seen, co_liked)(np.array([item]))[0]
    sims[np.flatnonzero(bpr.item_counts < nb.MIN_POSITIVES)] = -np.inf
    sims[item] = -np.inf
    expected = np.argsort(-sims, kind="stable")[:6]
    searched = lens.vectors(bpr.item_factors("test"), bpr.seen)
    if lens.metric == "cosine":
        searched = searched / np.linalg.norm(searched, axis=1, keepdims=True)
    bound = dot_rounding_bound(searched, searched)
    assert_ranking_is_stable(sims[expected][None], bound)
    result = serving.similar_movies(bpr, 4, k=5, lens=name)
    assert result.lens == name
    assert result.embedding["item_id"].tolist() == bpr.run.item_ids[expected[:5]].tolist()
    np.testing.assert_allclose(result.embedding["score"], sims[expected[:5]], rtol=0,
                               atol=bound)


def test_cooccurrence_list_is_the_damped_one(knn):
    item = knn.item_index(12)
    x = knn.seen.toarray() > 0
    n = x.sum(axis=0)
    slow = {}
    for other in range(x.shape[1]):
        co = int((x[:, item] & x[:, other]).sum())
        if other != item and co > 0 and n[other] >= nb.MIN_POSITIVES:
            slow[other] = co / ((n[item] * n[other]) ** nb.COOC_BETA + nb.COOC_SHRINK)
    expected = sorted(slow, key=lambda j: (-slow[j], j))[:6]
    result = serving.similar_movies(knn, 12, k=6)
    assert result.cooccurrence["item_id"].tolist() == knn.run.item_ids[expected].tolist()
    np.testing.assert_allclose(result.cooccurrence["score"], [slow[j] for j in expected])


def test_rare_movies_are_never_neighbours(svd):
    floor = int(np.sort(svd.item_counts[svd.item_counts > 0])[5])  # drops a few movies
    result = serving.similar_movies(svd, 4, k=19, min_positives=floor)
    for frame in (result.embedding, result.cooccurrence):
        counts = svd.item_counts[[svd.item_index(i) for i in frame["item_id"]]]
        assert (counts >= floor).all() and len(frame) > 0
    assert len(serving.similar_movies(svd, 4, k=19).embedding) == 19  # 21 rated-or-not - 2


def test_old_scoring_name_and_unknown_lens(svd):
    assert serving.similar_movies(svd, 4, k=3, scoring="dot").lens == "dot"
    with pytest.raises(ValueError, match="unknown lens 'l2'"):
        serving.similar_movies(svd, 4, lens="l2")


def test_records_are_plain_json(svd, knn):
    for ctx in (svd, knn):
        result = serving.similar_movies(ctx, 4, k=3)
        payload = result.to_dict()
        text = json.dumps(payload, allow_nan=False)
        assert json.loads(text) == payload
        rows = payload["cooccurrence"]
        assert {"rank", "item_id", "title", "score", "popularity", "lens"} <= set(rows[0])
        assert all(type(row["item_id"]) is int and type(row["score"]) is float for row in rows)
    assert payload["embedding"] is None and payload["lens"] is None  # knn: no embeddings
    frame = pd.DataFrame({"x": [np.float32(np.inf), np.nan], "y": pd.array([1, None], "Int64")})
    assert serving.as_records(frame) == [{"x": None, "y": 1}, {"x": None, "y": None}]


def test_popularity_gives_no_made_up_reasons(world, tmp_path):
    ctx = fit(world, tmp_path, "popularity")
    recs = serving.recommend(ctx, 1, k=5, explain=True)
    assert len(recs) == 5
    assert recs["because_items"].map(len).eq(0).all() and recs["because"].eq("").all()


def test_a_title_listed_under_two_ids_is_told_apart(world):
    from dataclasses import replace

    from recsys.data.loading import movies_for

    movies = world.movies.copy()
    twin = movies.loc[movies["item_id"] == 1, "title"].iloc[0]
    movies.loc[movies["item_id"] == 2, "title"] = twin
    table = movies_for(replace(world, movies=movies), np.arange(1, 23))
    first, second = table.loc[table["item_id"].isin([1, 2]), "title"]
    assert first != second and first.endswith("· id 1") and second.endswith("· id 2")
    assert table["title"].is_unique
