import numpy as np
import pytest

from recsys.lessons import projection
from recsys.lessons.projection import place_point, project, project_run
from recsys.serving.coldstart import fold_in
from tests.synthetic import block_of_item, fit, make_world


@pytest.fixture(scope="module")
def svd(tmp_path_factory):
    return fit(make_world(), tmp_path_factory.mktemp("runs"), "svd")


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centres = np.zeros((2, 8))
    centres[0, 0] = centres[1, 1] = 5.0
    return np.concatenate([c + rng.normal(size=(20, 8)) for c in centres]).astype(np.float32)


def test_pca_matches_numpy_and_places_points_exactly(blobs):
    result = project(blobs, "pca")
    centred = blobs - blobs.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(np.abs(result.coords), np.abs(centred @ vt[:2].T), atol=1e-4)
    np.testing.assert_allclose(result.explained_variance, (s**2 / (s**2).sum())[:2], rtol=1e-4)
    assert list(result.frame.columns) == ["x", "y", "norm"]
    np.testing.assert_allclose(place_point(result, blobs[7]), result.coords[7], atol=1e-4)


def test_tsne_is_seeded_and_keeps_the_clusters_apart(blobs):
    a = project(blobs, "tsne", seed=3, perplexity=5, max_iter=250)
    b = project(blobs, "tsne", seed=3, perplexity=5, max_iter=250)
    np.testing.assert_allclose(a.coords, b.coords)
    first, second = a.coords[:20].mean(axis=0), a.coords[20:].mean(axis=0)
    spread = a.coords[:20].std(axis=0).max()
    assert np.linalg.norm(first - second) > 2 * spread


def test_second_call_loads_the_cache_and_does_no_work(tmp_path, blobs, monkeypatch):
    messages = []
    first = project(blobs, "tsne", cache_dir=tmp_path, perplexity=5, max_iter=250,
                    progress=lambda f, m: messages.append((f, m)))
    assert not first.from_cache and messages[0][0] == 0.0 and messages[-1][0] == 1.0

    def no_work(*args, **kwargs):
        raise AssertionError("recomputed a cached map")

    monkeypatch.setattr(projection, "_compute", no_work)
    second = project(blobs, "tsne", cache_dir=tmp_path, perplexity=5, max_iter=250)
    assert second.from_cache
    np.testing.assert_array_equal(first.coords, second.coords)
    with pytest.raises(AssertionError, match="recomputed"):  # other parameters, other key
        project(blobs, "tsne", cache_dir=tmp_path, perplexity=6, max_iter=250)


def test_neighbour_placement_lands_in_the_right_cluster(blobs):
    fake_tsne = projection.Projection(
        "tsne", {}, 0, blobs, np.r_[np.zeros((20, 2)), np.full((20, 2), 10.0)],
        None, None, None, False, None)
    x, y = place_point(fake_tsne, blobs[25] * 1.1)
    assert x == pytest.approx(10.0) and y == pytest.approx(10.0)


def test_run_map_with_metadata_and_a_folded_in_user(svd):
    result = project_run(svd.run, "pca", movies=svd.movies, known=svd.seen)
    frame = result.frame
    assert {"item_id", "x", "y", "norm", "popularity", "title", "year", "genres"} <= set(frame)
    assert frame["item_id"].tolist() == svd.run.item_ids.tolist()
    assert str(frame["year"].dtype) == "Int64"
    again = project_run(svd.run, "pca", movies=svd.movies, known=svd.seen)
    assert again.from_cache and (svd.run.path / "projections").is_dir()
    # a new sci-fi fan lands nearer the sci-fi movies than the romance ones
    point = np.array(place_point(result, fold_in(svd, [1, 2, 3, 4, 5])))
    coords = frame[["x", "y"]].to_numpy()
    blocks = np.array([block_of_item(i) for i in frame["item_id"]])
    assert (np.linalg.norm(coords[blocks == 0].mean(0) - point)
            < np.linalg.norm(coords[blocks == 1].mean(0) - point))
    users = project_run(svd.run, "pca", what="users", known=svd.seen)
    assert {"user_id", "activity"} <= set(users.frame)


