"""Map-structure benchmark: how much genre structure each 2-D map of the item vectors keeps
(``recsys.evaluation.map_structure``), for every model x method x vectors x movie filter.

The runs are read, not trained: train them first with the CLI into a folder of their own, e.g.

    for m in mf-als mf-bpr mf-bce; do
        RECSYS_RUNS_DIR=/tmp/mapruns recsys train --model $m --out /tmp/mapruns/$m; done
    nice python -m bench.map_structure --runs /tmp/mapruns                 # ~10 min, 2 seeds
    nice python -m bench.map_structure --runs /tmp/mapruns --results bench/MAP_STRUCTURE.md
    python -m bench.map_structure --runs /tmp/mapruns --small              # mf-als, seed 0

A filter keeps the movies with at least that many known positives (train + validation, what
the model saw: ``Catalog.item_counts``); the map is fitted on those movies alone, as the app
would draw it. t-SNE and UMAP run at ``recsys.lessons.projection.DEFAULTS`` through its
``project`` (no cache), PCA once (it has no seed); the numbers of seeded methods are means
over ``--seeds``, ``kept min`` the worst seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    command_line,
    machine,
    machine_lines,
    markdown_table,
    timed,
    write_section,
)
from recsys.data.loading import load_movielens, movies_for
from recsys.evaluation import map_structure as ms
from recsys.evaluation import neighbours as nb
from recsys.lessons.projection import DEFAULTS, project
from recsys.storage.runs import Run, list_runs, load_run, prepare_split

MODELS = ("mf-als", "mf-bpr", "mf-bce")
METHODS = ("pca", "umap", "tsne")
FILTERS = (0, 5, 20)  # known positives a movie needs to be on the map
TARGET = 0.85  # a default map keeps at least this share of the full space's genre lift
COLUMNS = ("model", "method", "vectors", "filter", "n", "2-D lift", "full lift", "kept %",
           "kept min %", "fill", "rare frame", "island", "meets", "s")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    info = machine()
    ml = load_movielens(download=not args.offline, progress=False)
    models = ("mf-als",) if args.small else names(args.models)
    seeds = (0,) if args.small else tuple(int(s) for s in names(args.seeds))
    runs = find_runs(Path(args.runs), models, args.every_run)
    rows, regions = [], []
    for run in runs:
        data = RunData(ml, run, label_seed=args.every_run)
        for kind in () if args.only_regions else names(args.vectors):
            for least in map(int, names(args.filters)):
                for method in names(args.methods):
                    rows.append(measure(data, kind, least, method, seeds))
                    print_progress(rows[-1])
        if args.regions:
            regions += region_lines(data, args.regions)
    table = markdown_table(rows, COLUMNS)
    print(("" if args.only_regions else f"\n{table}\n\n") + "\n".join(regions))
    if args.results:
        sections = {} if args.only_regions else {
            "map-structure-every-run" if args.every_run else "map-structure":
                report(table, info, seeds, args.every_run)}
        if regions:
            sections["map-structure-regions"] = regions_report(regions, info)
        for section, body in sections.items():
            write_section(Path(args.results), section, body)
            print(f"wrote the {section} section of {args.results}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.map_structure",
                                description=__doc__.split("\n")[0])
    p.add_argument("--runs", default="/tmp/mapruns", help="folder of runs trained by the CLI; "
                   "the newest run of each model is used")
    p.add_argument("--every-run", action="store_true", help="every run of the models in "
                   "--runs, labelled by training seed (e.g. one model trained at several seeds)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated projections")
    p.add_argument("--vectors", default=",".join(ms.VECTOR_KINDS),
                   help="comma-separated vector kinds")
    p.add_argument("--filters", default=",".join(map(str, FILTERS)),
                   help="comma-separated least known positives of a mapped movie")
    p.add_argument("--seeds", default="0,1", help="seeds of t-SNE and UMAP (PCA: one fit)")
    default = ms.DEFAULT_MAP
    p.add_argument("--regions", help="method,vectors,filter of "
                   "the map whose regions are labelled for each model ('' for none)",
                   default=f"{default.method},{default.vectors},{default.min_positives}")
    p.add_argument("--only-regions", action="store_true", help="label the regions, no table")
    p.add_argument("--small", action="store_true", help="mf-als only, seed 0")
    p.add_argument("--results", default=None, help="markdown file to write the section into")
    p.add_argument("--offline", action="store_true", help="never download MovieLens")
    return p


def names(arg: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in arg.split(",") if part.strip())


def find_runs(folder: Path, models: tuple[str, ...], every: bool = False) -> list[Run]:
    """The newest run of each of ``models`` under ``folder`` (``every``: all their runs);
    exits naming the CLI command that trains a missing one."""
    found: dict[str, list[Run]] = {}
    for path in list_runs(folder):  # newest first
        run = load_run(path)
        found.setdefault(run.train_config.model, []).append(run)
    missing = [m for m in models if m not in found]
    if missing:
        raise SystemExit(f"no run of {', '.join(missing)} in {folder}: train with "
                         f"`RECSYS_RUNS_DIR={folder} recsys train --model {missing[0]} "
                         f"--out {folder}/{missing[0]}`")
    if every:
        return sorted((r for m in models for r in found[m]),
                      key=lambda r: (models.index(r.train_config.model), r.train_config.seed))
    return [found[m][0] for m in models]


class RunData:
    """A run with what every map of it needs: known positives, popularity, genres, titles."""

    def __init__(self, ml, run: Run, label_seed: bool = False) -> None:
        config = run.train_config
        self.model = f"{config.model} seed {config.seed}" if label_seed else config.model
        self.known = prepare_split(ml, run.split_config).seen_at_test.to_csr()
        self.popularity = nb.item_counts(self.known)
        self.movies = movies_for(ml, run.item_ids)
        self.genres = nb.genre_matrix(self.movies["genres"])
        self.factors = run.model.item_factors()

    def selection(self, kind: str, least: int) -> tuple[np.ndarray, np.ndarray]:
        """(mapped item indices, their vectors of ``kind``)."""
        items = np.flatnonzero(self.popularity >= least)
        return items, ms.map_vectors(self.factors, self.known, kind)[items]


def measure(data: RunData, kind: str, least: int, method: str,
            seeds: tuple[int, ...]) -> dict[str, Any]:
    """One table row: the map's structure, averaged over seeds (PCA: one fit)."""
    items, vectors = data.selection(kind, least)
    results, seconds = [], []
    for seed in seeds[:1] if method == "pca" else seeds:
        projection, s = timed(lambda seed=seed: project(vectors, method, seed))
        results.append(ms.map_structure(projection.coords, vectors, data.genres[items],
                                        data.popularity[items]))
        seconds.append(s)
    kept = [r.kept for r in results]
    island = any(r.island for r in results)
    return {
        "model": data.model, "method": method, "vectors": kind, "filter": f">= {least}",
        "n": len(items), "2-D lift": mean(r.map_lift for r in results),
        "full lift": results[0].space_lift, "kept %": 100 * mean(kept),
        "kept min %": 100 * min(kept), "fill": mean(r.fill for r in results),
        "rare frame": mean(r.rare_frame for r in results), "island": island,
        "meets": "yes" if min(kept) >= TARGET and not island else "",
        "s": mean(seconds),
    }


