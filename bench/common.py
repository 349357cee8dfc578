"""Shared helpers of the benchmark scripts: protocols, machine description, tables, timing."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recsys.data.protocol import SplitConfig
from recsys.models import model_names

BENCH_DIR = Path(__file__).resolve().parent
TUNED_PATH = BENCH_DIR / "tuned.json"
# The models trained epoch by epoch (early stopping, a fixed epoch budget in tuning), from the
# registry's capabilities.
EPOCH_MODELS = model_names(iterative=True)

# The two evaluation protocols of the issue: P1 = random 80/20 of positives, P2 = temporal.
PROTOCOLS: dict[str, SplitConfig] = {
    "P1": SplitConfig(split="random", split_seed=42),
    "P2": SplitConfig(),
}


def protocol_names(arg: str) -> list[str]:
    """``"P1,P2"`` -> ``["P1", "P2"]``, checked against :data:`PROTOCOLS`."""
    names = [p.strip().upper() for p in arg.split(",") if p.strip()]
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown:
        raise SystemExit(f"unknown protocol(s) {unknown}: choose from {', '.join(PROTOCOLS)}")
    return names


def machine() -> dict[str, Any]:
    """What the numbers were measured on (timings mean little without it)."""
    import scipy
    import torch

    cpu = cpu_name()
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


def machine_lines(info: dict[str, Any]) -> list[str]:
    return [
        f"- date: {info['date']}",
        f"- machine: {info['nproc']} CPUs ({info['cpu']}), 1-min load at start "
        f"{info['load_avg_1m']}, {info['platform']}",
        f"- versions: python {info['python']}, torch {info['torch']}, numpy {info['numpy']}, "
        f"scipy {info['scipy']}",
    ]


def command_line() -> str:
    return " ".join([Path(sys.executable).name, "-m", _module_name(), *sys.argv[1:]])


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub markdown table of ``rows`` (dicts) restricted to ``columns``, in order."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def format_cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        if not np.isfinite(value):
            return str(value)
        if abs(value) < 1:
            return f"{value:.4f}"
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value).replace("|", "/")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)`` by ``time.perf_counter``."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_section(path: Path, name: str, body: str, new_at: str = "end") -> None:
    """Replaces the ``name`` section of a markdown file (between ``<!-- name:start/end -->``
    markers), so each script rewrites only its own part of RESULTS.md; a new section goes at
    the ``"end"`` or at the ``"top"``, right under the title."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body}{end}\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    elif new_at == "top":
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{block}\n{rest.lstrip(chr(10))}"
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
