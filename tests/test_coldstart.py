import numpy as np
import pytest

from bench.coldstart import choose_weights, measure, reveal
from recsys.data.interactions import Interactions
from recsys.errors import BadInputError
from recsys.serving.coldstart import (
    CURVE_LIKES,
    ColdStartConfig,
    blend,
    blend_weight,
    cold_start,
    coldstart_curve,
    content_matrix,
    content_scores,
    fold_in,
    fold_in_vectors,
    map_position,
    zscore_rows,
)
from tests.synthetic import block_of_item, block_of_user, fit, make_world

SCI_FI = [1, 2, 3, 4, 5, 6]  # block 0 of the synthetic world
ROMANCE = [11, 12, 13, 14, 15, 16]
PURE = ColdStartConfig(blend=1.0)


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


def test_fold_in_batches_agree(svd):
    q = svd.model.item_factors()
    liked = np.array([[0, 1, 2], [10, 11, 12]])
    batch = fold_in_vectors(q, liked)
    for row, items in zip(batch, liked, strict=True):
        # One user alone or in a batch: the same float64 solve, batched by another kernel.
        np.testing.assert_allclose(row, fold_in_vectors(q, items[None])[0], rtol=1e-5)


@pytest.mark.parametrize("name", ["svd", "mf-als", "mf-bpr"])
def test_fold_in_solves_its_normal_equations(name, tmp_path):
    """The folded-in vector is the minimiser the docstring promises, on any CPU: it solves
    ``(w0 Q^T Q + lam I + sum_l c_l q_l q_l^T) x = sum_liked q_l`` (confidence 1 on a like,
    ``disliked_weight`` on a dislike, ``w0`` on every other movie) to the rounding of a float32
    ``x``: a residual below 1e-6 of ``|A| |x|`` (float32 eps is 1.2e-7; the solve is float64)."""
    ctx = fit(make_world(), tmp_path, name, **({"als_lambda": 0.003} if name == "mf-als" else {}))
    config = ColdStartConfig()
    liked, disliked = [1, 2, 3, 12], [11, 14]
    x = fold_in(ctx, liked, disliked, config).astype(np.float64)
    q = ctx.model.item_factors().astype(np.float64)
    index = {item: i for i, item in enumerate(ctx.run.item_ids)}
    liked_q, disliked_q = q[[index[i] for i in liked]], q[[index[i] for i in disliked]]
    w0 = config.unobserved_weight
    lam = config.reg * (q * q).sum(1).mean()
    a = (w0 * q.T @ q + lam * np.eye(q.shape[1]) + (1 - w0) * liked_q.T @ liked_q
         + (config.disliked_weight - w0) * disliked_q.T @ disliked_q)
    b = liked_q.sum(0)
    residual = np.linalg.norm(a @ x - b)
    assert residual <= 1e-6 * np.linalg.norm(a, 2) * np.linalg.norm(x)
    assert np.linalg.norm(x) > 0.1  # a real vector, not a trivial zero


def test_a_hand_set_weight_of_one_is_purely_collaborative(svd):
    got = cold_start(svd, SCI_FI[:5], k=3, config=PURE)
    assert set(got["source"]) == {"collaborative"}
    assert got["weight_collaborative"].eq(1.0).all() and got["content"].isna().all()
    assert {block_of_item(i) for i in got["item_id"]} == {0}
    assert not set(got["item_id"]) & set(SCI_FI[:5])
    assert got.attrs["vector"].shape == (svd.model.item_factors().shape[1],)


def test_a_hand_set_blend_overrides_the_schedule(svd):
    few = cold_start(svd, [1, 2], k=4, config=ColdStartConfig(blend=0.4))
    assert few["weight_collaborative"].eq(0.4).all()
    assert few["content"].notna().all() and few["collaborative"].notna().all()
    np.testing.assert_allclose(few["score"], 0.4 * few["collaborative"] + 0.6 * few["content"])
    assert {block_of_item(i) for i in few["item_id"]} == {0}
    only_content = cold_start(svd, [1], k=3, config=ColdStartConfig(blend=0.0))
    assert set(only_content["source"]) == {"content"}
    with pytest.raises(ValueError, match="blend"):
        ColdStartConfig(blend=1.5)


