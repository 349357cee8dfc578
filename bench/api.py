"""Serving API throughput and latency: requests per second and p50 / p95 latency of
``/recommend`` and ``/similar`` at 1, 8 and 32 concurrent clients, against a real ``recsys
serve`` process (uvicorn on 127.0.0.1, served-list log on, as in use).

The server serves the pinned run of ``$RECSYS_RUNS_DIR`` (or ``--run``); without one, an mf-als
run is trained into a temporary folder first. Clients are asyncio tasks sharing one httpx
connection pool in this process, each sending its next request when the last one is answered
(closed loop), users and movies drawn at random (seeded). Client latency is measured around
each request; the server's own time per list comes from the served-list log
(``latency_ms``), so the table separates the list's computation from HTTP and queueing. Both
processes share this machine's cores: the load average is recorded with the table.

    python -m bench.api                     # 1500 requests per row, prints the table
    python -m bench.api --write             # and writes bench/API.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

from bench.common import (
    BENCH_DIR,
    command_line,
    machine,
    machine_lines,
    markdown_table,
    write_section,
)

PORTS = range(8900, 8920)  # the ports this benchmark may bind (127.0.0.1 only)
CLIENTS = (1, 8, 32)
TARGET_P95_MS = 20.0  # /recommend at 8 clients (issue 25)
COLUMNS = ["workers", "endpoint", "clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms",
           "server p50 ms", "server p95 ms", "server CPU ms/req", "errors"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="run to serve (default: the pinned run of "
                                                 "$RECSYS_RUNS_DIR, else a quick mf-als run)")
    parser.add_argument("--requests", type=int, default=1500, help="timed requests per row")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="uvicorn worker processes, one server per count (default 1 2)")
    parser.add_argument("--breakdown-only", action="store_true",
                        help="only the in-process CPU breakdown of one /recommend list")
    parser.add_argument("--write", action="store_true",
                        help="write the section(s) measured into bench/API.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        run_dir = args.run or default_run(Path(tmp))
        info = machine()
        parts = breakdown(run_dir)
        print(markdown_table(parts, BREAKDOWN_COLUMNS))
        if args.write:
            write_breakdown(parts, info, run_dir)
        if args.breakdown_only:
            return 0
        rows = []
        for workers in args.workers:
            rows += measure(run_dir, Path(tmp) / f"log-{workers}", args.requests, workers)
        load_end = os.getloadavg()[0]
    table = markdown_table(rows, COLUMNS)
    print(table)
    if args.write:
        write_report(table, rows, info, load_end, run_dir)
    return 0


def default_run(tmp: Path) -> Path:
    from recsys.storage.runs import default_runs_dir, pinned_run_name

    runs = default_runs_dir()
    name = pinned_run_name(runs)
    if name:
        return runs / name
    out = tmp / "runs" / "mf-als"
    print(f"no pinned run in {runs}: training mf-als into {out}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "recsys.cli", "train", "--model", "mf-als", "--out",
                    str(out), "--quiet"], check=True)
    return out


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"ports {PORTS.start}-{PORTS.stop - 1} are all taken")


def start_server(run_dir: Path, log_dir: Path, port: int, workers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}  # one BLAS thread per request: threads serve in parallel
    server = subprocess.Popen([sys.executable, "-m", "recsys.cli", "serve", str(run_dir),
                               "--port", str(port), "--log-dir", str(log_dir), "--workers",
                               str(workers)], env=env)
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"recsys serve exited with {server.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
            return server
        except httpx.HTTPError:
            time.sleep(0.2)
    stop(server)
    raise SystemExit("recsys serve did not answer /health in 120 s")


def stop(server: subprocess.Popen) -> None:
    os.kill(server.pid, signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()


def measure(run_dir: Path, log_dir: Path, n_requests: int, workers: int) -> list[dict]:
    from recsys.storage.runs import load_run

    run = load_run(run_dir)
    rng = np.random.default_rng(0)
    port = free_port()
    server = start_server(run_dir, log_dir, port, workers)
    try:
        rows = []
        for endpoint in ("/recommend", "/similar"):
            for clients in CLIENTS:
                ids = run.user_ids if endpoint == "/recommend" else run.item_ids
                key = "user" if endpoint == "/recommend" else "movie"
                params = [{key: int(i), "k": 10}
                          for i in rng.choice(ids, n_requests + 10 * clients)]
                row = asyncio.run(load(port, server.pid, endpoint, params, clients, log_dir))
                rows.append({"workers": workers, **row})
                print(markdown_table(rows[-1:], COLUMNS).splitlines()[-1], file=sys.stderr)
    finally:
        stop(server)
    return rows


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process ``pid`` and its children (uvicorn's
    workers), from Linux /proc: the server's cost per request, which other load on the
    machine changes far less than its latency."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that just ended
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: parent pid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def load(port: int, server_pid: int, endpoint: str, params: list[dict], clients: int,
               log_dir: Path) -> dict:
    """``clients`` closed-loop clients send ``params`` in turn; the first ``10 * clients``
    requests warm up and are not counted."""
    import httpx

    from recsys.serving.served_log import read_records

    warm = 10 * clients
    queue = deque(enumerate(params))
    latencies = np.full(len(params), np.nan)
    request_ids: list[str | None] = [None] * len(params)
    errors, kinds = 0, set()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=30) as client:
        async def one_client() -> None:
            nonlocal errors
            while queue:
                number, query = queue.popleft()
                if number == warm:
                    timer["start"] = time.perf_counter()
                start = time.perf_counter()
                try:
                    response = await client.get(endpoint, params=query)
                except httpx.HTTPError as err:
                    errors += 1
                    kinds.add(type(err).__name__)
                    continue
                latencies[number] = time.perf_counter() - start
                if response.status_code != 200:
                    errors += 1
                    kinds.add(f"HTTP {response.status_code}")
                else:
                    request_ids[number] = response.headers["x-request-id"]

        timer = {"start": time.perf_counter()}
        cpu_before = cpu_seconds(server_pid)
        await asyncio.gather(*(one_client() for _ in range(clients)))
        seconds = time.perf_counter() - timer["start"]
        cpu = cpu_seconds(server_pid) - cpu_before
    timed = latencies[warm:][np.isfinite(latencies[warm:])] * 1e3
    counted = set(request_ids[warm:])
    server = np.array([r["latency_ms"] for r in read_records(log_dir)
                       if r["request_id"] in counted])
    return {"endpoint": endpoint, "clients": clients, "requests": len(timed),
            "req/s": len(timed) / seconds,
            "p50 ms": float(np.percentile(timed, 50)), "p95 ms": float(np.percentile(timed, 95)),
            "p99 ms": float(np.percentile(timed, 99)),
            "server p50 ms": float(np.percentile(server, 50)) if len(server) else float("nan"),
            "server p95 ms": float(np.percentile(server, 95)) if len(server) else float("nan"),
            "server CPU ms/req": cpu * 1e3 / len(params),
            "errors": f"{errors} ({', '.join(sorted(kinds))})" if errors else 0}


def breakdown(run_dir: Path, repeats: int = 7, n_users: int = 200) -> list[dict]:
    """CPU milliseconds per /recommend list of each step the server takes, in this process
    (one thread): steps timed in turn, ``repeats`` rounds, the median round reported."""
    from recsys.data.loading import load_movielens
    from recsys.serving import api, served_log
    from recsys.serving.catalog import Catalog, as_records, recommend
    from recsys.storage.runs import load_run

    catalog = Catalog.build(load_run(run_dir), load_movielens(download=False))
    api.warm_up(catalog)
    users = np.random.default_rng(0).choice(catalog.run.user_ids, n_users).tolist()
    inputs = [{"user": u, "k": 10, "lens": "dot", "exclude_seen": True} for u in users]
    served = [served_log.LISTS["recommend"](catalog, i) for i in inputs]
    rows = api._Rows(catalog)
    with tempfile.TemporaryDirectory() as tmp:
        log = served_log.ServedLog(Path(tmp))
        record = served_log.make_record(catalog, "recommend", inputs[0], served[0][1], 1.0,
                                        served_log.new_request_id())
        frames = [recommend(catalog, u, 10) for u in users]
        steps = {
            "model.recommend (the ranking alone)": lambda: [
                catalog.model.recommend(catalog.user_index(u), 10, catalog.seen) for u in users],
            "served list (recommend_items + logged items; what the API calls)": lambda: [
                served_log.LISTS["recommend"](catalog, i) for i in inputs],
            "catalog.recommend (ranking + its DataFrame; the page and the CLI)": lambda: [
                recommend(catalog, u, 10) for u in users],
            "response rows from the DataFrame (as_records, the CLI's --json)": lambda: [
                as_records(f[RESPONSE_COLUMNS]) for f in frames],
            "response rows from the logged items (what the API does)": lambda: [
                rows(items) for _, items in served],
            "log record + append (one os.write)": lambda: [log.append(record) for _ in users],
        }
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(repeats):
            for name, step in steps.items():
                start = time.process_time()
                step()
                times[name].append((time.process_time() - start) / len(users) * 1e3)
    return [{"step": name, "CPU ms per list": float(np.median(t))} for name, t in times.items()]


BREAKDOWN_COLUMNS = ["step", "CPU ms per list"]
RESPONSE_COLUMNS = ["rank", "item_id", "title", "year", "genres", "score"]
REPORT = BENCH_DIR / "API.md"
TITLE = "# Serving API: throughput and latency (`python -m bench.api`)\n"


def _section(name: str, body: str) -> None:
    if not REPORT.exists():
        REPORT.write_text(TITLE)
    write_section(REPORT, name, body)


def write_breakdown(parts: list[dict], info: dict, run_dir: Path) -> None:
    body = "\n".join([
        "## Where a /recommend request's CPU goes (in-process)",
        "",
        f"`{command_line()}` on run `{run_dir.name}`: each step of serving one list, "
        "200 random users, CPU time in one thread, the median of 7 interleaved rounds; "
        f"1-min load {os.getloadavg()[0]:.2f} ({info['nproc']} CPUs). HTTP parsing, "
        "validation and JSON encoding by uvicorn and FastAPI come on top (`/health` costs "
        "about 1 ms of server CPU per request).",
        "",
        markdown_table(parts, BREAKDOWN_COLUMNS),
        "",
    ])
    _section("api-breakdown", body + "\n")
    print(f"wrote the breakdown into {REPORT}", file=sys.stderr)


def write_report(table: str, rows: list[dict], info: dict, load_end: float,
                 run_dir: Path) -> None:
    verdicts = []
    for workers in sorted({r["workers"] for r in rows}):
        target = next(r for r in rows if r["endpoint"] == "/recommend" and r["clients"] == 8
                      and r["workers"] == workers)
        verdicts.append(f"{workers} worker(s): {target['p95 ms']:.1f} ms, "
                        f"{'met' if target['p95 ms'] <= TARGET_P95_MS else 'NOT met'}")
    body = "\n".join([
        "## Throughput and latency over HTTP",
        "",
        f"`{command_line()}`, serving run `{run_dir.name}` with `recsys serve --workers N` "
        "(uvicorn, served-list log on). Closed-loop clients (asyncio + httpx in one process on "
        "the same machine), `k=10`, random users / movies; `server p50/p95` are the list's "
        "computation as logged (`latency_ms`), `server CPU` the server processes' CPU time "
        "per request (/proc), the other columns the client's wall time per request.",
        "",
        *machine_lines(info),
        f"- 1-min load at the end: {load_end:.2f}",
        "",
        table,
        "",
        f"Target p95 <= {TARGET_P95_MS:.0f} ms for `/recommend` at 8 clients: "
        + "; ".join(verdicts) + ".",
        "",
    ])
    _section("api-http", body + "\n")
    print(f"wrote {REPORT}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
