"""Serving commands of the ``recsys`` CLI: recommend, similar, similar-users, project.

:func:`add_commands` is called by :func:`recsys.cli.build_parser`; errors raised here
(ValueError, RunError, ...) become one-line messages there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from recsys.data import load_movielens
from recsys.runs import load_run
from recsys.serving import Catalog, recommend, similar_movies, similar_users


def add_commands(subparsers, add_data_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Registers the serving subcommands on ``subparsers``."""
    p = subparsers.add_parser("recommend", help="top-k movies for a user of a run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--user", type=int, required=True, help="raw MovieLens user id")
    p.add_argument("--k", type=int, default=10, help="list length (default 10)")
    p.add_argument("--scoring", choices=("dot", "cosine"), default="dot",
                   help="dot: the model's score (default); cosine: user-item vector cosine")
    p.add_argument("--explain", action="store_true",
                   help="show the history movies behind each pick (and MF score parts)")
    p.add_argument("--include-seen", action="store_true", help="do not filter known positives")
    add_data_flags(p)
    p.set_defaults(handler=cmd_recommend)

    p = subparsers.add_parser("similar", help="movies nearest to a movie (embedding and "
                                              "co-occurrence)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--movie", required=True, help="raw movie id or title words, e.g. "
                                                  "'star wars' or 'toy story 1995'")
    p.add_argument("--k", type=int, default=10, help="neighbours (default 10)")
    p.add_argument("--scoring", choices=("cosine", "dot"), default="cosine")
    add_data_flags(p)
    p.set_defaults(handler=cmd_similar)

    p = subparsers.add_parser("similar-users", help="users nearest to a user, with shared movies")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--user", type=int, required=True, help="raw MovieLens user id")
    p.add_argument("--k", type=int, default=10, help="neighbours (default 10)")
    add_data_flags(p)
    p.set_defaults(handler=cmd_similar_users)

    p = subparsers.add_parser("project", help="compute (or load) a 2-D map of the embeddings")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--method", choices=("pca", "tsne", "umap"), default="pca")
    p.add_argument("--what", choices=("items", "users"), default="items")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the map as CSV here")
    add_data_flags(p)
    p.set_defaults(handler=cmd_project)


def cmd_recommend(args: argparse.Namespace) -> int:
    ctx = _catalog(args)
    frame = recommend(ctx, args.user, args.k, exclude_seen=not args.include_seen,
                      scoring=args.scoring, explain=args.explain)
    print(f"{ctx.run.train_config.model} ({args.scoring}) for user {args.user}:")
    columns = ["rank", "item_id", "title", "score"]
    if args.explain:
        columns += ["because"] + [c for c in ("dot", "item_bias", "user_bias", "global_mean")
                                  if c in frame]
    _print(frame[columns])
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    ctx = _catalog(args)
    result = similar_movies(ctx, args.movie, args.k, args.scoring)
    print(f"nearest to {result.movie['title']} [id {result.movie['item_id']}]")
    if result.embedding is not None:
        print(f"\nembedding ({args.scoring}):")
        _print(result.embedding[["rank", "item_id", "title", "score", "popularity"]])
    else:
        print(f"\n{result.note}")
    print("\nco-occurrence (item-kNN cosine on known positives):")
    _print(result.cooccurrence[["rank", "item_id", "title", "score", "popularity"]])
    if result.embedding is not None:
        print(f"\noverlap: {len(result.overlap)} of {len(result.cooccurrence)}")
    return 0


def cmd_similar_users(args: argparse.Namespace) -> int:
    ctx = _catalog(args)
    frame = similar_users(ctx, args.user, args.k)
    print(f"users nearest to {args.user} by {frame.attrs['space']}:")
    shown = frame.assign(shared=frame["shared"].map(lambda t: "; ".join(t[:3])))
    _print(shown)
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from recsys.projection import project_run

    ctx = _catalog(args)
    result = project_run(ctx.run, args.method, args.what, ctx.movies, args.seed,
                         progress=lambda fraction, message: print(message, file=sys.stderr))
    if result.explained_variance is not None:
        shares = ", ".join(f"{v:.1%}" for v in result.explained_variance)
        print(f"explained variance: {shares}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result.frame.to_csv(args.out, index=False)
        print(f"wrote {args.out} ({len(result.frame)} points)")
    else:
        _print(result.frame.head(10))
    return 0


def _catalog(args: argparse.Namespace) -> Catalog:
    if getattr(args, "k", 1) < 1:
        raise ValueError(f"--k must be at least 1, got {args.k}")
    run = load_run(args.run_dir)
    ml = load_movielens(args.data_dir, download=not args.no_download)
    run.check_dataset(ml)
    return Catalog.build(run, ml)


def _print(frame: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_colwidth", 60,
                           "display.max_columns", 20):
        print(frame.to_string(index=False))
