"""The CLI end to end on tiny data: train -> evaluate -> export, and clean errors."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from recsys.cli import main as cli
from tests.synthetic import tiny_movielens

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def tiny_data(monkeypatch):
    ml = tiny_movielens()
    monkeypatch.setattr(cli, "load_movielens", lambda *a, **k: ml)
    return ml


def run_cli(*args):
    return cli.main([str(a) for a in args])


def test_train_evaluate_export(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--model", "mf-bce", "--dim", 8, "--epochs", 3, "--batch-size", 64,
                   "--negatives", 2, "--neg-sampling", "popularity", "--out", out, "--quiet") == 0
    assert "recall@10" in capsys.readouterr().out
    assert run_cli("evaluate", out, "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    for key in ("recall@10", "precision@10", "ndcg@10", "mrr@10", "hit@10", "coverage@10",
                "novelty@10"):
        assert 0 <= payload[key] <= (100 if key == "novelty@10" else 1)
    assert payload["protocol"]["split"] == "temporal"
    assert run_cli("export", out, "--out", tmp_path / "e.npz") == 0
    with np.load(tmp_path / "e.npz", allow_pickle=False) as z:
        assert z["item_factors"].shape == (30, 8) and z["user_factors"].shape == (40, 8)
        assert z["titles"][0] == "Movie 1 (1981)"
        assert z["train_pairs"].shape[1] == 2 and len(z["test_pairs"]) > 0
        assert np.isin(z["test_pairs"][:, 1], z["item_ids"]).all()
    assert run_cli("export", out, "--format", "projector", "--out", tmp_path / "proj") == 0
    vectors = np.loadtxt(tmp_path / "proj" / "vectors.tsv", delimiter="\t")
    meta = (tmp_path / "proj" / "metadata.tsv").read_text().splitlines()
    assert vectors.shape == (30, 8) and len(meta) == 31
    assert meta[0] == "title\tgenres\tyear\tpopularity"


def test_mf_mse_reports_rmse(tmp_path, capsys):
    out = tmp_path / "mse"
    assert run_cli("train", "--model", "mf-mse", "--dim", 4, "--epochs", 2, "--out", out,
                   "--quiet") == 0
    capsys.readouterr()
    assert run_cli("evaluate", out, "--json") == 0
    assert "rmse" in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("args, message", [
    (["evaluate", "/no/such/run"], "no run directory"),
    (["train", "--dim", "0", "--out", "x"], "dim must be between"),
    (["train", "--lr", "-1", "--out", "x"], "lr must be between"),
])
def test_bad_input_gives_one_line_error(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_unknown_model_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("train", "--model", "nope")
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_export_of_model_without_embeddings_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "pop"
    assert run_cli("train", "--model", "popularity", "--out", out, "--quiet") == 0
    assert run_cli("export", out, "--out", tmp_path / "p.npz") == 2
    assert "no item embeddings" in capsys.readouterr().err


def test_data_command_reports_source_and_counts(capsys):
    assert run_cli("data") == 0
    out = capsys.readouterr().out
    assert "source:" in out and "ratings:" in out


def test_pin_show_clear_without_loading_data(tmp_path, capsys, monkeypatch):
    assert run_cli("train", "--model", "popularity", "--out", tmp_path / "runs" / "pop",
                   "--quiet") == 0
    capsys.readouterr()

    def refuse(*args, **kwargs):
        raise AssertionError("pin must not load MovieLens")

    monkeypatch.setattr(cli, "load_movielens", refuse)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECSYS_RUNS_DIR", raising=False)
    assert run_cli("pin", "--show") == 0  # default runs dir: ./runs
    assert capsys.readouterr().out == "no run is pinned\n"
    assert run_cli("pin", "runs/pop/") == 0
    assert capsys.readouterr().out == (
        "pinned pop: the app's default model for new visitors (in runs)\n")
    assert run_cli("pin", "--show") == 0
    assert capsys.readouterr().out == "pop\n"
    monkeypatch.setenv("RECSYS_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert run_cli("pin", "--show", "--runs-dir", "runs") == 0
    assert capsys.readouterr().out == "pop\n"
    assert run_cli("pin", "--clear", "--runs-dir", "runs") == 0
    assert "no run is pinned in runs" in capsys.readouterr().out
    assert run_cli("pin", "--show", "--runs-dir", "runs") == 0
    assert capsys.readouterr().out == "no run is pinned\n"


@pytest.mark.parametrize("args, message", [
    (["pin", "runs/nope"], "no run directory at runs/nope"),
    (["pin", "runs/broken"], "run broken is damaged: config.json is not valid JSON"),
    (["pin", "runs/.jobs"], "'.jobs' is not a run folder name"),
    (["pin"], "give the run folder to pin"),
    (["pin", "runs/broken", "--show"], "not both"),
    (["pin", "runs/broken", "--runs-dir", "runs"], "--runs-dir is for --show / --clear"),
])
def test_pin_errors_are_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / ".jobs").mkdir(parents=True)
    (tmp_path / "runs" / "broken").mkdir()
    for name in ("config.json", "metrics.json", "history.json", "mappings.json", "dataset.json",
                 "weights.npz"):
        (tmp_path / "runs" / "broken" / name).write_text("{")
    assert run_cli(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recsys pin: error: ") and message in err[0]
    assert not (tmp_path / "runs" / "pinned.json").exists()


def test_pin_without_a_folder_name_uses_the_real_folder(tmp_path, capsys, monkeypatch):
    assert run_cli("train", "--model", "popularity", "--out", tmp_path / "pop", "--quiet") == 0
    monkeypatch.chdir(tmp_path / "pop")
    assert run_cli("pin", ".") == 0
    assert "pinned pop:" in capsys.readouterr().out
    assert json.loads((tmp_path / "pinned.json").read_text())["run"] == "pop"


def test_unwritable_output_is_one_line(tmp_path, capsys):
    out = tmp_path / "bpr"
    assert run_cli("train", "--model", "mf-bpr", "--dim", 4, "--epochs", 1, "--out", out,
                   "--quiet") == 0
    (tmp_path / "file").write_text("")
    capsys.readouterr()
    assert run_cli("export", out, "--out", tmp_path / "file" / "e.npz") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("recsys export: error:")


# ---------------------------------------------------------------------------- start-up and output
def run_process(*args, cwd=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_start_up_imports_nothing_heavy():
    """`recsys --help` and argument errors answer in a fraction of a second: parsing needs
    only recsys.models.config (bench/CLI_STARTUP.md)."""
    code = ("import sys, recsys.cli.main as cli\n"
            "try:\n    cli.build_parser().parse_args(['train', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "heavy = {'torch', 'faiss', 'pandas', 'numpy', 'scipy', 'sklearn', 'streamlit'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    result = run_process("-c", code, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_argument_error_is_one_line_without_loading_anything():
    result = run_process("-m", "recsys.cli", "train", "--dim", "abc", cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr == ("recsys train: error: argument --dim: invalid int value: 'abc' "
                             "(see `recsys train --help`)\n")


def test_data_help_says_where_the_cache_is():
    result = run_process("-m", "recsys.cli", "data", "--help", cwd=ROOT)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "wheels/ folder" in text and "ml-100k/ folder in the cache" in text


def test_every_data_command_names_its_source(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli("train", "--model", "popularity", "--out", out, "--quiet") == 0
    assert capsys.readouterr().err.startswith("data: ml-100k from tests")
    for args in (["data"], ["evaluate", out], ["export", out, "--out", tmp_path / "e"]):
        assert run_cli(*args) in (0, 2)  # a popularity run has no vectors to export
        err = capsys.readouterr().err
        assert err.startswith("data: ml-100k from tests\n"), (args, err)


def test_export_writes_to_the_exports_folder_by_default(tmp_path, capsys, monkeypatch):
    assert run_cli("train", "--model", "mf-bpr", "--dim", 4, "--epochs", 1,
                   "--out", tmp_path / "runs" / "bpr", "--quiet") == 0
    monkeypatch.chdir(tmp_path)
    assert run_cli("export", "runs/bpr/") == 0
    assert "wrote exports/bpr.npz" in capsys.readouterr().out
    assert run_cli("export", "runs/bpr", "--format", "projector") == 0
    assert sorted(p.name for p in (tmp_path / "exports" / "bpr-projector").iterdir()) == [
        "metadata.tsv", "vectors.tsv"]
    assert run_cli("export", "runs/bpr") == 2  # never replaces an earlier export silently
    assert "exports/bpr.npz already exists" in capsys.readouterr().err


def test_exports_folder_is_gitignored():
    assert "exports/" in (ROOT / ".gitignore").read_text().splitlines()


# ---------------------------------------------------------------------------- scripts
@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="no .venv")
def test_setup_does_nothing_the_second_time():
    """Once installed, setup.sh neither reinstalls nor prints anything, and is quick."""
    stamps = sorted((ROOT / ".venv").glob(".installed-*"))
    if not stamps or not stamps[-1].name.endswith(("-runtime", "-test")):
        pytest.skip("this .venv was not installed by the current scripts/setup.sh")
    for args in ([], ["test"] if stamps[-1].name.endswith("-test") else []):
        start = time.perf_counter()
        result = subprocess.run(["bash", "scripts/setup.sh", *args], cwd=ROOT, timeout=60,
                                capture_output=True, text=True, env={**os.environ, "CI": ""})
        assert result.returncode == 0, result.stderr
        assert (result.stdout + result.stderr).strip() == "" or "Chromium" in result.stdout
        assert time.perf_counter() - start < 5
    assert sorted((ROOT / ".venv").glob(".installed-*")) == stamps


def test_the_busy_port_check_is_not_fooled_by_time_wait():
    """scripts/run.sh's check: a port whose server has just stopped (its connections in
    TIME-WAIT) is free, one with a listening server is busy."""
    import socket

    check = [sys.executable, str(ROOT / "scripts" / "port_is_free.py")]
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert subprocess.run([*check, str(port)]).returncode == 1  # listening: busy
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side of the connection waits
        client.close()
    states = subprocess.run(["ss", "-tan", f"sport = :{port}"], capture_output=True,
                            text=True).stdout
    if "TIME-WAIT" in states:
        old_check = [sys.executable, "-c", "import socket,sys; s=socket.socket(); "
                     "s.bind(('127.0.0.1', int(sys.argv[1])))", str(port)]
        assert subprocess.run(old_check, stderr=subprocess.DEVNULL).returncode != 0
    assert subprocess.run([*check, str(port)]).returncode == 0  # stopped: free again
