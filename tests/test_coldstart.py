import time

import numpy as np
import pytest

from recsys.coldstart import ColdStartConfig, cold_start, content_scores, fold_in
from tests.synthetic import block_of_item, block_of_user, fit, make_world

SCI_FI = [1, 2, 3, 4, 5, 6]  # block 0 of the synthetic world
ROMANCE = [11, 12, 13, 14, 15, 16]


@pytest.fixture(scope="module")
def svd(tmp_path_factory):
    return fit(make_world(), tmp_path_factory.mktemp("runs"), "svd")


@pytest.fixture(scope="module")
def knn(tmp_path_factory):
    return fit(make_world(), tmp_path_factory.mktemp("runs"), "itemknn")


def test_fold_in_lands_near_users_with_the_same_taste(svd):
    users = svd.model.user_factors()
    unit = users / np.linalg.norm(users, axis=1, keepdims=True)
    for liked, block in ((SCI_FI, 0), (ROMANCE, 1)):
        vector = fold_in(svd, liked)
        nearest = np.argsort(-(unit @ (vector / np.linalg.norm(vector))))[:10]
        assert {block_of_user(u) for u in svd.run.user_ids[nearest]} == {block}


def test_fold_in_is_fast(svd):
    times = []
    for _ in range(20):
        start = time.perf_counter()
        fold_in(svd, SCI_FI, disliked=[11])
        times.append(time.perf_counter() - start)
    assert np.median(times) < 0.05


def test_enough_likes_is_purely_collaborative(svd):
    got = cold_start(svd, SCI_FI[:5], k=3)
    assert set(got["source"]) == {"collaborative"}
    assert got["weight_collaborative"].eq(1.0).all() and got["content"].isna().all()
    assert {block_of_item(i) for i in got["item_id"]} == {0}
    assert not set(got["item_id"]) & set(SCI_FI[:5])
    assert got.attrs["vector"].shape == (svd.model.item_factors().shape[1],)


def test_content_blends_in_below_the_threshold(svd):
    config = ColdStartConfig(min_likes=5)
    few = cold_start(svd, [1, 2], k=4, config=config)
    assert few["weight_collaborative"].eq(0.4).all()
    assert few["content"].notna().all() and few["collaborative"].notna().all()
    np.testing.assert_allclose(few["score"], 0.4 * few["collaborative"] + 0.6 * few["content"])
    assert {block_of_item(i) for i in few["item_id"]} == {0}
    only_content = cold_start(svd, [1], k=3, config=ColdStartConfig(min_likes=1000))
    assert set(only_content["source"]) == {"content"}
    at_threshold = cold_start(svd, [1, 2], k=3, config=ColdStartConfig(min_likes=2))
    assert set(at_threshold["source"]) == {"collaborative"}


def test_no_likes_means_popularity(svd):
    got = cold_start(svd, [], disliked=[1], k=5)
    assert set(got["source"]) == {"popularity"}
    assert 1 not in set(got["item_id"])
    counts = svd.item_counts[[svd.item_index(i) for i in got["item_id"]]]
    assert np.all(np.diff(counts) <= 0)


def test_content_scores_follow_titles_and_genres(svd):
    scores = content_scores(svd, np.array([svd.item_index(21)]))  # Star Trek: The Motion ...
    order = svd.run.item_ids[np.argsort(-scores)]
    assert order[0] == 21 and order[1] == 22  # the other Star Trek: title words + genre
    assert block_of_item(order[2]) == 0  # then the sci-fi genre


def test_dislikes_and_item_item_models(svd, knn):
    got = cold_start(svd, SCI_FI[:5], disliked=[7], k=5)
    assert 7 not in set(got["item_id"])
    item_item = cold_start(knn, SCI_FI[:5], k=3)
    assert {block_of_item(i) for i in item_item["item_id"]} == {0}
    assert item_item.attrs["vector"] is None
    with pytest.raises(ValueError, match="dot-product model"):
        fold_in(knn, SCI_FI)


def test_bad_inputs_raise(svd):
    with pytest.raises(ValueError, match="unknown movie id 999"):
        cold_start(svd, [1, 999])
    with pytest.raises(ValueError, match="both liked and disliked"):
        cold_start(svd, [1, 2], disliked=[2])
    with pytest.raises(ValueError):
        ColdStartConfig(reg=0)
