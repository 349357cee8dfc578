"""CLI start-up: each command timed as a whole process, from its start to its exit.

Rows: ``recsys --help``, ``recsys train --help``, an argument error (``recsys train --dim
abc``), ``recsys data`` (loads MovieLens 100K from the cache), and as the reference for the
old start-up ``python -c "import torch, faiss, recsys.storage.runs"``: before the CLI imported heavy
modules lazily, every command (``--help`` included) imported at least these before argparse ran.
Commands run in turn (A, B, C, ... A, B, C, ...) after one warm-up round, so that load from
other processes hits every row alike; the table gives the median and the spread.

    python -m bench.cli_startup             # 7 runs each, prints the table
    python -m bench.cli_startup --write     # and writes bench/CLI_STARTUP.md
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import BENCH_DIR, command_line, machine, machine_lines, markdown_table

RECSYS = str(Path(sys.executable).parent / "recsys")
COMMANDS = {
    "reference: old start-up imports (torch, faiss, recsys.storage.runs)":
        [sys.executable, "-c", "import torch, faiss, recsys.storage.runs"],
    "recsys --help": [RECSYS, "--help"],
    "recsys train --help": [RECSYS, "train", "--help"],
    "recsys train --dim abc (argument error)": [RECSYS, "train", "--dim", "abc"],
    "recsys data (MovieLens from the cache)": [RECSYS, "data", "--no-download"],
}
EXPECTED_EXIT = {"recsys train --dim abc (argument error)": 2}


def time_once(argv: list[str], expected_exit: int) -> float:
    """Wall seconds of one run of ``argv``; its output is discarded."""
    start = time.perf_counter()
    code = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    seconds = time.perf_counter() - start
    if code != expected_exit:
        raise SystemExit(f"{' '.join(argv)} exited {code}, expected {expected_exit}")
    return seconds


def measure(runs: int) -> list[dict[str, object]]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for round_ in range(runs + 1):  # round 0 warms the disk cache and is not counted
        for name, argv in COMMANDS.items():
            seconds = time_once(argv, EXPECTED_EXIT.get(name, 0))
            if round_:
                times[name].append(seconds)
    return [{"command": name, "median s": statistics.median(t), "min s": min(t),
             "max s": max(t), "runs": len(t)} for name, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    parser.add_argument("--write", action="store_true", help="write bench/CLI_STARTUP.md")
    args = parser.parse_args(argv)
    rows = measure(max(args.runs, 1))
    table = markdown_table(rows, ["command", "median s", "min s", "max s", "runs"])
    print(table)
    if args.write:
        text = "\n".join([
            "# CLI start-up", "",
            "Whole processes, from start to exit (`bench/cli_startup.py`); the median of "
            f"{args.runs} runs per command, run in turn after one warm-up round.", "",
            table, "",
            "The first row stands for the start-up before this change: the CLI then imported "
            "torch, FAISS, pandas and the whole core before argparse ran, so `--help` and "
            "argument errors cost at least that row (measured then: 4-6 s per command, 6.5 s "
            "for `--help`). Now only `recsys.models.config` is imported before the arguments are "
            "parsed; each command imports what it needs. `recsys data` still imports torch "
            "(through `recsys.storage.runs.prepare_split`) and reads the cached wheel.", "",
            *machine_lines(machine()), "",
            f"Command: `{command_line()}`", "",
        ])
        (BENCH_DIR / "CLI_STARTUP.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
