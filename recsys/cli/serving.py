"""Serving commands of the ``recsys`` CLI: recommend, similar, similar-users, project.

:func:`add_commands` is called by :func:`recsys.cli.main.build_parser`; errors raised here
(ValueError, RunError, ...) become one-line messages there.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys.cli.common import (
    check_k,
    check_new_output,
    load_movielens,
    load_run,
    print_source,
    write_new_file,
)
from recsys.evaluation.lenses import COOCCURRENCE_LENS, EMBEDDING_LENSES, LENS_DESCRIPTIONS

if TYPE_CHECKING:
    import pandas as pd

    from recsys.serving.catalog import Catalog

WIDTH = 100  # text output fits this many characters per line (titles are shortened to fit)
TITLE_WIDTH = 40  # a longer title is cut with "..." in tables


def add_commands(subparsers, add_data_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Registers the serving subcommands on ``subparsers``."""
    p = subparsers.add_parser("recommend", help="top-k movies for a user of a run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--user", type=int, required=True, help="raw MovieLens user id")
    p.add_argument("--k", type=int, default=10, help="list length (default 10)")
    p.add_argument("--scoring", choices=("dot", "cosine"), default="dot",
                   help="dot: the model's score (default); cosine: user-item vector cosine")
    p.add_argument("--explain", action="store_true",
                   help="show the liked movies behind each pick (and MF score parts)")
    p.add_argument("--include-seen", action="store_true", help="do not filter known positives")
    p.add_argument("--json", action="store_true", help="print JSON records (stable keys)")
    add_data_flags(p)
    p.set_defaults(handler=cmd_recommend)

    p = subparsers.add_parser("similar", help="movies nearest to a movie (embedding and "
                                              "co-occurrence)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--movie", required=True, help="raw movie id or title words, e.g. "
                                                  "'star wars' or 'toy story 1995'")
    p.add_argument("--k", type=int, default=10, help="neighbours (default 10)")
    p.add_argument("--lens", choices=EMBEDDING_LENSES, default=None,
                   help="embedding similarity: " + "; ".join(
                       f"{name}: {LENS_DESCRIPTIONS[name]}" for name in EMBEDDING_LENSES)
                   + " (default: the lens measured best for the run's model)")
    p.add_argument("--scoring", choices=("cosine", "dot"), default=None,
                   help=argparse.SUPPRESS)  # the old name of --lens
    p.add_argument("--json", action="store_true", help="print JSON (stable keys)")
    add_data_flags(p)
    p.set_defaults(handler=cmd_similar)

    p = subparsers.add_parser("similar-users", help="users nearest to a user, with shared movies")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--user", type=int, required=True, help="raw MovieLens user id")
    p.add_argument("--k", type=int, default=10, help="neighbours (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON records (stable keys)")
    add_data_flags(p)
    p.set_defaults(handler=cmd_similar_users)

    p = subparsers.add_parser("project", help="compute (or load) a 2-D map of the embeddings")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--method", choices=("pca", "tsne", "umap"), default="pca")
    p.add_argument("--what", choices=("items", "users"), default="items")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the map as CSV here (a new file)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_data_flags(p)
    p.set_defaults(handler=cmd_project)


