from dataclasses import fields

import pytest

from recsys.data.protocol import SplitConfig
from recsys.models import MODELS
from recsys.models.config import MODEL_DEFAULTS, TrainConfig
from recsys.settings import field_specs, from_dict, to_dict


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


def test_an_old_mf_als_weight_decay_becomes_its_lambda_and_nothing_else_moves():
    old = {"model": "mf-als", "weight_decay": 7.0, "epochs": 3}
    assert from_dict(TrainConfig, old) == TrainConfig(model="mf-als", als_lambda=7.0, epochs=3)
    # (an mf-bpr config saved without an engine gains engine="torch": tests/test_compiled_sgd.py)
    for untouched in ({"model": "mf-bpr", "weight_decay": 7.0, "engine": "compiled"},
                      {"model": "mf-als", "weight_decay": 7.0, "als_lambda": 2.0}):
        assert TrainConfig.migrate_values(untouched) == untouched


def test_models_read_only_declared_fields_and_no_field_has_two_meanings():
    names = {f.name for f in fields(TrainConfig)}
    for name, cls in MODELS.items():
        assert set(cls.settings) <= names and set(cls.setting_help) <= set(cls.settings), name
        assert set(MODEL_DEFAULTS.get(name, {})) <= set(cls.settings), name
    assert "weight_decay" not in MODELS["mf-als"].settings  # ALS's lambda is als_lambda
    assert [n for n, c in MODELS.items() if "als_lambda" in c.settings] == ["mf-als"]


def test_field_specs_carry_bounds_choices_and_a_models_own_help():
    specs = {s.name: s for s in field_specs(TrainConfig, TrainConfig.for_model("mf-als"),
                                            MODELS["mf-als"].setting_help)}
    assert specs["epochs"].default == 15 and "sweeps" in specs["epochs"].help
    assert specs["negatives"].bounds == (1, 20) and specs["negatives"].kind is int
    assert specs["neg_sampling"].choices == ("uniform", "popularity")
    assert specs["refit"].kind is bool and specs["lr"].kind is float
    with pytest.raises(ValueError, match="negatives must be between 1 and 20"):
        TrainConfig(negatives=specs["negatives"].bounds[1] + 1)
