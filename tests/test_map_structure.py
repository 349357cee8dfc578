"""Map structure: known answers on synthetic maps (a copy of separated genre clusters keeps
everything, a random map nothing, a far island of rare movies is flagged) and the 2-D
neighbours against a brute-force sort."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.errors import BadInputError
from recsys.evaluation import lenses
from recsys.evaluation import map_structure as ms
from recsys.evaluation.neighbours import genre_matrix

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi")


def genre_clusters(per_genre=30, dim=16, seed=0):
    """One single-genre cluster per genre: vectors around random directions, and a map that
    copies the clusters to far-apart 2-D centres. Returns (vectors, coords, genre strings)."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(len(GENRES)), per_genre)
    centres = rng.normal(size=(len(GENRES), dim)) * 5
    vectors = centres[label] + rng.normal(scale=0.1, size=(len(label), dim))
    angles = 2 * np.pi * np.arange(len(GENRES)) / len(GENRES)
    coords = 100 * np.c_[np.cos(angles), np.sin(angles)][label] + rng.normal(size=(len(label), 2))
    return vectors, coords, [GENRES[g] for g in label]


def test_copy_of_separated_clusters_keeps_all_structure():
    vectors, coords, genres = genre_clusters()
    popularity = np.arange(len(coords))
    result = ms.map_structure(coords, vectors, genre_matrix(genres), popularity)
    # Every neighbour, on the map and in the space, is from the same cluster: the same lift.
    assert result.map_lift == pytest.approx(result.space_lift, rel=1e-12)
    assert result.space_lift > 4  # one of six equal genres: 1 / (chance ~ 1/6 agreement)
    assert result.kept == pytest.approx(1.0, rel=1e-12)
    assert not result.island


def test_random_map_keeps_nothing():
    vectors, _, genres = genre_clusters()
    coords = np.random.default_rng(1).random((len(vectors), 2))
    result = ms.map_structure(coords, vectors, genre_matrix(genres), np.ones(len(coords)))
    # 1,800 random pairs: the same-genre share has a standard error of ~0.009 around 1/6,
    # i.e. ~0.05 of lift, ~0.01 of `kept` (space lift ~6); 0.05 is five of those.
    assert abs(result.map_lift - 1) < 0.25
    assert abs(result.kept) < 0.05


def test_map_neighbours_match_brute_force_and_skip_self_with_twins():
    rng = np.random.default_rng(2)
    coords = rng.random((60, 2))
    coords[10] = coords[11] = coords[12]  # three points at one place
    k = 5
    got = ms.map_neighbours(coords, k)
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    expected = np.sort(dist, axis=1)[:, :k]
    assert got.shape == (60, k)
    assert not (got == np.arange(60)[:, None]).any()
    assert np.allclose(np.take_along_axis(dist, got, axis=1), expected)  # ties in any order
    assert set(got[10, :2]) == {11, 12}


def test_frame_fill_high_for_spread_points_low_for_strip():
    rng = np.random.default_rng(3)
    spread = rng.random((1600, 2))  # 4 points per cell of 20 x 20
    strip = np.c_[rng.random(1600), 0.02 * rng.random(1600)]
    strip[0] = (0.5, 1.0)  # one straggler sets the frame's height
    assert ms.frame_fill(spread) > 0.7
    assert ms.frame_fill(strip) < 0.1


def test_far_island_of_rare_movies_is_flagged():
    rng = np.random.default_rng(4)
    body = rng.normal(size=(300, 2))
    island = rng.normal(size=(100, 2)) * 0.3 + (40.0, 40.0)
    coords = np.r_[body, island]
    popularity = np.r_[rng.integers(20, 500, 300), rng.integers(0, 3, 100)]
    far = ms.rare_frame(coords, popularity)
    assert far > 0.9  # the body's box is a few units of a 40 x 40 frame
    mixed = rng.permutation(popularity)  # the same points, rare movies spread among them
    assert ms.rare_frame(coords, mixed) < 0.1
    vectors = rng.normal(size=(400, 8))
    genres = genre_matrix(rng.choice(GENRES, 400))
    assert ms.map_structure(coords, vectors, genres, popularity).island
    assert not ms.map_structure(coords, vectors, genres, mixed).island
    assert ms.frame_fill(coords) < 0.1  # most of the frame is the empty space between