def cmd_recommend(args: argparse.Namespace) -> int:
    from recsys.serving.catalog import as_records, recommend

    catalog = _catalog(args)
    k = check_k(args.k, len(catalog.run.item_ids), "movies")
    frame = recommend(catalog, args.user, k, exclude_seen=not args.include_seen,
                      scoring=args.scoring, explain=args.explain)
    columns = ["rank", "item_id", "title", "score", "popularity"]
    if args.explain:  # the score's parts, leaving out those that are zero for this model
        columns += ["because"] + [c for c in ("dot", "item_bias", "user_bias", "global_mean")
                                  if c in frame and frame[c].abs().max() > 0]
    columns = [c for c in columns if c in frame]
    if args.json:
        _print_json(as_records(frame[columns]))
        return 0
    print(f"{catalog.run.train_config.model} ({args.scoring}) for user {args.user}:")
    _print(frame[[c for c in columns if c != "because"]])
    if "because" in columns:  # long lists of titles: one wrapped paragraph per pick
        print("\nbecause you liked (the user's liked movies nearest to each pick):")
        for rank, because in zip(frame["rank"], frame["because"], strict=True):
            print(textwrap.fill(because or "-", WIDTH, initial_indent=f"{rank:>4}  ",
                                subsequent_indent=" " * 6))
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    from recsys.serving.catalog import default_lens, similar_movies

    catalog = _catalog(args)
    k = check_k(args.k, len(catalog.run.item_ids) - 1, "other movies")
    lens = args.scoring or args.lens or default_lens(catalog)
    result = similar_movies(catalog, args.movie, k, lens)
    if args.json:
        _print_json(result.to_dict())
        return 0
    print(f"nearest to {result.movie['title']} [id {result.movie['item_id']}]")
    if result.embedding is not None:
        print()
        _print_wrapped(f"embedding ({lens}): {LENS_DESCRIPTIONS[lens]}")
        _print(result.embedding[["rank", "item_id", "title", "score", "popularity"]])
    else:
        print(f"\n{result.note}")
    print()
    _print_wrapped(f"co-occurrence: {LENS_DESCRIPTIONS[COOCCURRENCE_LENS]}")
    _print(result.cooccurrence[["rank", "item_id", "title", "score", "popularity"]])
    if result.embedding is not None:
        print(f"\noverlap: {len(result.overlap)} of {len(result.cooccurrence)}")
    return 0


def cmd_similar_users(args: argparse.Namespace) -> int:
    from recsys.serving.catalog import as_records, similar_users

    catalog = _catalog(args)
    frame = similar_users(catalog, args.user, check_k(args.k, len(catalog.run.user_ids) - 1,
                                                  "other users"))
    if args.json:
        _print_json(as_records(frame))
        return 0
    print(f"users nearest to {args.user} by {frame.attrs['space']}:")
    shown = frame.assign(shared=frame["shared"].map(lambda t: "; ".join(t[:3])))
    _print(shown)
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from recsys.lessons.projection import project_run

    if args.out:
        check_new_output(args.out, args.force)
    catalog = _catalog(args)
    result = project_run(catalog.run, args.method, args.what, catalog.movies, args.seed,
                         progress=lambda fraction, message: print(message, file=sys.stderr),
                         known=catalog.seen)
    if result.explained_variance is not None:
        shares = ", ".join(f"{v:.1%}" for v in result.explained_variance)
        print(f"explained variance: {shares}")
    if args.out:
        csv = result.frame.to_csv(index=False).encode()
        write_new_file(args.out, lambda f: f.write(csv), args.force)
        print(f"wrote {args.out} ({len(result.frame)} points)")
    else:
        _print(result.frame.head(10).drop(columns="year", errors="ignore"))  # in the title
    return 0


def _catalog(args: argparse.Namespace) -> Catalog:
    if hasattr(args, "k"):
        check_k(args.k)  # before any loading; capped at the catalogue once it is known
    from recsys.serving.catalog import Catalog

    run = load_run(args.run_dir)
    ml = load_movielens(args.data_dir, download=not args.no_download)
    print_source(ml)
    run.check_dataset(ml)
    return Catalog.build(run, ml)


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, allow_nan=False, ensure_ascii=False))


def _print(frame: pd.DataFrame) -> None:
    """``frame`` as a plain table: numbers right-aligned (floats with 4 decimals), text
    left-aligned and cut at :data:`TITLE_WIDTH`, so the usual columns fit :data:`WIDTH`."""
    columns = []
    for name in frame:
        values = frame[name].tolist()
        if all(isinstance(v, float) for v in values):
            cells, align = [f"{v:.4f}" for v in values], str.rjust
        elif all(isinstance(v, int) for v in values):
            cells, align = [str(v) for v in values], str.rjust
        else:
            cells, align = [_shorten(v) for v in values], str.ljust
        width = max(map(len, [name, *cells]))
        columns.append([align(c, width) for c in [name, *cells]])
    for row in zip(*columns, strict=True):
        print("  ".join(row).rstrip())


def _print_wrapped(text: str) -> None:
    print(textwrap.fill(text, WIDTH, subsequent_indent="  "))


def _shorten(value: Any) -> str:
    text = str(value)
    return text if len(text) <= TITLE_WIDTH else text[:TITLE_WIDTH - 3] + "..."
