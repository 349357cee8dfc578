"""The benchmark scripts produce well-formed tables (never checks timings)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from bench import quality, tune
from bench.common import markdown_table, write_section
from recsys.data.loading import load_movielens
from recsys.errors import DataUnavailableError
from recsys.models import MODELS
from recsys.models.config import TrainConfig


def _table(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the first markdown table in ``text``."""
    all_lines = text.splitlines()
    start = next(i for i, line in enumerate(all_lines) if line.startswith("|"))
    lines = []
    for line in all_lines[start:]:
        if not line.startswith("|"):
            break
        lines.append(line)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert set(lines[1].strip("|").split("|")) == {"---"}
    return header, [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]


@pytest.fixture(scope="module")
def movielens():
    try:
        return load_movielens(download=False, progress=False)
    except DataUnavailableError:
        pytest.skip("MovieLens 100K is not available offline")


@pytest.mark.movielens
def test_quality_small_table(movielens, tmp_path, capsys):
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"P2": {"models": {"mf-bpr": {"params": {
        "lr": 0.005, "weight_decay": 0.003, "epochs": 60, "patience": 5}}}}}))
    results = tmp_path / "RESULTS.md"
    assert quality.main(["--small", "--offline", "--tuned", str(tuned),
                         "--results", str(results)]) == 0
    header, rows = _table(capsys.readouterr().out)
    assert header == list(quality.COLUMNS)
    assert all(len(row) == len(header) for row in rows)
    col = {name: i for i, name in enumerate(header)}
    keys = {(r[col["model"]], r[col["variant"]]) for r in rows}
    assert {(m, "default") for m in MODELS} <= keys
    assert ("mf-bpr", "tuned") in keys and ("textbook-bpr", "reference") in keys
    assert ("textbook-bpr", "tuned") in keys
    has_implicit = importlib.util.find_spec("implicit") is not None
    assert (("implicit-als", "reference") in keys) == has_implicit
    assert (("implicit-bpr", "tuned") in keys) == has_implicit
    assert {r[col["protocol"]] for r in rows} == {"P2"}
    for row in rows:
        for metric in quality.METRICS:
            assert 0.0 <= float(row[col[metric]]) <= 1.0, (row, metric)
        assert float(row[col["fit s"]]) >= 0 and float(row[col["score-all s"]]) >= 0
    text = results.read_text()
    assert text.count("<!-- quality:start -->") == 1 and "## Quality" in text
    assert "Reference tuning" in text
    saved = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert len(saved["rows"]) == len(rows) and saved["reference_trials"]


def test_write_section_replaces_its_own_part(tmp_path):
    path = tmp_path / "RESULTS.md"
    write_section(path, "quality", "old quality\n")
    write_section(path, "speed", "speed\n")
    write_section(path, "quality", "new quality\n")
    text = path.read_text()
    assert "old quality" not in text and text.count("new quality") == 1
    assert text.index("new quality") < text.index("speed")


def test_markdown_table_shape():
    table = markdown_table([{"a": 0.5, "b": "x|y"}, {"a": 12.345}], ["a", "b"])
    header, rows = _table(table)
    assert header == ["a", "b"]
    assert rows == [["0.5000", "x/y"], ["12.35", ""]]


def test_tune_candidates_start_at_default_and_refine_by_one_step():
    space = tune.SPACES["mf-bpr"]
    first, *rest = tune.initial_candidates("mf-bpr", space, 10, seed=0)
    default = TrainConfig()
    assert first == {k: getattr(default, k) for k in space}
    assert len(rest) == 9 and first not in rest
    assert len({tune._key("mf-bpr", p) for p in [first, *rest]}) == 10
    trial = {"model": "mf-bpr", "params": first, "valid_recall@10": 0.1}
    for params in tune.refine_candidates("mf-bpr", space, [trial], 50, 0, set(), {}):
        changed = [k for k in space if params[k] != first[k]]
        assert len(changed) == 1
        values = space[changed[0]]
        assert abs(values.index(params[changed[0]]) - values.index(first[changed[0]])) == 1
    grid = tune.initial_candidates("ease", tune.SPACES["ease"], 5, seed=0)
    assert len(grid) == len(tune.SPACES["ease"]["ease_lambda"])


