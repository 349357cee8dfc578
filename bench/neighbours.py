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
    python -m bench.neighbours --class-default --results bench/NEIGHBOURS.md   # issue 22:
        # the class set's lists, candidate lenses for the default model, robustness, eyeball
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
from recsys.evaluation.lenses import EMBEDDING_LENSES
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
APP_LENSES = EMBEDDING_LENSES  # the app's lenses, so a new one (and a default_lens naming
# it) is measured by --defaults without a change here
BEFORE_AFTER = ("model", "list", "before", "after", *(f"{q} {w}" for q in QUALITY[:6]
                                                     for w in ("before", "after")))
RECALL_MODELS = ("mf-bpr", "mf-als")  # Recall/NDCG on both protocols


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    info = machine()  # the load before our own work adds to it
    ml = load_movielens(download=not args.offline, progress=False)
    if args.defaults:
        return defaults_main(ml, args, info)
    if args.class_default:
        return class_default_main(ml, args, info)
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
    p.add_argument("--class-default", action="store_true",
                   help="issue 22: the class set's similar-movie lists and candidate lenses of "
                   "the default model (mf-als) against today's cosine, P2 (P1 and seeds 1-3 as "
                   "robustness checks unless --small), with the eyeballed lists")
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
    return eyeball_films(view["view"], keys, FAMOUS, n)


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


# ---------------------------------------------------------------------------- --class-default
# Issue 22: the Similar movies page's default list, now that the class set (the default mf-als,
# mf-bpr, popularity, itemknn, ease, svd, all on the default protocol) is always trained.
CLASS_SET = ("mf-als", "mf-bpr", "ease", "svd", "itemknn")  # popularity has no list of its own
HYBRID = "hybrid w=1"  # the chosen list (see hybrid_lens)
CLASS_LENSES = {
    "mf-als": ("cosine", "debiased", "centred", "debiased floor 20", "cosine-0.05z(log n)",
               "hybrid w=0.5", HYBRID, "hybrid w=2"),
    "mf-bpr": ("cosine", "debiased"),
    "ease": ("cosine", "debiased", "weights"),
    "svd": ("cosine", "debiased"),
    "itemknn": ("weights",),
}
ROBUST_LENSES = ("cosine", "debiased", HYBRID)  # mf-als on P1 and over seeds 1-3
CLASS_FILMS = ("Toy Story (1995)", "Pulp Fiction (1994)", "Fargo (1996)", "Die Hard (1988)",
               "Star Wars (1977)", "Godfather, The (1972)", "Schindler's List (1993)")
CLASS_EYEBALL = ("mf-als/cosine", "mf-als/debiased", f"mf-als/{HYBRID}", "data/cooc-damped",
                 "ease/debiased")
CLASS_COLUMNS = ("protocol", "model", "lens", "genre lift", "genre lift head", "cowatch lift",
                 "cowatch lift head", "pop pct", "pop rho", "meets")
TODAY = ("mf-als", "cosine")  # today's default list: the constraints' reference


def class_default_main(ml, args, info: dict[str, Any]) -> int:
    """Every list the class set can show on the Similar movies page, the candidate lenses of
    the default model, and which meet issue 22's constraints (pop pct no higher than a random
    list's, genre lift and head genre lift at least today's mf-als cosine); P2 validation to
    choose, test to report; mf-als on P1 and over seeds 1-3 as robustness checks."""
    small = args.small
    names = ("mf-als", "ease") if small else CLASS_SET
    p2 = class_views(ml, "P2", names, small)
    rows = {part: p2[part].rows for part in ("valid", "test")}
    robust: list[dict[str, Any]] = []
    if not small:
        p1 = class_views(ml, "P1", ("mf-als",), small, lenses=ROBUST_LENSES)
        robust += [{**r, "part": part} for part in ("valid", "test") for r in p1[part].rows]
        robust += seed_rows(ml, (1, 2, 3))
    tables = {part: markdown_table(r, CLASS_COLUMNS) for part, r in rows.items()}
    robust_table = markdown_table(robust, ("part", *CLASS_COLUMNS))
    lines = eyeball_films(p2["test"], CLASS_EYEBALL, CLASS_FILMS)
    matters = lens_matters(p2["test"], "mf-als/cosine", f"mf-als/{HYBRID}", CLASS_FILMS)
    for title, table in (("P2 valid", tables["valid"]), ("P2 test", tables["test"]),
                         ("robustness", robust_table)):
        print(f"\n### {title}\n\n{table}")
    print("\n" + "\n".join(lines + matters))
    if args.results:
        body = class_default_report(tables, robust_table, lines, matters, info)
        write_section(Path(args.results), "neighbours-class-default", body)
        write_json(json_path(args.results, "neighbours-class-default"),
                   {"command": command_line(), "small": small, "robust": robust, **rows})
        print(f"wrote the neighbours-class-default section of {args.results}")
    return 0