def mean(values) -> float:
    return float(np.mean(list(values)))


def print_progress(row: dict[str, Any]) -> None:
    print(f"   {row['model']:>7} {row['method']:>4} {row['vectors']:>8} {row['filter']:>5}: "
          f"kept {row['kept %']:5.1f}% fill {row['fill']:.2f} rare frame "
          f"{row['rare frame']:.2f} ({row['s']:.1f}s)", file=sys.stderr, flush=True)


def region_lines(data: RunData, setting: str, n_regions: int = 8) -> list[str]:
    """The labelled regions of one map of ``data`` (``setting`` = "method,vectors,filter")."""
    method, kind, least = setting.split(",")
    items, vectors = data.selection(kind, int(least))
    coords = project(vectors, method, 0).coords
    movies = data.movies.iloc[items]
    years = movies["year"].astype("Float64").to_numpy(np.float64, na_value=np.nan)
    regions = ms.region_labels(coords, movies["genres"].tolist(), movies["title"].tolist(),
                               data.popularity[items], n_regions, years)
    lines = [f"**{data.model}**, {method} of {kind} vectors, movies with >= {least} known "
             f"positives (seed 0):", ""]
    for r in regions:
        lifts = ", ".join(f"{g} x{x:.1f}" for g, x in zip(r.genres, r.lifts, strict=True))
        lines.append(f"- {r.label}  ({r.size} movies at ({r.centre[0]:.0f}, "
                     f"{r.centre[1]:.0f}); {lifts or 'no genre stands out'}; median year "
                     f"{r.year:.0f})")
    return [*lines, ""]


def report(table: str, info: dict[str, Any], seeds, every: bool) -> str:
    title = ("Across training seeds (`bench/map_structure.py --every-run`)" if every
             else "Results (`bench/map_structure.py`)")
    return "\n".join([
        f"## {title}",
        "",
        *machine_lines(info),
        f"- command: `{command_line()}`",
        f"- k = {ms.K}; t-SNE {DEFAULTS['tsne']}, UMAP {DEFAULTS['umap']} (cosine metric, "
        f"the app's `project`); seeds {', '.join(map(str, seeds))} (PCA: one fit)",
        "- filter: known positives (train + validation) a movie needs; the map is fitted on "
        "those movies. 2-D lift / full lift: genre lift of the k nearest map points / k "
        "nearest cosine vectors; kept = (2-D lift - 1) / (full lift - 1), mean and worst "
        f"seed; fill: share of the frame's {ms.GRID}x{ms.GRID} cells holding 90 % of the "
        "movies; rare frame: share of the frame only the rarest quarter reaches; island: "
        f"rare frame >= {ms.ISLAND_FRAME} in any seed; meets: kept min >= "
        f"{100 * TARGET:.0f} % and no island; s: seconds per fit.",
        "",
        table,
    ]) + "\n"


def regions_report(regions: list[str], info: dict[str, Any]) -> str:
    return "\n".join([
        "## Regions of the recommended map (`region_labels`)",
        "",
        *machine_lines(info)[:1],
        f"- command: `{command_line()}`",
        "- k-means, 8 regions; the label as the app would show it, then each genre's lift "
        "(share in the region over share on the map) and the region's median year.",
        "",
        *regions,
    ]).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
