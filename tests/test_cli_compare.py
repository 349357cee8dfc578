"""`recsys compare`: the A/B table, the interleaving result and the sample sizes, in text and
JSON, on the synthetic world; one-line errors for what cannot be compared."""

from __future__ import annotations

import json
import shutil

import pytest

from recsys.cli import compare as cli_compare
from recsys.cli import main as cli
from tests.synthetic import fit, make_world


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    world = make_world()
    return {name: fit(world, root, name).run.path for name in ("mf-bpr", "popularity")}


@pytest.fixture(autouse=True)
def synthetic_data(monkeypatch):
    world = make_world()
    monkeypatch.setattr(cli_compare, "load_movielens", lambda data_dir, download: world)
    return world


def compare(capsys, *args):
    code = cli.main(["compare", *map(str, args), "--repeats", "20"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_text_report_has_each_section_and_a_sentence_per_number(runs, capsys):
    code, out, err = compare(capsys, runs["mf-bpr"], runs["popularity"])
    assert code == 0, err
    assert err.startswith("data: synthetic from test\n")
    assert "A = mf-bpr (dot)\nB = popularity (dot)" in out
    for heading in ("Offline A/B", "Team-draft interleaving", "Users needed to detect"):
        assert heading in out
    for metric in ("recall@10", "ndcg@10", "hit@10"):
        assert f"- {metric}: arm A's" in out  # the table row's sentence
    assert "(Welch's t-test)" in out and "(two-sided sign test)" in out
    assert "- In 20 simulated experiments per size" in out
    assert all(len(line) <= cli_compare.WIDTH for line in out.splitlines())


def test_json_is_reproducible_from_the_seed(runs, capsys):
    args = (runs["mf-bpr"], runs["popularity"], "--json", "--seed", "5", "--k", "5")
    first = json.loads(compare(capsys, *args)[1])
    again = json.loads(compare(capsys, *args)[1])
    assert first == again
    assert first["k"] == 5 and first["seed"] == 5
    assert [row["metric"] for row in first["ab"]] == ["recall@5", "ndcg@5", "hit@5"]
    il = first["interleaving"]
    assert il["wins_a"] + il["wins_b"] + il["ties"] == first["users"]
    assert len(first["detection"]["sizes"]) == len(first["detection"]["ab_rate"])


def test_one_run_against_itself_in_two_variants(runs, capsys):
    code, out, err = compare(capsys, runs["mf-bpr"], runs["mf-bpr"], "--variant-b", "cosine")
    assert code == 0, err
    assert "B = mf-bpr (cosine)" in out


@pytest.mark.parametrize(("extra", "message"), [
    (["--variant-b", "cosine"], "the cosine variant needs user and item vectors"),
    (["--k", "0"], "--k must be at least 1"),
])
def test_errors_are_one_line(runs, capsys, extra, message):
    code, _, err = compare(capsys, runs["mf-bpr"], runs["popularity"], *extra)
    assert code == 2
    *source, error = err.strip().splitlines()  # the data source line, when data was loaded
    assert error.startswith("recsys compare: error:") and message in error
    assert len(source) <= 1


def test_runs_of_different_splits_are_refused(runs, capsys, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(runs["popularity"], other)
    config = json.loads((other / "config.json").read_text())
    config["split"]["test_fraction"] = 0.3
    (other / "config.json").write_text(json.dumps(config))
    code, _, err = compare(capsys, runs["mf-bpr"], other)
    assert code == 2 and "different test users" in err


# ---------------------------------------------------------------------------- a served log
@pytest.fixture(scope="module")
def served_log(runs, tmp_path_factory):
    """A log of mf-bpr's /recommend list for every user (twice: only the first visit counts),
    written as the API writes it."""
    from recsys.serving import served_log as log
    from recsys.serving.catalog import Catalog
    from recsys.storage.runs import load_run

    world = make_world()
    catalog = Catalog.build(load_run(runs["mf-bpr"]), world)
    folder = tmp_path_factory.mktemp("log")
    writer = log.ServedLog(folder)
    for visit in range(2):
        for user in catalog.run.user_ids.tolist():
            inputs = {"user": user, "k": 10, "lens": "dot", "exclude_seen": True}
            _, items = log.recommend_list(catalog, inputs)
            writer.append(log.make_record(catalog, "recommend", inputs, items, 1.0, f"{visit}"))
    writer.close()
    return folder


def test_a_log_replayed_against_its_own_run_shows_no_difference(runs, served_log, capsys):
    code = cli.main(["compare-log", str(served_log), str(runs["mf-bpr"]), "--json",
                     "--repeats", "20"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["a"] == "served log (mf-bpr)" and result["b"] == "mf-bpr (dot)"
    assert "log: 80 records, the first /recommend list of 40 users" in out.err
    detection = result["detection"]  # the logged lists are the run's lists: nothing to find
    assert set(detection["ab_rate"]) == {0.0} and set(detection["interleaving_rate"]) == {0.0}


def test_a_log_replayed_against_another_run(runs, served_log, capsys):
    code = cli.main(["compare-log", str(served_log), str(runs["popularity"]), "--repeats", "20"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "A = served log (mf-bpr)\nB = popularity (dot)" in out.out
    assert "Team-draft interleaving" in out.out


def test_a_log_of_other_data_is_refused(runs, served_log, capsys, tmp_path):
    lines = (served_log / "served.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    (tmp_path / "other.jsonl").write_text(json.dumps({**record, "fingerprint": "0" * 16}) + "\n")
    code = cli.main(["compare-log", str(tmp_path / "other.jsonl"), str(runs["mf-bpr"])])
    assert code == 2
    assert "was served on other data" in capsys.readouterr().err


def test_the_flags_offer_what_the_core_knows():
    """The CLI spells the choices out (parsing must not import numpy); they must stay equal."""
    from recsys.evaluation import online
    from recsys.lessons import comparison

    assert cli_compare.VARIANT_CHOICES == tuple(comparison.VARIANTS)
    assert cli_compare.METRIC_CHOICES == online.AB_METRICS
