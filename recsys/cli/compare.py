"""The ``recsys compare`` command: an offline A/B test and team-draft interleaving of two runs
on the test users (:mod:`recsys.evaluation.online`).

:func:`add_commands` is called by :func:`recsys.cli.main.build_parser`; the numerical modules are
imported by the command itself, so parsing stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.cli.common import check_k, load_movielens, load_run, print_source

if TYPE_CHECKING:
    from recsys.evaluation.online import Comparison
    from recsys.lessons.comparison import Arm

WIDTH = 100  # sentences are wrapped at this many characters
VARIANT_CHOICES = ("dot", "cosine", "funnel", "rerank")  # recsys.evaluation.comparison.VARIANTS
METRIC_CHOICES = ("recall", "ndcg", "hit")  # recsys.evaluation.online.AB_METRICS


def add_commands(subparsers, add_data_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    """Registers ``compare`` on ``subparsers``."""
    p = subparsers.add_parser(
        "compare", help="offline A/B test and interleaving of two runs on the test users",
        description="Splits the test users into two arms by a hash of their id (A/B) and "
                    "interleaves both runs' lists for every user (team draft); clicks are the "
                    "movies each user liked later. Prints per-arm metrics with bootstrap "
                    "intervals and Welch p-values, the interleaving preference with its sign "
                    "test, and how many users each method needs to detect the difference.")
    p.add_argument("run_a", type=Path, help="run A's folder")
    p.add_argument("run_b", type=Path, help="run B's folder (may be run A with another variant)")
    for side in ("a", "b"):
        p.add_argument(f"--variant-{side}", choices=VARIANT_CHOICES, default="dot",
                       help=f"how run {side.upper()}'s lists are made: dot = the model's score "
                            "(default), cosine = user-item vector cosine, funnel = the serving "
                            "funnel without re-ranking, rerank = with the Recommendations "
                            "page's re-ranking")
    _add_experiment_flags(p)
    add_data_flags(p)
    p.set_defaults(handler=cmd_compare)

    p = subparsers.add_parser(
        "compare-log", help="A/B and interleaving of a served-list log's lists against a run",
        description="Reads the /recommend lists a served-list log holds (`recsys serve "
                    "--log-dir`), takes each user's first one as arm A and run B's list for "
                    "the same user as arm B, then runs the same A/B test and interleaving as "
                    "`recsys compare` on the logged users that have test positives.")
    p.add_argument("log", type=Path, help="a served-list log file, or the folder of one")
    p.add_argument("run_b", type=Path, help="the run to replay the log against")
    p.add_argument("--variant-b", choices=VARIANT_CHOICES, default="dot",
                   help="how run B's lists are made (as `recsys compare`)")
    _add_experiment_flags(p)
    add_data_flags(p)
    p.set_defaults(handler=cmd_compare_log)


def _add_experiment_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--k", type=int, default=10, help="list length (default 10)")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the arm split, the coins, the bootstraps and the simulation")
    p.add_argument("--metric", choices=METRIC_CHOICES, default="ndcg",
                   help="the A/B metric of the sample-size simulation (default ndcg)")
    p.add_argument("--repeats", type=int, default=200,
                   help="simulated experiments per sample size (default 200)")
    p.add_argument("--json", action="store_true", help="print JSON (stable keys)")


def _check_flags(args: argparse.Namespace) -> None:
    check_k(args.k)
    if args.repeats < 10:
        from recsys.errors import BadInputError

        raise BadInputError(f"--repeats must be at least 10, got {args.repeats}")


def cmd_compare(args: argparse.Namespace) -> int:
    _check_flags(args)
    from recsys.lessons.comparison import compare_arms

    arm_a, arm_b = _arms(args)
    _show(compare_arms(arm_a, arm_b, args.k, args.seed, args.metric, repeats=args.repeats),
          args.json)
    return 0


def cmd_compare_log(args: argparse.Namespace) -> int:
    _check_flags(args)
    from recsys.lessons.comparison import Arm, compare_log, logged_lists
    from recsys.serving.catalog import Catalog
    from recsys.serving.served_log import read_records

    run = load_run(args.run_b)
    ml = load_movielens(args.data_dir, download=not args.no_download)
    print_source(ml)
    catalog = Catalog.build(run, ml)
    logged = logged_lists(read_records(args.log), catalog, args.k)
    print(f"log: {logged.read:,} records, the first /recommend list of {logged.used:,} users",
          file=sys.stderr)
    _show(compare_log(logged, Arm(catalog, args.variant_b), args.seed, args.metric,
                      repeats=args.repeats), args.json)
    return 0


def _show(comparison: Comparison, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_as_dict(comparison), indent=2, allow_nan=False))
    else:
        _print_report(comparison)


def _arms(args: argparse.Namespace) -> tuple[Arm, Arm]:
    """Both arms, each run loaded once (A and B may be the same run)."""
    from recsys.lessons.comparison import Arm
    from recsys.serving.catalog import Catalog

    run_a = load_run(args.run_a)
    same = args.run_b.resolve() == args.run_a.resolve()
    run_b = run_a if same else load_run(args.run_b)
    ml = load_movielens(args.data_dir, download=not args.no_download)
    print_source(ml)
    catalog_a = Catalog.build(run_a, ml)
    catalog_b = catalog_a if same else Catalog.build(run_b, ml)
    return Arm(catalog_a, args.variant_a), Arm(catalog_b, args.variant_b)


def _print_report(c: Comparison) -> None:
    from recsys.lessons.comparison import explain

    words = explain(c)
    print(f"A = {c.label_a}\nB = {c.label_b}")
    print(f"{len(c.user_ids):,} test users, top {c.k}, seed {c.seed}\n")
    print("Offline A/B (arms split by a hash of the user id)")
    header = ["metric", "arm A", "arm B", "A - B", "95% interval", "p (Welch)", "users needed"]
    rows = [[r.metric, f"{r.mean_a:.4f}", f"{r.mean_b:.4f}", f"{r.difference:+.4f}",
             f"{r.ci[0]:+.4f} to {r.ci[1]:+.4f}", f"{r.p_value:.2g}", _count(r.users_needed)]
            for r in c.ab]
    _print_table(header, rows)
    for row in c.ab:
        _print_wrapped(words[row.metric])
    il = c.interleaving
    print("\nTeam-draft interleaving (every test user sees both lists merged)")
    _print_table(["A wins", "B wins", "ties", "A's share", "95% interval", "p (sign test)",
                  "users needed"],
                 [[f"{il.wins_a:,}", f"{il.wins_b:,}", f"{il.ties:,}", f"{il.share_a:.3f}",
                   f"{il.ci[0]:.3f} to {il.ci[1]:.3f}", f"{il.p_value:.2g}",
                   _count(il.users_needed)]])
    _print_wrapped(words["interleaving"])
    _print_wrapped(words["clicks"])
    print("\nUsers needed to detect the difference 80 % of the time (simulated)")
    curve = c.curve
    _print_table(["method", "users"], [[f"A/B on {curve.metric}", _needed(curve.ab_users, c)],
                                       ["interleaving", _needed(curve.interleaving_users, c)]])
    _print_wrapped(words["lesson"])


def _needed(n: int | None, c: Comparison) -> str:
    return f"{n:,}" if n is not None else f"> {int(c.curve.sizes[-1]):,}"


def _count(n: float) -> str:
    return f"{n:,.0f}" if n != float("inf") else "-"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    """A plain table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        cells = [str(x).ljust(w) if i == 0 else str(x).rjust(w)
                 for i, (x, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())


def _print_wrapped(text: str) -> None:
    print(textwrap.fill(text, WIDTH, initial_indent="- ", subsequent_indent="  "))


def _as_dict(c: Comparison) -> dict:
    """The comparison as JSON-ready values (infinite sample sizes become null)."""
    def number(x: float) -> float | None:
        return float(x) if x == x and abs(x) != float("inf") else None

    il, curve = c.interleaving, c.curve
    return {
        "a": c.label_a, "b": c.label_b, "k": c.k, "seed": c.seed,
        "users": len(c.user_ids),
        "ab": [{"metric": r.metric, "mean_a": r.mean_a, "mean_b": r.mean_b, "n_a": r.n_a,
                "n_b": r.n_b, "difference": r.difference, "ci": list(r.ci),
                "p_value": r.p_value, "users_needed": number(r.users_needed)} for r in c.ab],
        "interleaving": {"wins_a": il.wins_a, "wins_b": il.wins_b, "ties": il.ties,
                         "no_clicks": il.no_clicks, "clicks_a": il.clicks_a,
                         "clicks_b": il.clicks_b,
                         "share_a": number(il.share_a), "ci": [number(x) for x in il.ci],
                         "p_value": il.p_value, "users_needed": number(il.users_needed)},
        "detection": {"metric": curve.metric, "repeats": curve.repeats,
                      "sizes": curve.sizes.tolist(), "ab_rate": curve.ab_rate.tolist(),
                      "interleaving_rate": curve.interleaving_rate.tolist(),
                      "ab_users": curve.ab_users,
                      "interleaving_users": curve.interleaving_users},
    }
