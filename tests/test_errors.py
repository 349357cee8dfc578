"""The error hierarchy: expected failures are RecsysErrors with a message for a person, caught by
the CLI and the pages; a programming error (TypeError, AttributeError, KeyError ...) is never
turned into a friendly message or a "damaged run"."""

from __future__ import annotations

import pytest

from recsys import checks, errors
from recsys.cli import main as cli
from recsys.data.protocol import SplitConfig
from recsys.errors import BadInputError, RecsysError, RunError
from recsys.models.base import Recommender
from recsys.models.config import TrainConfig
from recsys.serving.catalog import AmbiguousMovieError
from recsys.storage.replay import ReplayError
from recsys.storage.runs import load_run, train_run
from tests.synthetic import tiny_movielens


def test_every_expected_error_is_a_recsys_error_and_keeps_its_old_builtin():
    for cls, builtin in ((errors.BadInputError, ValueError), (errors.RunError, ValueError),
                         (errors.DataUnavailableError, RuntimeError),
                         (errors.TrainingDivergedError, RuntimeError),
                         (ReplayError, ValueError), (AmbiguousMovieError, ValueError)):
        assert issubclass(cls, RecsysError) and issubclass(cls, builtin), cls


def test_checks_and_the_split_config_raise_bad_input():
    """(TrainConfig's: tests/test_models.py.)"""
    with pytest.raises(BadInputError, match="unknown split"):
        SplitConfig(split="sideways")
    with pytest.raises(BadInputError, match="k must be at least 1"):
        checks.check_k(0)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "als"
    train_run(tiny_movielens(), SplitConfig(), TrainConfig(model="mf-als", dim=4, epochs=2,
                                                           refit=False), path)
    return path


def test_a_bug_in_a_models_loading_code_is_a_traceback_not_a_damaged_run(saved_run,
                                                                        monkeypatch):
    load_run(saved_run)  # loads as it is
    for bug in (AttributeError("no attribute 'items'"), TypeError("bad operand")):
        def broken(self, params, bug=bug):
            raise bug
        with monkeypatch.context() as mp:
            mp.setattr("recsys.models.base.FactorModel._load_params", broken)
            with pytest.raises(type(bug)) as caught:
                load_run(saved_run)
            assert not isinstance(caught.value, RunError)


def test_weights_of_another_size_are_still_a_damaged_run(tmp_path):
    """torch's size mismatch (a RuntimeError) is the damaged run it always was."""
    import json

    path = tmp_path / "bpr"
    train_run(tiny_movielens(), SplitConfig(), TrainConfig(model="mf-bpr", dim=4, epochs=1,
                                                           refit=False), path)
    config = json.loads((path / "config.json").read_text())
    config["train"]["dim"] = 7
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="does not fit"):
        load_run(path)


def test_the_cli_prints_expected_errors_and_lets_bugs_raise(monkeypatch, capsys):
    def bad_input(args):
        raise BadInputError("--k must be at least 1, got 0")

    def bug(args):
        raise KeyError("user_ids")

    parser = cli.build_parser()
    args = parser.parse_args(["data"])
    for handler, expected in ((bad_input, 2), (bug, None)):
        monkeypatch.setattr(cli, "build_parser", lambda h=handler: _FixedParser(args, h))
        if expected is None:
            with pytest.raises(KeyError):
                cli.main(["data"])
        else:
            assert cli.main(["data"]) == expected
            assert "error: --k must be at least 1" in capsys.readouterr().err


class _FixedParser:
    """A parser that hands back ``args`` with ``handler`` as the command."""

    def __init__(self, args, handler):
        self.args, self.handler = args, handler

    def parse_args(self, argv):
        self.args.handler = self.handler
        return self.args


def test_recommender_base_raises_bad_input_for_out_of_range_indices():
    model = Recommender(TrainConfig(model="popularity"))
    model.n_users, model.n_items = 3, 4
    with pytest.raises(BadInputError, match="user index 5 out of range"):
        model._check_user(5)