def class_views(ml, protocol: str, names, small: bool, lenses=None) -> dict[str, View]:
    """Valid and test views of ``protocol`` with the random and cooc-damped references and
    each model's candidate lenses (``lenses`` for every model if given), "meets" filled in."""
    split = prepare_split(ml, PROTOCOLS[protocol])
    movies = movies_for(ml, split.train.item_ids)
    views = {"valid": View(split.train_pos.to_csr(), split.valid_pos.to_csr(), movies),
             "test": View(split.seen_at_test.to_csr(), split.test_pos.to_csr(), movies)}
    for view in views.values():
        view.add(protocol, "data", "random", nb.random_lens(view.known.shape[1]), {})
        view.add(protocol, "data", "cooc-damped",
                 nb.lens_from_model("cooc-damped", None, view.known), {})
    for name in names:
        fitted, _ = fit_both(ml, protocol, name, small, split)
        for part, model in fitted.items():
            for lens in lenses or CLASS_LENSES[name]:
                views[part].add(protocol, name, lens, class_lens(lens, model, views[part]), {})
    for view in views.values():
        mark_constraints(view.rows)
    return views


def seed_rows(ml, seeds) -> list[dict[str, Any]]:
    """mf-als fitted on P2 train only with other seeds: the robust lenses on validation."""
    split = prepare_split(ml, PROTOCOLS["P2"])
    view = View(split.train_pos.to_csr(), split.valid_pos.to_csr(),
                movies_for(ml, split.train.item_ids))
    view.add("P2", "data", "random", nb.random_lens(view.known.shape[1]), {})
    for seed in seeds:
        config = replace(TrainConfig.for_model("mf-als"), threads=1, refit=False, seed=seed)
        model = create_model(config).fit(*split.fit_parts())
        for lens in ROBUST_LENSES:
            view.add("P2", f"mf-als seed {seed}", lens, class_lens(lens, model, view), {})
    rows = view.rows
    for seed in seeds:  # each seed against its own cosine
        mark_constraints([r for r in rows if r["model"] in ("data", f"mf-als seed {seed}")],
                         today=(f"mf-als seed {seed}", "cosine"))
    return [{**r, "part": "valid"} for r in rows if r["model"] != "data"]


def class_lens(name: str, model, view: View) -> nb.Similarity:
    """A candidate list by name: a :data:`nb.LENSES` entry, or one only this section tries."""
    known = view.known
    if name.startswith("hybrid w="):
        return hybrid_lens(model, known, view.items, float(name.split("=")[1]))
    if name == "debiased floor 20":  # neighbours need >= 20 known positives, not 5
        debiased = nb.lens_from_model("debiased", model, known)
        floor = np.where(view.popularity >= 20, 0.0, -np.inf)
        return lambda block: debiased(block) + floor
    if name == "cosine-0.05z(log n)":  # cosine shrunk towards rarer neighbours
        cosine = nb.lens_from_model("cosine", model, known)
        log_n = np.log1p(view.popularity.astype(np.float64))
        z = (log_n - log_n[view.items].mean()) / log_n[view.items].std()
        return lambda block: cosine(block) - 0.05 * z
    return nb.lens_from_model(name, model, known)


def hybrid_lens(model, known, pool: np.ndarray, weight: float = 1.0) -> nb.Similarity:
    """``debiased(a, b) + weight * cooc(a, b) / max_c cooc(a, c)``: the model's debiased cosine
    plus its damped co-occurrence (cooc-damped) relative to the query's most co-liked candidate
    (``c`` over ``pool``, the catalogue, never ``a`` itself), so both terms are at most 1.

    Where many people co-liked ``a`` the co-likes lead and the embedding breaks ties and fills
    the list; where few did (rare movies, where co-occurrence is noise) the embedding leads.
    """
    debiased = nb.lens_from_model("debiased", model, known)
    cooc = nb.lens_from_model("cooc-damped", model, known)
    outside = np.ones(known.shape[1], bool)
    outside[pool] = False

    def rows(block: np.ndarray) -> np.ndarray:
        c = cooc(block)
        c[:, outside] = 0.0
        c[np.arange(len(block)), block] = 0.0
        best = c.max(axis=1, keepdims=True)
        return debiased(block) + weight * c / np.where(best > 0, best, 1.0)

    return rows


