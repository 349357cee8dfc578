import numpy as np
import pandas as pd
import pytest

from recsys.data.interactions import Interactions


def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_from_frame_maps_raw_ids_and_keeps_latest_duplicate():
    x = Interactions.from_frame(frame([(10, 500, 3, 1), (20, 7, 4, 2), (10, 500, 5, 3)]))
    assert x.user_ids.tolist() == [10, 20]
    assert x.item_ids.tolist() == [7, 500]
    assert len(x) == 2
    latest = x.ratings[(x.user_index == 0) & (x.item_index == 1)]
    assert latest.tolist() == [5.0]
    assert "2 events" in repr(x)


def test_catalogue_keeps_unrated_items_and_csr_shape():
    x = Interactions.from_frame(frame([(1, 2, 4, 1)]), item_ids=np.array([1, 2, 3]))
    m = x.to_csr()
    assert m.shape == (1, 3) and m[0, 1] == 1 and m.sum() == 1
    assert x.to_csr("ratings")[0, 1] == 4


def test_unknown_ids_and_nans_raise_actionable_errors():
    with pytest.raises(ValueError, match="missing from the item table"):
        Interactions.from_frame(frame([(1, 9, 4, 1)]), item_ids=np.array([1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        Interactions.from_frame(frame([(1, 2, np.nan, 1)]))
    with pytest.raises(ValueError, match="lacks columns"):
        Interactions.from_frame(pd.DataFrame({"user_id": [1]}))


def test_direct_construction_is_validated():
    ids = np.array([1, 2])
    with pytest.raises(ValueError, match="out of range"):
        Interactions(np.array([0, 5]), np.array([0, 1]), np.ones(2, np.float32),
                     np.zeros(2, np.int64), ids, ids)
    with pytest.raises(ValueError, match="must be equal"):
        Interactions(np.array([0]), np.array([0, 1]), np.ones(2, np.float32),
                     np.zeros(2, np.int64), ids, ids)


def test_positives_subset_and_concat_share_mapping():
    x = Interactions.from_frame(frame([(1, 1, 5, 1), (1, 2, 2, 2), (2, 1, 4, 3)]))
    pos = x.positives(4)
    assert len(pos) == 2 and np.array_equal(pos.item_ids, x.item_ids)
    both = pos.concat(x.subset(x.ratings < 4))
    assert sorted(both.keys().tolist()) == sorted(x.keys().tolist())
    other = Interactions.from_frame(frame([(3, 3, 5, 1)]))
    with pytest.raises(ValueError, match="different id mappings"):
        pos.concat(other)