def test_the_measured_schedule_is_used(svd):
    from recsys.models import MODELS
    from recsys.models.base import Recommender

    schedule = Recommender.blend_by_likes  # what a model the bench has not measured uses
    likes = sorted(schedule)
    for model, cls in MODELS.items():
        table = cls.blend_by_likes
        assert [blend_weight(n, model) for n in sorted(table)] == [table[n] for n in sorted(table)]
        assert min(table.values()) >= 0.4  # measured: content never dominates
        assert table[1] >= 0.9  # not even from one like
        assert blend_weight(1000, model) == table[max(table)]
    assert MODELS["mf-bpr"].blend_by_likes != schedule  # measured for itself
    assert blend_weight(4, "ncf") == pytest.approx((schedule[3] + schedule[5]) / 2)
    assert blend_weight(likes[-1] + 50, "ncf") == schedule[likes[-1]]
    with pytest.raises(BadInputError, match="unknown model"):
        blend_weight(4, "no-such-model")
    # svd's run reads its own measured weights (or the default schedule when unmeasured)
    for n in (1, 3, 5):
        got = cold_start(svd, SCI_FI[:n], k=3)
        assert got["weight_collaborative"].eq(blend_weight(n, "svd")).all()


def test_sources_say_which_term_placed_each_row(svd):
    collab, content = np.array([2.0, 0.0, 1.0, -1.0, 3.0]), np.array([0.0, 2.0, 1.0, 3.0, 1.0])
    score, source = blend(collab, content, 0.5)
    np.testing.assert_allclose(score, [1.0, 1.0, 1.0, 1.0, 2.0])
    assert source.tolist() == ["collaborative", "content", "both", "content", "collaborative"]
    assert blend(collab, content, 1.0)[1].tolist() == ["collaborative"] * 5
    # Nobody rated Star Trek (21): its svd vector is 0, so fold-in ranks nothing; content does
    trek = cold_start(svd, [21], k=6, config=ColdStartConfig(blend=0.5))
    assert trek["collaborative"].eq(0).all() and set(trek["source"]) == {"content"}
    assert trek["item_id"].iloc[0] == 22  # the other Star Trek
    got = cold_start(svd, SCI_FI[:2], k=20, config=ColdStartConfig(blend=0.5))
    a, b = 0.5 * got["collaborative"], 0.5 * got["content"]
    both = (np.minimum(a, b) > 0) & (2 * np.minimum(a, b) >= np.maximum(a, b))
    expected = np.where(both, "both", np.where(a >= b, "collaborative", "content"))
    assert got["source"].tolist() == expected.tolist()


def test_revealed_items_are_never_recommended(svd, knn):
    liked, disliked = SCI_FI[:3], [11, 12]
    for ctx in (svd, knn):
        for config in (ColdStartConfig(), ColdStartConfig(blend=0.0), PURE,
                       ColdStartConfig(blend=0.5)):
            got = cold_start(ctx, liked, disliked, k=100, config=config)
            assert not set(got["item_id"]) & set(liked + disliked)
            assert len(got) == ctx.model.n_items - 5


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


def test_zscores_ignore_banned_entries():
    values = np.array([[1.0, 2.0, 3.0, 100.0]])
    got = zscore_rows(values, np.array([[False, False, False, True]]))
    np.testing.assert_allclose(got[0, :3], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)])


def test_dislikes_and_item_item_models(svd, knn):
    got = cold_start(svd, SCI_FI[:5], disliked=[7], k=5)
    assert 7 not in set(got["item_id"])
    item_item = cold_start(knn, SCI_FI[:5], k=3, config=PURE)
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


def test_the_measured_curve_is_there_to_plot():
    curve = coldstart_curve()
    assert list(curve.columns) == ["model", "likes", "method", "recall@10"]
    assert set(curve["likes"]) == set(CURVE_LIKES)
    assert curve["recall@10"].between(0, 1).all()
    wide = curve.pivot_table(index=["model", "likes"], columns="method", values="recall@10")
    assert (wide["content"] < wide["collaborative"]).all()
    one = coldstart_curve("mf-als")
    assert set(one["model"]) == {"mf-als"} and {"blend", "collaborative"} <= set(one["method"])