def test_the_app_map_holds_the_movies_with_enough_likes_and_is_cached(svd):
    """project_app_map: only movies with >= MIN_POSITIVES known positives, each row naming
    its item; the vector length is the model's, not the projected unit vector's."""
    from recsys.evaluation.neighbours import MIN_POSITIVES

    result = projection.project_app_map(svd.run, "pca", svd.seen, movies=svd.movies)
    frame = result.frame
    counts = np.asarray(svd.seen.sum(axis=0)).ravel()
    expected = np.flatnonzero(counts >= MIN_POSITIVES)
    assert 0 < len(expected) < len(counts)  # make_world's two unrated Star Trek films drop
    assert frame["item_index"].tolist() == expected.tolist()
    assert frame["item_id"].tolist() == svd.run.item_ids[expected].tolist()
    assert (frame["popularity"].to_numpy() == counts[expected]).all()
    factors = svd.run.model.item_factors()[expected]
    assert np.allclose(frame["norm"], np.linalg.norm(factors, axis=1), rtol=1e-5)
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)  # unit rows
    assert frame["title"].tolist() == svd.movies["title"].iloc[expected].tolist()
    assert projection.item_map_is_cached(svd.run.path, "pca")
    assert not projection.item_map_is_cached(svd.run.path, "tsne")
    assert projection.project_app_map(svd.run, "pca", svd.seen).from_cache


def test_bad_requests_raise(blobs, tmp_path):
    with pytest.raises(ValueError, match="unknown projection"):
        project(blobs, "mds")
    with pytest.raises(ValueError, match="parameters"):
        project(blobs, "pca", perplexity=3)
    with pytest.raises(ValueError, match="dimensions"):
        place_point(project(blobs, "pca"), np.ones(3))
    knn = fit(make_world(), tmp_path, "itemknn")
    with pytest.raises(ValueError, match="no item embeddings"):
        project_run(knn.run, "pca")


def test_a_short_user_vector_is_placed_by_its_direction(blobs):
    result = project(blobs, "pca")
    tiny = blobs[25] * 1e-3  # a fold-in from few likes: right direction, tiny length
    x, y = projection.place_user(result, tiny)
    first, second = result.coords[:20].mean(axis=0), result.coords[20:].mean(axis=0)
    assert np.linalg.norm([x, y] - second) < np.linalg.norm([x, y] - first)


# ---------------------------------------------------------------------------- custom axes
def test_genre_mask_counts_a_movie_in_each_of_its_genres():
    genres = ["Action|Sci-Fi", "Sci-Fi", "Drama", None, "Action|Sci-Fiction"]
    assert projection.genre_mask(genres, "Sci-Fi").tolist() == [True, True, False, False, False]
    assert projection.genre_mask(genres, "Action").tolist() == [True, False, False, False, True]


def test_semantic_axis_puts_the_two_means_at_0_and_1():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(30, 6)) + np.r_[3.0, 0, 0, 0, 0, 0]
    end = rng.normal(size=(30, 6)) + np.r_[0, 3.0, 0, 0, 0, 0]
    between = (start.mean(axis=0) + end.mean(axis=0)) / 2
    vectors = np.vstack([start, end, between])
    is_start = np.r_[np.ones(30, bool), np.zeros(31, bool)]
    is_end = np.r_[np.zeros(30, bool), np.ones(30, bool), False]
    x = projection.semantic_axis(vectors, is_start, is_end)
    assert x[:30].mean() == pytest.approx(0.0, abs=1e-9)
    assert x[30:60].mean() == pytest.approx(1.0, abs=1e-9)
    assert x[60] == pytest.approx(0.5)
    assert (x[:30] < 0.5).mean() > 0.9 and (x[30:60] > 0.5).mean() > 0.9
    # a direction orthogonal to the axis does not move a point along it
    direction = end.mean(axis=0) - start.mean(axis=0)
    sideways = np.linalg.svd(direction[None])[2][1]
    moved = projection.semantic_axis(np.vstack([vectors, between + 5 * sideways]),
                                     np.r_[is_start, False], np.r_[is_end, False])
    assert moved[-1] == pytest.approx(0.5)


def test_semantic_axis_refuses_empty_or_identical_ends():
    vectors = np.eye(4)
    with pytest.raises(ValueError, match="at least one"):
        projection.semantic_axis(vectors, np.zeros(4, bool), np.ones(4, bool))
    same = np.array([True, True, False, False])
    with pytest.raises(ValueError, match="same mean"):
        projection.semantic_axis(vectors, same, same)
