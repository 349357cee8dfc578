import numpy as np

from recsys.data.sampling import PositiveSet, popularity_cdf, sample_negatives


def test_negatives_avoid_positives_dense_and_sparse():
    rng = np.random.default_rng(0)
    n_users, n_items = 5, 8
    users = np.repeat(np.arange(n_users), 6)
    items = np.tile(np.arange(6), n_users)  # everyone likes items 0-5; only 6, 7 are negatives
    for dense_limit, bit_limit in ((10**9, 10**9), (1, 10**9), (1, 1)):  # bytes, bits, keys
        old = PositiveSet.DENSE_LIMIT, PositiveSet.BIT_LIMIT
        PositiveSet.DENSE_LIMIT, PositiveSet.BIT_LIMIT = dense_limit, bit_limit
        try:
            positives = PositiveSet(users, items, n_users, n_items)
            neg = sample_negatives(users, 4, n_items, positives, rng)
            every_pair = positives.contains(np.repeat(np.arange(n_users), n_items),
                                            np.tile(np.arange(n_items), n_users))
        finally:
            PositiveSet.DENSE_LIMIT, PositiveSet.BIT_LIMIT = old
        assert neg.shape == (len(users), 4)
        assert set(np.unique(neg)) <= {6, 7}
        assert every_pair.reshape(n_users, n_items)[:, :6].all()
        assert not every_pair.reshape(n_users, n_items)[:, 6:].any()


def test_popularity_sampling_follows_count_power():
    counts = np.array([1, 0, 100, 1000])
    cdf = popularity_cdf(counts, alpha=1.0)
    rng = np.random.default_rng(1)
    positives = PositiveSet(np.array([0]), np.array([0]), 100_000, 4)
    draws = sample_negatives(np.arange(1, 20_001), 5, 4, positives, rng, cdf).ravel()
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert abs(freq[1] - 1 / 1102) < 0.002  # an unseen item counts as one, never zero
    assert abs(freq[3] - 1000 / 1102) < 0.01
    uniform = popularity_cdf(counts, alpha=0.0)
    assert np.allclose(np.diff(np.r_[0, uniform]), 0.25)


def test_sampling_is_deterministic_under_a_seed():
    positives = PositiveSet(np.array([0, 1]), np.array([1, 2]), 2, 50)
    a = sample_negatives(np.array([0, 1]), 3, 50, positives, np.random.default_rng(7))
    b = sample_negatives(np.array([0, 1]), 3, 50, positives, np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_chunked_membership_equals_one_pass(monkeypatch):
    """Long lookups run in chunks of rows; the answer must not depend on the chunking."""
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 30
    users, items = rng.integers(0, n_users, 300), rng.integers(0, n_items, 300)
    positives = PositiveSet(users, items, n_users, n_items)
    query_users = rng.integers(0, n_users, 500)
    query_items = rng.integers(0, n_items, (500, 3))
    whole = positives.contains(query_users[:, None], query_items)
    monkeypatch.setattr(PositiveSet, "CHUNK_ROWS", 7)
    chunked = positives.contains(query_users[:, None], query_items)
    assert chunked.shape == (500, 3) and whole.sum() > 0
    np.testing.assert_array_equal(chunked, whole)
    expected = np.zeros((n_users, n_items), bool)
    expected[users, items] = True
    np.testing.assert_array_equal(whole, expected[query_users[:, None], query_items])
    assert positives.contains(np.int64(users[0]), np.int64(items[0]))
