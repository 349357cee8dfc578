from dataclasses import fields

import pytest

from recsys.config import SplitConfig, TrainConfig, from_dict, to_dict


@pytest.mark.parametrize("cls", [SplitConfig, TrainConfig])
def test_every_field_is_documented_and_round_trips(cls):
    for f in fields(cls):
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} needs a help text"
    config = cls()
    assert from_dict(cls, {**to_dict(config), "unknown_key": 1}) == config


@pytest.mark.parametrize("kwargs", [
    {"lr": 0}, {"batch_size": 0}, {"epochs": 0}, {"negatives": 0}, {"alpha": -1},
    {"neg_sampling": "hard"}, {"device": "tpu"}, {"patience": -1},
])
def test_invalid_training_values_raise(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_invalid_split_values_raise():
    with pytest.raises(ValueError, match="unknown split"):
        SplitConfig(split="kfold")
    with pytest.raises(ValueError, match="test_fraction"):
        SplitConfig(test_fraction=0.0)
    assert "temporal" in SplitConfig().describe()
