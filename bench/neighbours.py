"""Neighbour-quality benchmark: which similarity lens and which default model give "similar
movies" lists that agree with genres and with held-out co-likes, at what Recall@10.

Every model is fitted twice on the same split: on train only (``refit=False``), whose lenses
are scored against the VALIDATION positives (the numbers to choose on), and by ``train_run``
(early stopping, refit on train + validation), whose lenses are scored against TEST. Lenses
read only the positives their model saw. The catalogue is every movie with at least
``recsys.evaluation.neighbours.MIN_POSITIVES`` known positives; "head" rows repeat the
measure for the 100 most popular of them (the movies people open).

    python -m bench.neighbours                      # P2 all candidates, P1 finalists
    python -m bench.neighbours --small              # < 60 s smoke run, prints the tables
    python -m bench.neighbours --results bench/NEIGHBOURS.md
    python -m bench.neighbours --defaults --results bench/NEIGHBOURS.md   # every model's
        # default config, the app's lists before / after (also writes bench/RESULTS.md)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    PROTOCOLS,
    command_line,
    machine,
    machine_lines,
    markdown_table,
    protocol_names,
    timed,
    write_json,
    write_section,
)
from bench.quality import json_path
from recsys.data.loading import load_movielens, movies_for
from recsys.evaluation import neighbours as nb
from recsys.evaluation.metrics import evaluate_model
from recsys.models import MODELS, create_model
from recsys.models.config import TrainConfig
from recsys.storage.runs import prepare_split, train_run

K, HEAD = 10, 100
# label -> config: today's defaults and the cheap ideas of the issue
CANDIDATES: dict[str, TrainConfig] = {
    "mf-bpr default": TrainConfig(),
    "mf-bpr pop-neg a=0.5": TrainConfig(neg_sampling="popularity", alpha=0.5),
    "mf-bpr pop-neg a=1.0": TrainConfig(neg_sampling="popularity", alpha=1.0),
    "mf-bpr wd=0.01": TrainConfig(weight_decay=0.01),
    "mf-bce default": TrainConfig.for_model("mf-bce"),
    "mf-bce pop-neg a=0.75": TrainConfig.for_model("mf-bce", neg_sampling="popularity"),
    "mf-als default": TrainConfig.for_model("mf-als"),
    "mf-als alpha=3": TrainConfig.for_model("mf-als", als_alpha=3.0),
    "svd": TrainConfig.for_model("svd"),
    "ease": TrainConfig.for_model("ease"),
}
FINALISTS = ("mf-bpr default", "mf-bpr pop-neg a=1.0", "mf-als default", "ease")
SMALL = ("mf-bpr default", "mf-als default", "ease")
# Lenses on the positives alone, no model: references and item-kNN variants.
DATA_LENSES = {
    "random": lambda known: nb.random_lens(known.shape[1]),
    "popularity": nb.popularity_lens,
    "cooc b=0.5 (cosine)": nb.cooccurrence_lens,
    "cooc b=0.5 shrink=20": lambda known: nb.cooccurrence_lens(known, 0.5, 20.0),
    "cooc b=0.75 shrink=20": lambda known: nb.cooccurrence_lens(known, 0.75, 20.0),
    "cooc b=0.8 shrink=20": lambda known: nb.cooccurrence_lens(known, 0.8, 20.0),
    "cooc b=1 min=3 (lift)": lambda known: nb.cooccurrence_lens(known, 1.0, 0.0, 3),
}
MODEL_LENSES = {"ease": ("weights", "cosine")}  # others: every vector lens
VECTOR_LENSES = ("cosine", "centred", "debiased")
FAMOUS = ("Toy Story (1995)", "Star Wars (1977)", "Scream (1996)",
          "Sense and Sensibility (1995)", "Heat (1995)", "Godfather, The (1972)",
          "Pulp Fiction (1994)", "Fargo (1996)", "Titanic (1997)", "Schindler's List (1993)")
EYEBALL = ("mf-bpr default/cosine", "mf-bpr default/debiased", "mf-als default/cosine",
           "mf-als default/debiased", "data/cooc b=0.75 shrink=20")
QUALITY = ("genre lift", "genre lift head", "pop pct", "pop rho", "cowatch lift",
           "cowatch lift head", "cowatch share")
COLUMNS = ("protocol", "model", "lens", "R@10", "NDCG@10", *QUALITY, "fit s")
APP_LENSES = ("cosine", "debiased", "dot")  # serving.EMBEDDING_LENSES
BEFORE_AFTER = ("model", "list", "before", "after", *(f"{q} {w}" for q in QUALITY[:6]
                                                     for w in ("before", "after")))
RECALL_MODELS = ("mf-bpr", "mf-als")  # Recall/NDCG on both protocols


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    info = machine()  # the load before our own work adds to it
    ml = load_movielens(download=not args.offline, progress=False)
    if args.defaults:
        return defaults_main(ml, args, info)
    rows: dict[str, list[dict[str, Any]]] = {"valid": [], "test": []}
    eyeball_lines: list[str] = []
    for protocol in protocol_names("P2" if args.small else args.protocols):
        names = SMALL if args.small else CANDIDATES if protocol == "P2" else FINALISTS
        views = protocol_rows(ml, protocol, names, args.small)
        for part in rows:
            rows[part] += views[part]["rows"]
        if protocol == "P2":
            eyeball_lines = eyeball(views["test"], args.eyeball.split(","))
    tables = {part: markdown_table(r, COLUMNS) for part, r in rows.items()}
    for part, table in tables.items():
        print(f"\n### {part}\n\n{table}")
    print("\n" + "\n".join(eyeball_lines))
    if args.results:
        write_section(Path(args.results), "neighbours", report(tables, eyeball_lines, info))
        write_json(json_path(args.results, "neighbours"),
                   {"command": command_line(), "small": args.small, "rows": rows})
        print(f"wrote the neighbours section of {args.results}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.neighbours",
                                description=__doc__.split("\n")[0])
    p.add_argument("--protocols", default="P2,P1", help="P2 (temporal): all candidates; "
                   "P1 (random): the finalists")
    p.add_argument("--small", action="store_true",
                   help="P2 only, three models at 2 epochs (< 60 s)")
    p.add_argument("--eyeball", default=",".join(EYEBALL),
                   help="model/lens pairs whose lists for ten famous movies are printed")
    p.add_argument("--results", default=None, help="markdown file to write the section into")
    p.add_argument("--offline", action="store_true", help="never download MovieLens")
    p.add_argument("--defaults", action="store_true", help="every model at its default config: "
                   "the app's lists before (cosine + item-kNN cosine) and after (default lens "
                   "+ damped co-occurrence), P2; mf-bpr / mf-als recall on P1 and P2")
    return p


def protocol_rows(ml, protocol: str, names, small: bool) -> dict[str, dict[str, Any]]:
    """Rows of every lens on validation and test; the test view also keeps what eyeball needs."""
    split = prepare_split(ml, PROTOCOLS[protocol])
    movies = movies_for(ml, split.train.item_ids)
    views = {"valid": View(split.train_pos.to_csr(), split.valid_pos.to_csr(), movies),
             "test": View(split.seen_at_test.to_csr(), split.test_pos.to_csr(), movies)}
    print(f"== {protocol}: {split.describe()}; catalogue {len(views['valid'].items)} (valid) / "
          f"{len(views['test'].items)} (test) movies", file=sys.stderr, flush=True)
    for view in views.values():
        for lens, make in DATA_LENSES.items():
            view.add(protocol, "data", lens, make(view.known), {})
    for name in names:
        config = replace(CANDIDATES[name], threads=1)
        if small:
            config = replace(config, epochs=min(config.epochs, 2))
        validated, seconds = timed(lambda c=config: create_model(replace(c, refit=False))
                                   .fit(*split.fit_parts()))
        valid = evaluate_model(validated, split, part="valid").metrics
        run = train_run(ml, PROTOCOLS[protocol], config, split=split)
        fitted = {"valid": (validated, valid, seconds),
                  "test": (run.model, run.metrics, run.metrics["fit_seconds"])}
        for part, (model, metrics, fit_s) in fitted.items():
            scores = {"R@10": metrics["recall@10"], "NDCG@10": metrics["ndcg@10"], "fit s": fit_s}
            for lens in MODEL_LENSES.get(config.model, VECTOR_LENSES):
                views[part].add(protocol, name, lens,
                                nb.lens_from_model(lens, model, views[part].known), scores)
        print(f"   {name:>22}: valid R@10 {valid['recall@10']:.4f}, test R@10 "
              f"{run.metrics['recall@10']:.4f}, fit {run.metrics['fit_seconds']:.1f}s",
              file=sys.stderr, flush=True)
    return {part: {"rows": view.rows, "view": view} for part, view in views.items()}


class View:
    """One side of the protocol: the positives the lenses saw, the held-out ones they are
    judged against, the catalogue, and the rows (and neighbour lists) measured so far."""

    def __init__(self, known, heldout, movies) -> None:
        self.known, self.heldout, self.movies = known, heldout, movies
        self.items = nb.catalogue(known)
        self.popularity = nb.item_counts(known)
        self.genres = nb.genre_matrix(movies["genres"])
        self.head = np.argsort(-self.popularity[self.items], kind="stable")[:HEAD]
        self.rows: list[dict[str, Any]] = []
        self.lists: dict[str, np.ndarray] = {}

    def add(self, protocol: str, model: str, lens_name: str, lens, scores: dict) -> None:
        neighbours = nb.top_k_neighbours(lens, self.items, K)
        self.lists[f"{model}/{lens_name}"] = neighbours
        every = self.measure(neighbours, slice(None))
        head = self.measure(neighbours, self.head)
        self.rows.append({
            "protocol": protocol, "model": model, "lens": lens_name, **scores,
            "genre lift": every["genre_lift"], "genre lift head": head["genre_lift"],
            "pop pct": every["popularity_pct"], "pop rho": every["popularity_spearman"],
            "cowatch lift": every["cowatch_lift"], "cowatch lift head": head["cowatch_lift"],
            "cowatch share": every["cowatch_share"],
        })

    def measure(self, neighbours: np.ndarray, rows) -> dict[str, float]:
        return nb.neighbour_quality(neighbours[rows], self.items[rows], self.genres,
                                    self.popularity, self.heldout, pool=self.items)


def eyeball(view: dict[str, Any], keys: list[str], n: int = 8) -> list[str]:
    """Top-``n`` neighbour titles of the famous movies for each ``model/lens`` key (test view)."""
    v = view["view"]
    titles = v.movies["title"].to_numpy()
    position = {t: j for j, t in enumerate(titles[v.items])}
    lines = []
    for title in FAMOUS:
        if title not in position:
            continue
        lines.append(f"**{title}**")
        for key in keys:
            if key in v.lists:
                shown = "; ".join(titles[v.lists[key][position[title], :n]])
                lines.append(f"- {key}: {shown}")
        lines.append("")
    return lines


def report(tables: dict[str, str], eyeball_lines: list[str], info: dict[str, Any]) -> str:
    lines = [
        "## Results (`bench/neighbours.py`)",
        "",
        *machine_lines(info),
        f"- command: `{command_line()}`",
        f"- k = {K}; catalogue = movies with >= {nb.MIN_POSITIVES} known positives; head = its "
        f"{HEAD} most popular; P1 = {PROTOCOLS['P1'].describe()}; P2 = "
        f"{PROTOCOLS['P2'].describe()}",
        "- `data` rows need no model (the same for every model); `R@10`/`NDCG@10` are the "
        "model's own ranking metrics on that part; `fit s` one run, 1 thread.",
        "",
        "### Validation (models fitted on train only; choose on these)",
        "",
        tables["valid"],
        "",
        "### Test (models from `train_run`: refit on train + validation)",
        "",
        tables["test"],
        "",
        "### Eyeball: top-8 neighbours of ten famous movies (P2, test-view models)",
        "",
        *eyeball_lines,
    ]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------- --defaults
def defaults_main(ml, args, info: dict[str, Any]) -> int:
    """Every registered model at its default config: all app lenses on P2 validation and
    test, the before/after table of the app's lists, and mf-bpr / mf-als recall on P1."""
    names = SMALL_DEFAULTS if args.small else tuple(MODELS)
    views, recall = defaults_views(ml, "P2", names, args.small), []
    for protocol in ("P2", "P1"):
        for name in RECALL_MODELS:
            recall.append(views["recall"][name] if protocol == "P2"
                          else fit_both(ml, protocol, name, args.small)[1])
    tables = {part: markdown_table(views[part].rows, COLUMNS) for part in ("valid", "test")}
    change = before_after(views["test"].rows, names)
    recall_table = markdown_table(recall, ("protocol", "model", "valid R@10", "valid NDCG@10",
                                           "test R@10", "test NDCG@10", "fit s"))
    change_table = markdown_table(change, BEFORE_AFTER)
    for title, table in (("test", tables["test"]), ("before/after", change_table),
                         ("recall", recall_table)):
        print(f"\n### {title}\n\n{table}")
    if args.results:
        body = defaults_report(tables, change_table, recall_table, info)
        write_section(Path(args.results), "neighbours-defaults", body)
        write_section(Path(args.results).with_name("RESULTS.md"), "neighbour-quality",
                      results_section(change_table, recall_table))
        write_json(json_path(args.results, "neighbours-defaults"),
                   {"command": command_line(), "small": args.small, "change": change,
                    "recall": recall, "test": views["test"].rows, "valid": views["valid"].rows})
        print(f"wrote the neighbours-defaults section of {args.results} and RESULTS.md")
    return 0


