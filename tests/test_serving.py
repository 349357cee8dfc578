"""Serving on a synthetic two-taste world where every right answer is known."""

import numpy as np
import pandas as pd
import pytest

from recsys import serving
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