def test_region_labels_name_each_cluster_by_its_genre_and_famous_titles():
    vectors, coords, genres = genre_clusters(per_genre=20)
    genres = list(genres)
    genres[0] = "Action|Documentary"  # one rare genre must not name its region
    titles = [f"movie {i}" for i in range(len(coords))]
    popularity = np.arange(len(coords)) % 20  # within each cluster the last is most popular
    regions = ms.region_labels(coords, genres, titles, popularity, n_regions=len(GENRES))
    assert len(regions) == len(GENRES)
    assert sorted(r.genres[0] for r in regions) == sorted(GENRES)
    for region in regions:
        g = GENRES.index(region.genres[0])
        assert region.size == 20
        assert region.genres == (GENRES[g],)  # the only genre held by >= 25 % of it
        assert region.lifts[0] == pytest.approx(len(GENRES))  # share 1 over share 1/6
        assert region.titles == tuple(f"movie {20 * g + i}" for i in (19, 18, 17))
        assert np.allclose(region.centre, coords[20 * g: 20 * g + 20].mean(axis=0))
        assert region.label.startswith(f"{GENRES[g]}: movie {20 * g + 19}")


def test_a_region_like_the_whole_map_is_mixed():
    regions = ms.region_labels(np.zeros((4, 2)), ["Drama", "Comedy", "Drama|Comedy", "Horror"],
                               list("abcd"), np.arange(4), n_regions=1)
    assert regions[0].genres == () and regions[0].era == ""  # every lift is 1, no years
    assert regions[0].label == "mixed: d, c, b"


def test_old_region_is_named_older_and_titles_carry_the_named_genres():
    coords = np.r_[np.zeros((4, 2)), np.full((4, 2), 50.0)]
    genres = ["Comedy"] * 4 + ["Drama", "Comedy", "Drama", "Horror|Comedy"]
    years = np.array([1950, 1955, 1962, np.nan, 1995, 1996, 1997, 1994])
    regions = ms.region_labels(coords, genres, list("abcdefgh"), np.arange(8), n_regions=2,
                               years=years)
    old, new = sorted(regions, key=lambda r: r.year)
    # Comedy: all of the old region, 6/8 of the map (lift 4/3); Drama: 2/4 of the new region,
    # 2/8 of the map (lift 2); Horror 1/4 there, 1/8 overall (lift 2, share >= 0.2).
    assert old.genres == ("Comedy",) and old.lifts == pytest.approx((4 / 3,))
    assert new.genres == ("Drama", "Horror") and new.lifts == pytest.approx((2, 2))
    assert old.year == 1955 and old.era == "older films (median 1955)"  # NaN year skipped
    assert new.era == ""  # the map's median year is 1994.5
    assert old.label == "Comedy · older films (median 1955): d, c, b"
    # f (a plain comedy) is more popular than e, but the caption names Drama and Horror
    assert new.label == "Drama · Horror: h, g, e"


def test_map_input_keeps_known_movies_and_debiases_to_unit_length():
    rng = np.random.default_rng(5)
    known = sp.csr_matrix(rng.random((40, 12)) < np.linspace(0.0, 0.6, 12))  # later: popular
    factors = rng.normal(size=(12, 4)) + np.linspace(0, 3, 12)[:, None]  # shared direction
    items, vectors = ms.map_input(factors, known, ms.MapSettings(min_positives=5))
    counts = np.asarray(known.sum(axis=0)).ravel()
    assert np.array_equal(items, np.flatnonzero(counts >= 5))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    debiased = lenses.debiased_vectors(factors, known)[items]
    assert np.allclose(vectors * np.linalg.norm(debiased, axis=1)[:, None], debiased)
    raw = ms.map_input(factors, known, ms.MapSettings(vectors="raw", min_positives=0))[1]
    assert np.array_equal(raw, factors)
    with pytest.raises(BadInputError, match="unknown vectors"):
        ms.map_vectors(factors, known, "pretty")


def test_bad_inputs_raise():
    coords = np.zeros((5, 2))
    with pytest.raises(BadInputError, match="one row per point"):
        ms.map_structure(coords, np.ones((4, 3)), np.ones((5, 2), bool), np.ones(5))
    with pytest.raises(BadInputError, match="k=5"):
        ms.map_structure(coords, np.ones((5, 3)), np.ones((5, 2), bool), np.ones(5), k=5)
    with pytest.raises(BadInputError, match=r"\(n, 2\)"):
        ms.map_structure(np.zeros((5, 3)), np.ones((5, 3)), np.ones((5, 2), bool), np.ones(5))
