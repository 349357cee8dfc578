"""A damaged run directory gives one RunError a user can act on, never a traceback.

Each case copies a real (tiny) run, damages one thing and checks ``load_run``, every CLI
command that loads a run, and that a good run beside the damaged one still loads.
"""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from recsys.cli import main as cli
from recsys.cli import serving as cli_serving
from recsys.data.protocol import SplitConfig
from recsys.errors import RunError
from recsys.models.config import TrainConfig
from recsys.storage import runs
from recsys.storage.runs import list_runs, load_run, train_run
from tests.synthetic import tiny_movielens

MODELS = ("mf-bpr", "svd", "itemknn", "popularity")
COMMANDS = (
    ["evaluate"],
    ["export", "--out", "{tmp}/e.npz"],
    ["recommend", "--user", "1"],
    ["similar", "--movie", "1"],
    ["similar-users", "--user", "1"],
    ["project"],
)
# Python internals a user should never have to read.
INTERNALS = ("Traceback", "allow_pickle", "KeyError", "TypeError", "RuntimeError", "BadZip",
             "EOFError", "size mismatch", "'split'", "NoneType", "Errno")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run per model family, trained once for the whole module."""
    root = tmp_path_factory.mktemp("trained")
    ml = tiny_movielens()
    for model in MODELS:
        config = TrainConfig(model=model, dim=4, epochs=1, batch_size=64, threads=1,
                             refit=False, patience=0)
        train_run(ml, SplitConfig(), config, root / model)
    return root


@pytest.fixture(autouse=True)
def no_data(monkeypatch):
    """A damaged run must be refused before any data is loaded."""
    def refuse(*args, **kwargs):
        raise AssertionError("MovieLens was loaded for a damaged run")

    monkeypatch.setattr(cli, "load_movielens", refuse)
    monkeypatch.setattr(cli_serving, "load_movielens", refuse)


# ---------------------------------------------------------------------------- damage helpers
def edit_json(name, change):
    def damage(run):
        value = json.loads((run / name).read_text())
        (run / name).write_text(json.dumps(change(value)))
    return damage


def write(name, content):
    def damage(run):
        (run / name).unlink()
        data = content.encode() if isinstance(content, str) else content
        (run / name).write_bytes(data)
    return damage


def edit_weights(change):
    def damage(run):
        with np.load(run / "weights.npz") as z:
            arrays = {k: z[k] for k in z.files}
        arrays = change(arrays)
        (run / "weights.npz").unlink()
        np.savez(run / "weights.npz", **arrays)
    return damage


def remove(*names):
    def damage(run):
        for name in names:
            (run / name).unlink()
    return damage


def replace_with(name, make):
    def damage(run):
        (run / name).unlink()
        make(run / name)
    return damage


def truncate_weights(run):
    data = (run / "weights.npz").read_bytes()
    (run / "weights.npz").write_bytes(data[: len(data) // 2])


def flip_byte_in_weights(run):
    data = bytearray((run / "weights.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside an array's bytes: the zip CRC no longer matches
    (run / "weights.npz").write_bytes(bytes(data))


def single_npy_as_weights(run):
    with open(run / "weights.npz", "wb") as f:
        np.save(f, np.zeros(3, np.float32))


def zip_of_text(run):
    with zipfile.ZipFile(run / "weights.npz", "w") as z:
        z.writestr("notes.txt", "hello")


def with_(key, value):
    return lambda arrays: {**arrays, key: value}


def without(key):
    return lambda arrays: {k: v for k, v in arrays.items() if k != key}


def set_train(**values):
    return edit_json("config.json", lambda c: {**c, "train": {**c["train"], **values}})


def pickled_objects(arrays):
    return {**arrays, "param.item.weight": np.array([{"x": 1}, None], dtype=object)}


CASES = [
    # id, model, damage, words the message must contain
    ("missing-weights", "mf-bpr", remove("weights.npz"), "missing weights.npz"),
    ("missing-two-files", "mf-bpr", remove("config.json", "history.json"),
     "missing config.json, history.json"),
    ("dangling-symlink", "mf-bpr",
     replace_with("metrics.json", lambda p: p.symlink_to(p.parent / "gone.json")),
     "missing metrics.json"),
    ("weights-fifo", "mf-bpr", replace_with("weights.npz", os.mkfifo),
     "weights.npz is not a regular file"),
    ("config-dev-zero", "mf-bpr",
     replace_with("config.json", lambda p: p.symlink_to("/dev/zero")),
     "config.json is not a regular file"),
    ("config-directory", "mf-bpr", replace_with("config.json", lambda p: p.mkdir()),
     "config.json is not a regular file"),
    ("config-truncated-json", "mf-bpr", write("config.json", '{"split": {"split": "temp'),
     "config.json is not valid JSON"),
    ("config-not-utf8", "mf-bpr", write("config.json", b"\xff\xfe{}"),
     "config.json is not valid JSON"),
    ("config-deeply-nested", "mf-bpr", write("config.json", "[" * 100_000),
     "config.json is not valid JSON"),
    ("config-list", "mf-bpr", write("config.json", "[1, 2]"),
     "config.json should hold an object, not a list"),
    ("config-without-train", "mf-bpr", edit_json("config.json", lambda c: {"split": c["split"]}),
     "config.json lacks its split and train settings"),
    ("config-dim-text", "mf-bpr", set_train(dim="abc"),
     'config.json sets dim to "abc", which is not a whole number'),
    ("config-epochs-null", "mf-bpr", set_train(epochs=None),
     "config.json sets epochs to null"),
    ("config-refit-text", "mf-bpr", set_train(refit="yes"), "refit"),
    ("config-unknown-model", "mf-bpr", set_train(model="nope"), "unknown model 'nope'"),
    ("config-dim-out-of-range", "mf-bpr", set_train(dim=0), "dim must be between"),
    ("config-split-threshold-text", "mf-bpr",
     edit_json("config.json", lambda c: {**c, "split": {**c["split"], "threshold": "4"}}),
     "threshold"),
    ("config-dim-changed", "mf-bpr", set_train(dim=5),
     "weights.npz does not fit the mf-bpr model"),
    ("config-model-changed", "mf-bpr", set_train(model="svd"),
     "weights.npz does not fit the svd model"),
    ("history-null", "mf-bpr", write("history.json", "null"),
     "history.json should hold a list of epochs, not null"),
    ("history-object", "mf-bpr", write("history.json", "{}"),
     "history.json should hold a list of epochs, not an object"),
    ("history-of-numbers", "mf-bpr", write("history.json", "[1, 2]"), "one object per epoch"),
    ("metrics-list", "mf-bpr", write("metrics.json", "[]"),
     "metrics.json should hold an object"),
    ("dataset-string", "mf-bpr", write("dataset.json", '"ml-100k"'),
     "dataset.json should hold an object, not a string"),
    ("mappings-without-user-ids", "mf-bpr",
     edit_json("mappings.json", lambda m: {"item_ids": m["item_ids"]}),
     "mappings.json lacks the list user_ids"),
    ("mappings-float-id", "mf-bpr",
     edit_json("mappings.json", lambda m: {**m, "item_ids": [1.5] + m["item_ids"][1:]}),
     "item_ids are not all whole numbers"),
    ("mappings-text-id", "mf-bpr",
     edit_json("mappings.json", lambda m: {**m, "user_ids": ["1"] + m["user_ids"][1:]}),
     "user_ids are not all whole numbers"),
    ("mappings-null-id", "mf-bpr",
     edit_json("mappings.json", lambda m: {**m, "user_ids": [None] + m["user_ids"][1:]}),
     "user_ids are not all whole numbers"),
    ("mappings-duplicate-id", "mf-bpr",
     edit_json("mappings.json", lambda m: {**m, "user_ids": [m["user_ids"][1]]
                                                             + m["user_ids"][1:]}),
     "lists some user_ids twice"),
    ("mappings-short-item-list", "mf-bpr",
     edit_json("mappings.json", lambda m: {**m, "item_ids": m["item_ids"][:-1]}),
     "mappings.json lists 40 users and 29 items but the weights are for 40 and 30"),
    ("mappings-long-user-list", "mf-bpr",
     edit_json("mappings.json", lambda m: {**m, "user_ids": m["user_ids"] + [999]}),
     "lists 41 users"),
    ("weights-empty", "mf-bpr", write("weights.npz", b""), "weights.npz is empty"),
    ("weights-truncated", "mf-bpr", truncate_weights, "truncated or not an array archive"),
    ("weights-flipped-byte", "mf-bpr", flip_byte_in_weights, "truncated or not an array archive"),
    ("weights-not-a-zip", "mf-bpr", write("weights.npz", "not an archive"),
     "truncated or not an array archive"),
    ("weights-single-npy", "mf-bpr", single_npy_as_weights, "lacks the array shape"),
    ("weights-zip-of-text", "mf-bpr", zip_of_text, "notes.txt is not an array"),
    ("weights-pickled-objects", "mf-bpr", edit_weights(pickled_objects),
     "holds pickled objects"),
    ("weights-missing-param", "mf-bpr", edit_weights(without("param.item.weight")),
     "does not fit the mf-bpr model"),
    ("weights-missing-shape", "mf-bpr", edit_weights(without("shape")),
     "lacks the array shape"),
    ("weights-wrong-shape", "mf-bpr",
     edit_weights(lambda a: {**a, "param.item.weight": a["param.item.weight"][:-1]}),
     "does not fit the mf-bpr model"),
    ("weights-integer-factors", "mf-bpr",
     edit_weights(lambda a: {**a, "param.user.weight": a["param.user.weight"].astype(int)}),
     "param.user.weight should hold decimal numbers"),
    ("weights-text-array", "mf-bpr", edit_weights(with_("param.extra", np.array(["a", "b"]))),
     "param.extra should hold decimal numbers"),
    ("weights-nan", "mf-bpr",
     edit_weights(lambda a: {**a, "param.user.weight": a["param.user.weight"] * np.nan}),
     "NaN or infinite"),
    ("weights-shape-changed", "mf-bpr", edit_weights(with_("shape", np.array([41, 30]))),
     "does not fit the mf-bpr model"),
    ("svd-short-user-factors", "svd",
     edit_weights(lambda a: {**a, "param.users": a["param.users"][:-1]}),
     "user vectors of shape (39, 4) for 40 users"),
    ("svd-long-item-factors", "svd",
     edit_weights(lambda a: {**a, "param.items": np.vstack([a["param.items"]] * 2)}),
     "item vectors of shape (60, 4) for 30 items"),
    ("svd-factor-dims-differ", "svd",
     edit_weights(lambda a: {**a, "param.items": a["param.items"][:, :2]}),
     "does not fit the svd model"),
    ("itemknn-similarity-out-of-range", "itemknn",
     edit_weights(lambda a: {**a, "param.sim.indices": a["param.sim.indices"] + 1000}),
     "sparse matrix param.sim is inconsistent"),
    ("itemknn-similarity-part-missing", "itemknn", edit_weights(without("param.sim.data")),
     "lacks part of the sparse matrix param.sim"),
    ("popularity-short-counts", "popularity",
     edit_weights(lambda a: {**a, "param.counts": a["param.counts"][:-2]}),
     "does not fit the popularity model"),
]


@pytest.mark.parametrize("name, model, damage, words", CASES, ids=[c[0] for c in CASES])
def test_damaged_run_gives_one_helpful_error(name, model, damage, words, trained, tmp_path,
                                             capsys):
    root = tmp_path / "runs"
    shutil.copytree(trained / model, root / "good")
    shutil.copytree(trained / model, root / name)
    damage(root / name)

    with pytest.raises(RunError) as info:
        load_run(root / name)
    message = str(info.value)
    assert words in message
    assert message.startswith(f"run {name} ")
    assert message.endswith("retrain it or delete the folder")
    assert "\n" not in message and not any(bad in message for bad in INTERNALS)

    for command in COMMANDS:
        argv = [command[0], str(root / name), *(a.format(tmp=tmp_path) for a in command[1:])]
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"recsys {command[0]}: error: {message}"]

    assert load_run(root / "good").model.n_items == 30
    assert root / "good" in list_runs(root)


def test_json_files_are_read_with_a_size_cap(trained, tmp_path, monkeypatch):
    shutil.copytree(trained / "mf-bpr", tmp_path / "big")
    metrics = tmp_path / "big" / "metrics.json"
    metrics.write_text(metrics.read_text() + " " * 20_000)  # still valid JSON, only larger
    monkeypatch.setattr(runs, "MAX_JSON_BYTES", 10_000)
    with pytest.raises(RunError, match="metrics.json is larger than 10,000 bytes"):
        load_run(tmp_path / "big")


def test_unreadable_file_is_reported(trained, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    shutil.copytree(trained / "mf-bpr", tmp_path / "locked")
    (tmp_path / "locked" / "weights.npz").chmod(0)
    with pytest.raises(RunError, match="weights.npz cannot be read"):
        load_run(tmp_path / "locked")


def test_every_model_family_loads_unchanged(trained):
    for model in MODELS:
        run = load_run(trained / model)
        assert run.train_config.model == model and len(run.item_ids) == run.model.n_items


def test_an_older_run_with_known_positives_in_its_weights_loads(trained, tmp_path):
    """Runs saved while models kept the known positives hold seen_indptr / seen_indices (even
    out of range if damaged): they are ignored, the model loads with the same scores."""
    shutil.copytree(trained / "mf-bpr", tmp_path / "old")
    edit_weights(lambda a: {**a, "seen_indptr": np.zeros(41, np.int64),
                            "seen_indices": np.array([1000], np.int64)})(tmp_path / "old")
    old, new = load_run(tmp_path / "old"), load_run(trained / "mf-bpr")
    users = np.arange(5)
    np.testing.assert_array_equal(old.model.score(users), new.model.score(users))
