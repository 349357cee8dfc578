"""The leaderboard helpers of the Train page's lessons: which runs have curves on which
protocol, the overlay frame, legend labels and the default pair of runs for the norms."""

from pathlib import Path

import pytest

from recsys.data.protocol import SplitConfig
from recsys.lessons import leaderboard as lb
from recsys.models.config import TrainConfig
from recsys.storage.runs import prepare_split, train_run
from tests.synthetic import tiny_movielens

TINY = dict(dim=4, refit=False, threads=1, patience=0, batch_size=64)


@pytest.fixture(scope="module")
def runs():
    ml = tiny_movielens()
    split = prepare_split(ml, SplitConfig())
    other = SplitConfig(test_fraction=0.3)
    made = [
        train_run(ml, SplitConfig(), TrainConfig(epochs=3, lr=0.01, **TINY), split=split),
        train_run(ml, SplitConfig(), TrainConfig(epochs=4, lr=0.05, **TINY), split=split),
        train_run(ml, SplitConfig(), TrainConfig(epochs=3, lr=0.01, weight_decay=0.1, **TINY),
                  split=split),
        train_run(ml, SplitConfig(), TrainConfig.for_model("popularity"), split=split),
        train_run(ml, other, TrainConfig(epochs=2, **TINY)),
    ]
    for i, run in enumerate(made):  # a run is named after its folder (none: not saved)
        run.path = Path(f"/runs/r{i}")
    return made


def test_curve_runs_keep_runs_with_history_and_split_off_other_protocols(runs):
    protocol = lb.protocol_key(SplitConfig())
    here, elsewhere = lb.curve_runs(runs, protocol)
    assert [r.name for r in here] == ["r0", "r1", "r2"]  # popularity has no curve
    assert [r.name for r in elsewhere] == ["r4"]


def test_curves_frame_has_one_row_per_run_and_epoch(runs):
    frame = lb.curves_frame(runs[:2], {"r0": "slow", "r1": "fast"})
    assert len(frame) == len(runs[0].history) + len(runs[1].history)
    assert frame.groupby("label")["epoch"].max().to_dict() == {
        "slow": len(runs[0].history), "fast": len(runs[1].history)}
    assert list(frame.columns) == ["run", "label", "epoch", "loss", "valid_recall@10"]
    assert frame["loss"].notna().all()
    assert lb.curves_frame([runs[3]]).empty  # no history, no rows


def test_labels_name_only_the_settings_in_which_runs_of_a_model_differ(runs):
    labels = lb.setting_labels(runs[:4])
    assert labels["r0"] == "mf-bpr · epochs=3 · lr=0.01 · weight_decay=0.003"
    assert labels["r2"] == "mf-bpr · epochs=3 · lr=0.01 · weight_decay=0.1"
    assert labels["r3"] == "popularity"


def test_contrasting_runs_prefer_a_pair_that_differs_only_in_the_field(runs):
    # r0 and r2 differ only in weight decay; r1 differs from r2 in lr and epochs too
    assert lb.contrasting_runs(runs[:4], "weight_decay") == ["r0", "r2"]
    assert lb.contrasting_runs([runs[0], runs[1]], "weight_decay") == ["r0", "r1"]  # fallback


def test_the_sentence_against_ease_names_the_closest_embedding_model_and_its_cost():
    import pandas as pd

    from recsys.lessons.leaderboard import against_ease

    def board(rows):
        return pd.DataFrame(rows, columns=["run", "model", "Recall@10", "NDCG@10", "fit s"])

    rows = [("e", "ease", 0.141, 0.158, 0.5), ("a", "mf-als", 0.136, 0.153, 1.0),
            ("b", "mf-bpr", 0.120, 0.130, 0.2), ("p", "popularity", 0.07, 0.08, 0.01)]
    sentence = against_ease(board(rows))
    assert "mf-als (a), is below EASE" in sentence and "2.0x EASE's time" in sentence
    rows[1] = ("a", "mf-als", 0.150, 0.150, 1.0)
    assert "reaches EASE's Recall@10 but not its NDCG@10" in against_ease(board(rows))
    rows[1] = ("a", "mf-als", 0.150, 0.160, 1.0)
    assert "is at EASE's level" in against_ease(board(rows))
    assert against_ease(board(rows[1:])) is None  # no EASE run: nothing to say
    assert against_ease(board([rows[0], rows[3]])) is None  # no embedding model