SMALL_DEFAULTS = ("mf-bpr", "mf-als", "itemknn")


def defaults_views(ml, protocol: str, names, small: bool) -> dict[str, Any]:
    split = prepare_split(ml, PROTOCOLS[protocol])
    movies = movies_for(ml, split.train.item_ids)
    views = {"valid": View(split.train_pos.to_csr(), split.valid_pos.to_csr(), movies),
             "test": View(split.seen_at_test.to_csr(), split.test_pos.to_csr(), movies)}
    for view in views.values():
        for lens in ("cooc-cosine", "cooc-damped"):
            view.add(protocol, "data", lens, nb.lens_from_model(lens, None, view.known), {})
    recall = {}
    for name in names:
        fitted, recall[name] = fit_both(ml, protocol, name, small, split)
        for part, model in fitted.items():
            row = recall[name]
            scores = {"R@10": row[f"{part} R@10"], "NDCG@10": row[f"{part} NDCG@10"],
                      "fit s": row["fit s"]}
            lenses = (APP_LENSES if model.item_factors() is not None
                      else ("weights",) if model.item_item_weights() is not None else ())
            for lens in lenses:
                views[part].add(protocol, name, lens,
                                nb.lens_from_model(lens, model, views[part].known), scores)
    return {**views, "recall": recall}


