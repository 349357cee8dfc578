"""Vector length against popularity."""

import numpy as np
import pytest

from recsys.lessons import vector_norms as vn


def test_lengths_are_the_l2_norms_of_the_item_vectors():
    factors = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    frame = vn.norms_frame(factors, np.array([10, 1, 5]))
    assert frame["length"].tolist() == [5.0, 0.0, 1.0]
    assert frame["likes"].tolist() == [10, 1, 5]
    with pytest.raises(ValueError, match="3 item vectors but 2"):
        vn.norms_frame(factors, np.array([1, 2]))


def test_summary_of_lengths_that_grow_with_popularity():
    popularity = np.arange(1, 101)
    factors = np.c_[np.sqrt(popularity), np.zeros(100)]  # length = sqrt(likes)
    summary = vn.norm_summary(vn.norms_frame(factors, popularity))
    assert summary["spearman"] == pytest.approx(1.0)
    assert summary["rare_median"] == pytest.approx(np.median(np.sqrt(np.arange(1, 11))))
    assert summary["popular_median"] == pytest.approx(np.median(np.sqrt(np.arange(91, 101))))
    assert summary["ratio"] == pytest.approx(summary["popular_median"] / summary["rare_median"])
    flipped = vn.norm_summary(vn.norms_frame(factors[::-1], popularity))
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["ratio"] < 1
    lesson = vn.norms_lesson({"wd=0.1": summary})
    assert "wd=0.1" in lesson and f"{summary['ratio']:.1f}×" in lesson


def test_no_ratio_when_the_rarely_rated_vectors_are_zero():
    popularity = np.arange(1, 101)
    factors = np.c_[np.where(popularity > 10, 1.0, 0.0), np.zeros(100)]  # EASE/SVD: unliked = 0
    summary = vn.norm_summary(vn.norms_frame(factors, popularity))
    lesson = vn.norms_lesson({"svd": summary})
    assert "near zero" in lesson and "×" not in lesson
