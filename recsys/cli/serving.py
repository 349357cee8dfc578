"""Serving commands of the ``recsys`` CLI: recommend, similar, similar-users, project, serve
(the HTTP API) and replay-log (recompute a served-list log).

:func:`add_commands` is called by :func:`recsys.cli.main.build_parser`; errors raised here
(ValueError, RunError, ...) become one-line messages there.
"""

from __future__ import annotations

import argparse
import json
import os
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
from recsys.errors import BadInputError
from recsys.evaluation.lenses import COOCCURRENCE_LENS, EMBEDDING_LENSES, LENS_DESCRIPTIONS

if TYPE_CHECKING:
    import pandas as pd

    from recsys.serving.catalog import Catalog

SERVED_LOG_NAME = ".served-log"  # serve's default log folder, beside the run (hidden: no run)
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

    p = subparsers.add_parser(
        "serve", help="serve a run over HTTP: a JSON API with docs at /docs, every served "
                      "list logged",
        description="Serves GET /recommend, GET /similar, POST /recommend/profile, GET /health "
                    "and GET /model for one run (OpenAPI docs at /docs), with the lists the "
                    "CLI and the app give. Every served list is appended to a JSON-lines log "
                    "that `recsys replay-log` checks. Stop it with Ctrl-C.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: "
                                                       "this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--log-dir", type=Path, help="served-list log folder (default: "
                                                f"{SERVED_LOG_NAME}/ beside the run's folder)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (default 1); each loads the run and the data, and "
                        "they share the log")
    p.add_argument("--no-log", action="store_true", help="do not log the served lists")
    p.add_argument("--log-max-mb", type=float, default=64.0,
                   help="rotate the log file at this size (default 64 MiB)")
    p.add_argument("--log-keep", type=int, default=10,
                   help="rotated log files kept (default 10; older ones are deleted)")
    add_data_flags(p)
    p.set_defaults(handler=cmd_serve)

    p = subparsers.add_parser(
        "replay-log", help="recompute every list of a served-list log and report mismatches",
        description="Recomputes each logged list from the run named in its record (under the "
                    "runs folder, or the folder beside the log) or --run, through the same "
                    "code as the API, and reports every difference in items, sources or scores. "
                    "Exits 1 on any mismatch, including a record of other data (fingerprint).")
    p.add_argument("log", type=Path, help="a log file, or a log folder (its rotated files "
                                          "are read too, oldest first)")
    p.add_argument("--run", type=Path, help="recompute every record with this run")
    p.add_argument("--runs-dir", type=Path,
                   help="where the runs named in the records are (default $RECSYS_RUNS_DIR or "
                        "./runs, then the log folder's parent)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="relative score difference still counted equal (default 1e-5)")
    add_data_flags(p)
    p.set_defaults(handler=cmd_replay_log)


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


def cmd_serve(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise BadInputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.log_max_mb <= 0 or args.log_keep < 0:
        raise BadInputError("--log-max-mb must be positive and --log-keep at least 0")
    if args.workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {args.workers}")
    import uvicorn  # the web stack only for this command: `recsys --help` stays light

    from recsys.serving import api
    from recsys.serving.served_log import ServedLog

    catalog = _catalog(args)  # checks the run and the data before any worker starts
    log = None
    if not args.no_log:
        folder = args.log_dir or Path(os.path.abspath(args.run_dir)).parent / SERVED_LOG_NAME
        log = ServedLog(folder, max_bytes=int(args.log_max_mb * 2**20), keep=args.log_keep)
    run = catalog.run
    where = f"http://{args.host}:{args.port}"
    http, loop = http_stack()
    print(f"serving {run.name} ({run.train_config.model}) at {where} (docs at /docs) with "
          f"{args.workers} worker(s), uvicorn on {http} + {loop}; served lists logged to "
          f"{log.folder if log else 'nowhere (--no-log)'}", file=sys.stderr, flush=True)
    options = {"host": args.host, "port": args.port, "log_level": "warning",
               "access_log": False, "http": http, "loop": loop}
    if args.workers > 1:  # each worker process builds its own catalogue from these settings
        os.environ[api.SETTINGS_VARIABLE] = json.dumps({
            "run_dir": os.path.abspath(args.run_dir),
            "data_dir": None if args.data_dir is None else os.path.abspath(args.data_dir),
            "download": not args.no_download,
            "log_dir": None if log is None else str(log.folder.resolve()),
            "log_max_bytes": log.max_bytes if log else 0, "log_keep": log.keep if log else 0})
        del catalog
        uvicorn.run("recsys.serving.api:app_from_environment", factory=True,
                    workers=args.workers, **options)
        return 0
    api.warm_up(catalog)
    try:
        uvicorn.run(api.create_app(catalog, log), **options)
    finally:
        if log is not None:
            log.close()
    return 0


def http_stack() -> tuple[str, str]:
    """uvicorn's HTTP parser and event loop: httptools and uvloop where installed (the
    dependencies; about 10 % less server CPU per request than the pure-Python h11 and asyncio,
    bench/API.md), else those two."""
    from importlib.util import find_spec

    return ("httptools" if find_spec("httptools") else "h11",
            "uvloop" if find_spec("uvloop") else "asyncio")


def cmd_replay_log(args: argparse.Namespace) -> int:
    from recsys.serving import served_log
    from recsys.storage.runs import default_runs_dir

    files = served_log.log_files(args.log)  # a missing log fails before any loading
    tolerance = served_log.SCORE_TOLERANCE if args.tolerance is None else args.tolerance
    if not tolerance >= 0:
        raise BadInputError(f"--tolerance must be at least 0, got {args.tolerance}")
    log_folder = args.log if args.log.is_dir() else args.log.parent
    places = [args.runs_dir or default_runs_dir(), log_folder.parent]
    catalogs: dict[str, Catalog] = {}
    data: list = []  # the MovieLens data, loaded on the first record

    def catalog_of(record: dict) -> Catalog:
        name = str(record.get("run"))
        path = args.run or next((p / name for p in places if (p / name).is_dir()), None)
        if path is None:
            raise BadInputError(f"run {name!r} is in none of "
                                f"{', '.join(map(str, places))}: pass --runs-dir or --run")
        key = str(path)
        if key not in catalogs:
            catalogs[key] = _catalog_with(path, data, args)
        return catalogs[key]

    checked = matched = 0
    for number, record in enumerate(served_log.read_records(args.log), 1):
        checked += 1
        problems = _replay_problems(record, catalog_of, tolerance)
        if not problems:
            matched += 1
            continue
        print(f"mismatch: record {number} (request {record.get('request_id')}, "
              f"{record.get('endpoint')} {json.dumps(record.get('inputs'))}, "
              f"run {record.get('run')}):")
        for problem in problems:
            print(f"  {problem}")
    print(f"replayed {checked} records from {len(files)} file(s): {matched} matched, "
          f"{checked - matched} mismatched")
    return 0 if matched == checked else 1


def _replay_problems(record: dict, catalog_of: Callable[[dict], Catalog],
                     tolerance: float) -> list[str]:
    """What differs between a logged list and the same list computed now (empty: none)."""
    from recsys.errors import RecsysError
    from recsys.serving import served_log

    try:
        catalog = catalog_of(record)
        fingerprint = catalog.run.dataset.get("fingerprint")
        if record.get("fingerprint") != fingerprint:
            return [f"the record names data fingerprint {record.get('fingerprint')}, the run "
                    f"{catalog.run.name} was trained on {fingerprint}: other data"]
        items = record.get("items")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return ["the record's items are not a list of objects"]
        return served_log.compare_items(items, served_log.recompute_items(catalog, record),
                                        tolerance)
    except RecsysError as err:  # a run that is missing or damaged, inputs it refuses
        return [f"cannot recompute: {err}"]


def _catalog_with(run_dir: Path, data: list, args: argparse.Namespace) -> Catalog:
    """The catalogue of ``run_dir`` on the data in ``data`` (loaded into it on first use)."""
    from recsys.serving.catalog import Catalog

    run = load_run(run_dir)
    if not data:
        data.append(load_movielens(args.data_dir, download=not args.no_download))
        print_source(data[0])
    return Catalog.build(run, data[0])


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