def fit_both(ml, protocol: str, name: str, small: bool, split=None):
    """(models fitted on train only and by train_run, their recall row)."""
    split = split or prepare_split(ml, PROTOCOLS[protocol])
    config = replace(TrainConfig.for_model(name), threads=1)
    if small:
        config = replace(config, epochs=min(config.epochs, 2))
    validated = create_model(replace(config, refit=False)).fit(*split.fit_parts())
    valid = evaluate_model(validated, split, part="valid").metrics
    run = train_run(ml, PROTOCOLS[protocol], config, split=split)
    print(f"   {protocol} {name:>10}: valid R@10 {valid['recall@10']:.4f}, test R@10 "
          f"{run.metrics['recall@10']:.4f}, fit {run.metrics['fit_seconds']:.1f}s",
          file=sys.stderr, flush=True)
    row = {"protocol": protocol, "model": name, "valid R@10": valid["recall@10"],
           "valid NDCG@10": valid["ndcg@10"], "test R@10": run.metrics["recall@10"],
           "test NDCG@10": run.metrics["ndcg@10"], "fit s": run.metrics["fit_seconds"]}
    return {"valid": validated, "test": run.model}, row


def before_after(rows: list[dict[str, Any]], names) -> list[dict[str, Any]]:
    """The app's lists per model: today's (cosine / item-kNN cosine) against the new
    defaults (each model's ``default_lens`` / damped co-occurrence), test view."""
    found = {(r["model"], r["lens"]): r for r in rows}
    out = []
    pairs = [("co-occurrence (every model)", ("data", "cooc-cosine"), ("data", "cooc-damped"))]
    for name in names:
        after = MODELS[name].default_lens
        if after is not None and (name, "cosine") in found:
            pairs.append((name, (name, "cosine"), (name, after)))
    for label, old, new in pairs:
        b, a = found[old], found[new]
        row = {"model": label, "list": "embedding" if old[0] != "data" else "reference",
               "before": old[1], "after": new[1]}
        for q in QUALITY[:6]:
            row[f"{q} before"], row[f"{q} after"] = b[q], a[q]
        out.append(row)
    return out


