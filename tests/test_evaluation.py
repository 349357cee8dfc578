import math

import numpy as np
import scipy.sparse as sp

from recsys.evaluation.metrics import evaluate_scores, ranking_metrics, top_k_items


def reference_metrics(scores, relevant, exclude, k):
    """Slow, obviously-correct per-user implementation to check the vectorised one."""
    out = {"recall": [], "precision": [], "ndcg": [], "mrr": [], "hit": []}
    for u in range(scores.shape[0]):
        rel = set(np.flatnonzero(relevant[u]))
        if not rel:
            continue
        ranked = [i for i in np.argsort(-scores[u], kind="stable") if not exclude[u, i]][:k]
        hits = [1 if i in rel else 0 for i in ranked]
        out["recall"].append(sum(hits) / len(rel))
        out["precision"].append(sum(hits) / k)
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
        out["ndcg"].append(dcg / idcg)
        out["mrr"].append(next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0))
        out["hit"].append(float(any(hits)))
    return {name: float(np.mean(v)) for name, v in out.items()}


def test_vectorised_metrics_match_reference():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 60, 40, 5
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    relevant = rng.random((n_users, n_items)) < 0.1
    relevant[:5] = False  # users with nothing held out are not averaged
    exclude = (rng.random((n_users, n_items)) < 0.2) & ~relevant
    result = evaluate_scores(lambda users: scores[users], sp.csr_matrix(relevant),
                             sp.csr_matrix(exclude), np.ones(n_items), k=k, batch_size=7)
    ref = reference_metrics(scores, relevant, exclude, k)
    for name in ("recall", "precision", "ndcg", "mrr", "hit"):
        assert math.isclose(result.metrics[f"{name}@{k}"], ref[name], rel_tol=1e-6), name
    assert result.protocol["users_evaluated"] == int((relevant.sum(1) > 0).sum())
    assert len(result.per_user[f"recall@{k}"]) == result.protocol["users_evaluated"]


def test_excluded_items_never_ranked():
    scores = np.array([[9.0, 8.0, 7.0, 1.0]])
    exclude = sp.csr_matrix(np.array([[1, 1, 0, 0]]))
    items, vals = top_k_items(lambda u: scores[u], np.array([0]), exclude, 2)
    assert items.tolist() == [[2, 3]]
    assert vals.tolist() == [[7.0, 1.0]]


def test_perfect_ranking_scores_one_and_idcg_uses_min_k_relevant():
    relevant = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0]]))
    top = np.array([[0, 1, 2]])
    metrics, _ = ranking_metrics(top, relevant, np.array([0]), 3, np.ones(6), 1)
    assert metrics["ndcg@3"] == 1.0 and metrics["recall@3"] == 1.0
    assert math.isclose(metrics["precision@3"], 2 / 3)
    assert math.isclose(metrics["coverage@3"], 3 / 6)


def test_novelty_is_mean_self_information():
    relevant = sp.csr_matrix(np.array([[1, 0], [0, 1]]))
    counts = np.array([2, 1])  # item 0 seen by both users, item 1 by one of two
    metrics, _ = ranking_metrics(np.array([[1], [1]]), relevant, np.array([0, 1]), 1, counts, 2)
    assert math.isclose(metrics["novelty@1"], 1.0)  # -log2(1/2)


def test_k_beyond_the_catalogue_and_short_lists_count_only_rankable_items():
    relevant = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0]]))
    exclude = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]]))
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    result = evaluate_scores(lambda u: scores[u], relevant, exclude, np.array([2, 1, 1]), k=5)
    assert result.metrics["recall@5"] == 1.0 and result.metrics["ndcg@5"] == 1.0
    assert math.isclose(result.metrics["precision@5"], 1 / 5)
    # user 0 can rank only items 1 and 2: the excluded item 0 must not count anywhere
    assert result.metrics["coverage@5"] == 1.0  # items 1, 2 (user 0) and 0 (user 1)
    novelty_user0 = result.per_user["novelty@5"][0]
    assert math.isclose(novelty_user0, 1.0)  # items 1 and 2: -log2(1/2) each


def test_stored_cells_equal_nonzero_of_the_rows_sliced():
    """The CSR read of top_k_items' exclusions against scipy's slice + nonzero(): repeated and
    unsorted rows, empty rows, and a stored zero (not a cell)."""
    from recsys.evaluation.metrics import stored_cells

    rng = np.random.default_rng(3)
    dense = sp.random(30, 40, density=0.15, random_state=4).toarray()
    dense[5] = 0  # an empty row
    matrix = sp.csr_matrix(dense)
    matrix.data[::7] = 0.0  # stored zeros
    for rows in (np.array([5, 2, 2, 29, 0]), rng.integers(0, 30, 50), np.array([5]),
                 np.array([], dtype=np.int64)):
        got = stored_cells(matrix, rows)
        want = matrix[rows].nonzero()
        assert sorted(zip(*got, strict=True)) == sorted(zip(*want, strict=True))