def mark_constraints(rows: list[dict[str, Any]], today: tuple[str, str] = TODAY) -> None:
    """Set each row's "meets": "yes", or which of issue 22's constraints it fails against
    ``today``'s row (genre lift, head genre lift) and the random list (pop pct)."""
    found = {(r["model"], r["lens"]): r for r in rows}
    ref, chance = found.get(today), found.get(("data", "random"))
    for r in rows:
        if ref is None or r is ref or (r["model"], r["lens"]) == ("data", "random"):
            r["meets"] = "today" if r is ref else ""
            continue
        fails = [label for label, bad in (
            ("genre", r["genre lift"] < ref["genre lift"]),
            ("head genre", r["genre lift head"] < ref["genre lift head"]),
            ("pop", chance is not None and r["pop pct"] > chance["pop pct"])) if bad]
        r["meets"] = "yes" if not fails else "no: " + ", ".join(fails)


def eyeball_films(view: View, keys, films, n: int = 8) -> list[str]:
    """Top-``n`` titles of ``films`` for each ``model/lens`` key, with each list's median
    number of known positives (test view)."""
    titles = view.movies["title"].to_numpy()
    position = {t: j for j, t in enumerate(titles[view.items])}
    lines = []
    for title in films:
        if title not in position:
            continue
        lines.append(f"**{title}**")
        for key in keys:
            if key in view.lists:
                top = view.lists[key][position[title], :n]
                lines.append(f"- {key} (median {np.median(view.popularity[top]):.0f} likes): "
                             + "; ".join(titles[top]))
        lines.append("")
    return lines


def lens_matters(view: View, old: str, new: str, films=(), n: int = 8, show: int = 8,
                 reference: str = "data/cooc-damped") -> list[str]:
    """How far ``new``'s top-``n`` differs from ``old``'s (and how much of it ``reference``, the
    co-occurrence list beside it on the page, shares): mean overlaps over the catalogue and the
    head, then ``films`` and the head movies whose two lists share the fewest titles (test
    view)."""
    titles = view.movies["title"].to_numpy()
    a, b, c = (view.lists[key][:, :n] for key in (old, new, reference))
    shared = np.array([len(set(x) & set(y)) for x, y in zip(a, b, strict=True)])
    beside = np.array([len(set(x) & set(y)) for x, y in zip(b, c, strict=True)])
    before = np.array([len(set(x) & set(y)) for x, y in zip(a, c, strict=True)])
    position = {t: j for j, t in enumerate(titles[view.items])}
    named = [position[t] for t in films if t in position]
    fewest = view.head[np.argsort(shared[view.head], kind="stable")[:show]]
    lines = [f"**Where the lens matters** ({old} vs {new}, top {n}): {shared.mean():.1f} titles "
             f"shared on average, {shared[view.head].mean():.1f} over the {HEAD} most liked. "
             f"Shared with {reference} (the list beside it): {before.mean():.1f} for {old}, "
             f"{beside.mean():.1f} for {new} ({before[view.head].mean():.1f} and "
             f"{beside[view.head].mean():.1f} over the head).", "",
             "The issue's films, then the most liked movies with the fewest shared:", ""]
    for j in [*named, *(j for j in fewest if j not in named)]:
        pop_old, pop_new = (np.median(view.popularity[x[j]]) for x in (a, b))
        lines.append(f"- {titles[view.items[j]]}: {shared[j]} shared; median likes "
                     f"{pop_old:.0f} -> {pop_new:.0f}; shared with {reference} "
                     f"{before[j]} -> {beside[j]}")
    return lines + [""]


def class_default_report(tables, robust_table: str, lines, matters, info) -> str:
    return "\n".join([
        "## The class set's lists (`bench/neighbours.py --class-default`)",
        "",
        *machine_lines(info),
        f"- command: `{command_line()}`",
        f"- P2 = {PROTOCOLS['P2'].describe()}; P1 = {PROTOCOLS['P1'].describe()}",
        "- every model at its default config (`TrainConfig.for_model`); valid = fitted on train "
        "only, judged on validation; test = `train_run` (the app's runs), judged on test. "
        "\"meets\": pop pct no higher than the random list's, genre lift and head genre lift "
        "at least today's mf-als cosine of the same part.",
        f"- `{HYBRID}`: `debiased(a, b) + 1 * cooc(a, b) / max_c cooc(a, c)`, c over the "
        "catalogue except a (`hybrid_lens`); `debiased floor 20`: debiased, neighbours need "
        ">= 20 known positives; `cosine-0.05z(log n)`: cosine minus 0.05 x the catalogue "
        "z-score of log(1 + known positives) of the neighbour.",
        "",
        "### P2 validation (choose on these)",
        "",
        tables["valid"],
        "",
        "### P2 test (report these)",
        "",
        tables["test"],
        "",
        "### Robustness: mf-als on P1, and P2 validation over seeds 1-3",
        "",
        robust_table,
        "",
        "### Eyeball: top-8 lists of the issue's films (P2, test view = the app's runs)",
        "",
        *lines,
        *matters,
    ]).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