def test_cached_trials_gain_settings_added_to_a_space_with_the_value_they_ran_with(tmp_path):
    """A trial run before als_recency was searched ran without recency: read back, it carries
    als_recency=0 and the key a new trial of the same settings gets, so the cache matches."""
    params = {"dim": 64, "als_lambda": 30.0, "als_alpha": 3.0, "als_nu": 1.0, "als_cg_steps": 0}
    fixed = {"epochs": 60, "patience": 5}
    path = tmp_path / "trials-P1.json"
    path.write_text(json.dumps([{"model": "mf-als", "params": params, "fixed": fixed,
                                 "key": tune._key("mf-als", {**params, **fixed}),
                                 "valid_recall@10": 0.2, "stage": "random"}]))
    (trial,) = tune.read_trials(path)
    assert trial["params"]["als_recency"] == 0.0
    assert trial["key"] == tune._key("mf-als", {**params, "als_recency": 0.0, **fixed})
    assert tune._in_space(trial, tune.SPACES["mf-als"])


def test_summary_headline_and_plot(tmp_path):
    from bench import summary

    def row(protocol, model, variant, recall, fit):
        return {"protocol": protocol, "model": model, "variant": variant, "recall@10": recall,
                "ndcg@10": recall, "fit s": fit, "settings": "-"}

    rows = [row("P1", "mf-bpr", "default", 0.24, 2.0), row("P1", "implicit-als", "reference",
            0.19, 0.5), row("P1", "implicit-als", "tuned", 0.25, 0.6),
            row("P1", "ease", "default", 0.253, 1.0)]
    speed = {"config": {}, "fit": [
        {"variant": v, "what runs": v, "median fit s": s, "cpu s": s, "runs": 3,
         "test recall@10": 0.1}
        for v, s in (("default model (mf-als)", 0.3), ("mf-als loop only", 0.2),
                     ("implicit ALS", 0.25), ("recsys default", 2.0), ("recsys loop only", 1.0),
                     ("textbook", 20.0), ("implicit BPR", 0.5))]}
    text = summary.headline({"rows": rows}, speed, None)
    assert "no, short by 0.0100" in text
    assert "**0.30 CPU s** (wall 0.30 s; target <= 1 s: met)" in text
    assert "mf-als sweeps: 0.20 CPU s vs implicit ALS 0.25 CPU s = 0.80x its time " \
           "(target <= 1: met)" in text
    assert "mf-bpr loop (default engine): 1.00 CPU s vs implicit BPR 0.50 CPU s = 2.00x its " \
           "time (target <= 0.5: missed)" in text
    assert "textbook / this = **10.0x**" in text and "textbook / this = **20.0x**" in text
    assert "scale: MISSING" in text
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- quality:start -->\nq\n<!-- quality:end -->\n")
    write_section(results, "headline", text, new_at="top")
    write_section(results, "headline", text, new_at="top")
    body = results.read_text()
    assert body.count("<!-- headline:start -->") == 1
    assert body.index("Headline") < body.index("quality:start")
    # a later headline without speed.json keeps the speed part this one wrote, word for word
    kept = summary.headline({"rows": rows}, None, None, summary.previous_parts(body))
    speed_part = text[text.index("### Speed"):text.index("- scale: MISSING")]
    assert speed_part in kept and "speed: MISSING" not in kept
    assert summary.headline(None, None, None, {}).count("MISSING") == 3  # nothing to keep
    # a MISSING line is never kept beside fresh figures (it has no heading of its own)
    no_speed = summary.headline({"rows": rows}, None, None)
    later = summary.headline(None, speed, None, summary.previous_parts(
        f"<!-- headline:start -->\n{no_speed}<!-- headline:end -->\n"))
    assert "speed: MISSING" not in later and later.count("scale: MISSING") == 1
    pytest.importorskip("plotly")
    summary.plot(rows, tmp_path / "plot.html")
    assert "cdn.plot.ly" in (tmp_path / "plot.html").read_text()
