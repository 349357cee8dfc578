"""Score anatomy on the synthetic two-taste world: the parts add up to the model's score."""

import numpy as np
import pytest

from recsys.lessons import anatomy
from recsys.models import model_names
from recsys.models.registry import MODELS
from recsys.serving import catalog as serving
from tests.synthetic import fit, make_world

SPLITTABLE = tuple(name for name in model_names() if anatomy.has_anatomy(MODELS[name]))


@pytest.fixture(scope="module")
def world():
    return make_world()


@pytest.fixture(scope="module")
def catalogs(world, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {name: fit(world, root, name) for name in (*SPLITTABLE, "popularity", "itemknn",
                                                      "ease", "ncf")}


def test_the_models_with_vectors_and_a_sum_score_are_the_splittable_ones():
    assert set(SPLITTABLE) == {"mf-bpr", "mf-bce", "mf-mse", "mf-als", "svd"}


@pytest.mark.parametrize("name", SPLITTABLE)
def test_parts_add_up_to_the_models_score(catalogs, name):
    ctx = catalogs[name]
    scores = ctx.model.score(np.arange(ctx.model.n_users))
    for user_id in (3, 27):
        for item_id in (1, 12, 20):
            parts = anatomy.score_anatomy(ctx, user_id, item_id)
            expected = scores[ctx.user_index(user_id), ctx.item_index(item_id)]
            assert parts.score == pytest.approx(expected, abs=1e-5)
            assert sum(parts.parts.values()) == pytest.approx(parts.score, abs=1e-5)
            assert parts.contributions.sum() == pytest.approx(parts.parts[anatomy.DOT], abs=1e-9)
            up, down = parts.dot_by_sign()
            assert up >= 0 >= down and up + down == pytest.approx(parts.parts[anatomy.DOT])
            table = parts.parts_frame()
            assert table["part"].iloc[-1] == "score"


def test_bias_parts_follow_the_models_score_kind(catalogs):
    assert list(anatomy.score_anatomy(catalogs["svd"], 3, 1).parts) == [anatomy.DOT]
    assert list(anatomy.score_anatomy(catalogs["mf-bce"], 3, 1).parts) == [
        anatomy.DOT, "item bias", "user bias"]
    assert list(anatomy.score_anatomy(catalogs["mf-mse"], 3, 1).parts) == [
        anatomy.DOT, "item bias", "user bias", "global mean"]


def test_top_dimensions_are_the_largest_products_of_each_sign(catalogs):
    parts = anatomy.score_anatomy(catalogs["mf-bpr"], 3, 1)
    top = parts.top_dimensions(n=2)
    c = parts.contributions
    positive, negative = top[top["contribution"] > 0], top[top["contribution"] < 0]
    assert positive["dimension"].tolist() == [d for d in np.argsort(-c)[:2] if c[d] > 0]
    assert negative["dimension"].tolist() == [d for d in np.argsort(c)[:2] if c[d] < 0][::-1]
    assert np.allclose(top["user"] * top["movie"], top["contribution"])
    assert top["contribution"].is_monotonic_decreasing


def test_heatmap_orders_dimensions_by_their_weight_in_the_scores(catalogs):
    ctx = catalogs["svd"]
    recs = serving.recommend(ctx, 3, k=4)
    heat = anatomy.vector_heatmap(ctx, 3, recs["item_id"])
    assert heat.index.tolist() == ["user", *recs["item_id"].tolist()]
    u = ctx.model.user_factors()[ctx.user_index(3)]
    dims = [int(c[1:]) for c in heat.columns]
    assert sorted(dims) == list(range(len(u)))
    assert np.allclose(heat.loc["user"].to_numpy(), u[dims])
    v = ctx.model.item_factors()[ctx.item_indices(recs["item_id"])]
    weight = np.abs(v * u).mean(axis=0)[dims]
    assert np.all(np.diff(weight) <= 1e-12)
    assert anatomy.vector_heatmap(ctx, 3, recs["item_id"], n_dims=2).shape == (5, 2)


@pytest.mark.parametrize("name", ["popularity", "itemknn", "ease", "ncf"])
def test_models_whose_score_does_not_split_get_a_sentence(catalogs, name):
    ctx = catalogs[name]
    assert not anatomy.has_anatomy(ctx.model)
    sentence = anatomy.score_sentence(ctx.model)
    assert sentence.startswith(name) and sentence.endswith(".")
    with pytest.raises(ValueError, match=name):
        anatomy.score_anatomy(ctx, 3, 1)


def test_unknown_ids_are_refused(catalogs):
    with pytest.raises(ValueError, match="unknown movie id"):
        anatomy.score_anatomy(catalogs["svd"], 3, 999)
    with pytest.raises(ValueError, match="unknown user id"):
        anatomy.score_anatomy(catalogs["svd"], 999, 1)