def defaults_report(tables, change_table: str, recall_table: str, info) -> str:
    return "\n".join([
        "## Every model at its default config (`bench/neighbours.py --defaults`)",
        "",
        *machine_lines(info),
        f"- command: `{command_line()}`",
        f"- P2 = {PROTOCOLS['P2'].describe()}; P1 = {PROTOCOLS['P1'].describe()}",
        "- before = today's app lists (embedding cosine; item-kNN cosine of known positives); "
        "after = each model's `default_lens` and `cooc-damped`; test view (models from "
        "`train_run`, judged on the test positives). itemknn and popularity have no "
        "embedding list (co-occurrence only).",
        "",
        "### Before / after (P2, test)",
        "",
        change_table,
        "",
        "### Recall (mf-bpr, mf-als; both protocols)",
        "",
        recall_table,
        "",
        "### Every app lens, P2 validation (choose on these)",
        "",
        tables["valid"],
        "",
        "### Every app lens, P2 test",
        "",
        tables["test"],
    ]) + "\n"


def results_section(change_table: str, recall_table: str) -> str:
    return "\n".join([
        "## Neighbour quality (`bench/neighbours.py --defaults`)",
        "",
        "Similar-movies lists over every movie with >= 5 known positives, k = 10, P2 test "
        "(bench/NEIGHBOURS.md has the measure and every lens): before = today's lists, "
        "after = the app's default lens per model and the damped co-occurrence list.",
        "",
        change_table,
        "",
        recall_table,
    ]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