# ---------------------------------------------------------------------- the bench's measure
def _new_users(ctx, liked_lists) -> Interactions:
    """Positives of users the model never saw, in the given time order."""
    users = np.repeat(np.arange(len(liked_lists)), [len(x) for x in liked_lists])
    items = np.array([ctx.item_index(i) for x in liked_lists for i in x])
    return Interactions(users, items, np.full(len(items), 5.0, np.float32),
                        np.arange(len(items), dtype=np.int64) * 10,
                        np.arange(1000, 1000 + len(liked_lists)), ctx.run.item_ids)


def test_reveal_shows_the_earliest_likes_and_holds_out_the_rest(svd):
    positives = _new_users(svd, [[3, 1, 2, 4], [11, 12]])
    users, revealed, held_out = reveal(positives, 2)
    assert users.tolist() == [0]  # the second user has no positive left to find
    assert svd.run.item_ids[revealed[0]].tolist() == [3, 1]
    assert sorted(svd.run.item_ids[held_out[0].indices]) == [2, 4]


def test_fold_in_from_two_likes_finds_the_rest_of_the_block(svd):
    sci_fi = [3, 9, 1, 2, 4, 5, 6, 7, 8, 10]  # the earliest two are well-known movies
    positives = _new_users(svd, [sci_fi, list(range(11, 21))])
    got = measure(svd.model, content_matrix(svd), positives, svd.item_counts, likes=(2,),
                  weights=(0.0, 0.5, 1.0)).set_index(["method", "w"])
    assert got.loc[("collaborative", 1.0), "recall@10"] == 1.0
    assert got.loc[("collaborative", 1.0), "users"] == 2
    assert got.loc[("blend", 1.0), "recall@10"] == 1.0
    assert got["recall@10"].between(0, 1).all()
    assert choose_weights(got.reset_index()) == {2: 1.0}  # ties go to fold-in


def test_liking_every_movie_leaves_nothing_and_says_so(svd):
    everything = svd.run.item_ids.tolist()
    with pytest.raises(BadInputError, match="none is left to recommend"):
        cold_start(svd, everything[:-3], everything[-3:], k=5)
    assert len(cold_start(svd, everything[:-1], k=5)) == 1  # one left: that one


def _map_of(catalog):
    from recsys.lessons.projection import project

    return project(catalog.model.item_factors(), "pca")  # cache_dir None: nothing written


def test_the_map_point_lies_on_the_users_direction_among_the_likes(svd):
    projection = _map_of(svd)
    coords = projection.coords
    blocks = np.array([block_of_item(i) for i in svd.run.item_ids])
    for liked, block in ((SCI_FI, 0), (ROMANCE, 1)):
        vector = fold_in(svd, liked)
        point = np.array(map_position(projection.pca_components, vector,
                                      coords[svd.item_indices(liked)]))
        arrow = projection.pca_components @ vector  # where scores rise across the map
        cosine = point @ arrow / (np.linalg.norm(point) * np.linalg.norm(arrow))
        # on the ray, not behind the centre (float32 vectors: a few ulps of 1.2e-7)
        assert cosine == pytest.approx(1.0, abs=1e-6)
        # among the block that was liked, not the other one
        own = np.linalg.norm(coords[blocks == block] - point, axis=1).mean()
        other = np.linalg.norm(coords[blocks == 1 - block] - point, axis=1).mean()
        assert own < other
        # only the direction counts: a fold-in with fewer likes is shorter, not elsewhere
        again = map_position(projection.pca_components, 7.5 * vector,
                             coords[svd.item_indices(liked)])
        np.testing.assert_allclose(again, point, rtol=1e-6, atol=1e-9)


def test_the_map_point_is_the_least_squares_depth_along_the_ray():
    components = np.eye(2, 3)  # the map is the first two coordinates
    liked = np.array([[3.0, 1.0], [3.0, -1.0], [6.0, 0.0]])
    # Sum of squared distances to the liked points along the ray t * (1, 0) is least at
    # t = mean of their x: 4.
    assert map_position(components, np.array([2.0, 0.0, 5.0]), liked) == pytest.approx((4, 0))
    # movies liked behind the user's direction do not pull the point through the centre
    assert map_position(components, np.array([-1.0, 0.0, 0.0]), liked) == (0.0, 0.0)
    # a direction the map cannot show (orthogonal to both axes) stays at the centre
    assert map_position(components, np.array([0.0, 0.0, 1.0]), liked) == (0.0, 0.0)
