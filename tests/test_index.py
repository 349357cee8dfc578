import numpy as np
import pytest
import scipy.sparse as sp

from recsys.serving import index as index_module
from recsys.serving.index import VectorIndex, ann_recall_report
from tests.numeric import assert_ranking_is_stable, dot_rounding_bound


def _brute_force(vectors, queries, k, metric):
    """numpy's float64 ranking; FAISS ranks float32 products summed in its own BLAS's order,
    so the lists match exactly only where no two scores lie within rounding (checked)."""
    if metric == "cosine":
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ vectors.T
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k + 1]
    ranked = np.take_along_axis(scores, ids, 1)
    assert_ranking_is_stable(ranked, dot_rounding_bound(queries, vectors))
    return ids[:, :k], ranked[:, :k]


@pytest.fixture
def data():
    # Seed 3: no two of a query's 31 best scores lie within rounding (seed 0 had a pair 6e-6
    # apart), so the exact lists below hold whatever order BLAS sums in.
    rng = np.random.default_rng(3)
    return rng.normal(size=(500, 16)).astype(np.float32), rng.normal(size=(20, 16))


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_flat_top_k_equals_numpy_argsort(data, metric):
    vectors, queries = data
    ids, scores = VectorIndex(vectors, metric=metric).search(queries, 10)
    want_ids, want_scores = _brute_force(vectors, queries, 10, metric)
    np.testing.assert_array_equal(ids, want_ids)
    bound = dot_rounding_bound(queries, vectors)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=bound)


def test_exclude_forms_agree_with_brute_force(data):
    vectors, queries = data
    index = VectorIndex(vectors)
    full, _ = _brute_force(vectors, queries, 30, "cosine")
    banned = [row[::2] for row in full]  # every other true neighbour
    want = np.array([[i for i in row if i not in b][:10]
                     for row, b in zip(full, banned, strict=True)])
    rows = np.repeat(np.arange(len(queries)), [len(b) for b in banned])
    as_csr = sp.csr_matrix((np.ones(len(rows)), (rows, np.concatenate(banned))),
                           shape=(len(queries), len(vectors)))
    for exclude in (banned, as_csr):
        ids, scores = index.search(queries, 10, exclude=exclude)
        np.testing.assert_array_equal(ids, want)
    one_for_all = full[0, :3]
    ids, _ = index.search(queries[:1], 5, exclude=one_for_all)
    np.testing.assert_array_equal(ids[0], full[0, 3:8])


def test_fewer_vectors_than_k_pads_with_minus_one():
    ids, scores = VectorIndex(np.eye(3, dtype=np.float32)).search(np.ones(3), 5, exclude=[[0]])
    assert sorted(ids[0, :2].tolist()) == [1, 2]
    assert ids[0, 2:].tolist() == [-1, -1, -1] and np.isneginf(scores[0, 2:]).all()


def test_ivf_exact_when_all_cells_probed(data):
    vectors, queries = data
    ivf = VectorIndex(vectors, kind="ivf", nlist=16, nprobe=16)
    ids, _ = ivf.search(queries, 10)
    np.testing.assert_array_equal(ids, _brute_force(vectors, queries, 10, "cosine")[0])
    report = ann_recall_report(vectors, nlist=16, nprobe=16, k=10, n_queries=50)
    assert report["recall@10"] == 1.0
    assert report["exact_ms"] > 0 and report["ivf_ms"] > 0
    low = ann_recall_report(vectors, nlist=16, nprobe=1, k=10, n_queries=50)
    assert low["recall@10"] < 1.0


def test_bad_arguments_raise(data):
    vectors, _ = data
    with pytest.raises(ValueError, match="metric"):
        VectorIndex(vectors, metric="l2")
    with pytest.raises(ValueError, match="nprobe"):
        VectorIndex(vectors, kind="ivf", nlist=8, nprobe=9)
    with pytest.raises(ValueError, match="NaN"):
        VectorIndex(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="dimensions"):
        VectorIndex(vectors).search(np.ones(3), 2)


def test_disk_cache_reuses_the_built_index(tmp_path, data, monkeypatch):
    vectors, queries = data
    first = VectorIndex.cached(vectors, tmp_path, metric="dot", kind="ivf", nlist=8, nprobe=8)
    assert len(list(tmp_path.glob("*.faiss"))) == 1

    def no_build(self, vectors, seed):
        raise AssertionError("should have loaded the cached index")

    monkeypatch.setattr(index_module.VectorIndex, "_build", no_build)
    second = VectorIndex.cached(vectors, tmp_path, metric="dot", kind="ivf", nlist=8, nprobe=8)
    np.testing.assert_array_equal(first.search(queries, 5)[0], second.search(queries, 5)[0])
    with pytest.raises(AssertionError):  # other vectors: another key, so a new build
        VectorIndex.cached(vectors * 2, tmp_path, metric="dot", kind="ivf", nlist=8)
