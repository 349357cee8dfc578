"""Serving API throughput and latency: requests per second and p50 / p95 latency of
``/recommend`` and ``/similar`` at 1, 8 and 32 concurrent clients, against a real ``recsys
serve`` process (uvicorn on 127.0.0.1, served-list log on, as in use).

The server serves the pinned run of ``$RECSYS_RUNS_DIR`` (or ``--run``); without one, an mf-als
run is trained into a temporary folder first; one server per ``--workers`` count, all
started at once and measured in turn (side by side, under the same background load).

Clients are closed loops (each sends its next request when the last one is answered), users
and movies drawn at random (seeded), from one of three load generators (:data:`CLIENT_NOTES`):
``raw`` (asyncio streams, HTTP/1.1 written by hand: about a tenth of a core at 8 clients),
``httpx`` (asyncio + httpx: about 2 ms of client CPU per request, so at 8 clients the client
itself takes most of a core from the server) and ``wrk`` (C, if installed). On a 2-core machine
the load generator competes with the server, so the table gives each one's CPU share. Client
latency is measured around each request; the server's own time per list comes from the
served-list log (``latency_ms``), so the table separates the list's computation from HTTP and
queueing. The load average is recorded with the table.

    python -m bench.api                     # 1500 requests per row, prints the table
    python -m bench.api --rounds 2 --write  # each row twice, writes bench/API.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from bench.common import (
    BENCH_DIR,
    command_line,
    machine,
    machine_lines,
    markdown_table,
    write_section,
)

PORTS = range(8960, 8980)  # the ports this benchmark may bind (127.0.0.1 only)
CLIENTS = (1, 8, 32)
TARGET_P95_MS = 20.0  # /recommend at 8 clients (issue 25)
COLUMNS = ["client", "workers", "endpoint", "clients", "requests", "req/s", "p50 ms", "p95 ms",
           "p99 ms", "server p50 ms", "server p95 ms", "server CPU ms/req", "client CPU %",
           "errors"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="run to serve (default: the pinned run of "
                                                 "$RECSYS_RUNS_DIR, else a quick mf-als run)")
    parser.add_argument("--requests", type=int, default=1500,
                        help="timed /recommend requests per row (/similar: a fifth)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="uvicorn worker processes, one server per count (default 1 2)")
    parser.add_argument("--client", nargs="+", choices=CLIENT_KINDS, default=list(CLIENT_KINDS),
                        help="load generators for /recommend (default all; /similar uses the "
                             "first)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of every row, interleaved; the table shows each row's "
                             "median round (by p95)")
    parser.add_argument("--breakdown-only", action="store_true",
                        help="only the in-process CPU breakdown of one /recommend list")
    parser.add_argument("--write", action="store_true",
                        help="write the section(s) measured into bench/API.md")
    args = parser.parse_args(argv)
    if "wrk" in args.client and shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk): measuring without it",
              file=sys.stderr)
        args.client.remove("wrk")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        run_dir = args.run or default_run(Path(tmp))
        info = machine()
        parts = breakdown(run_dir)
        print(markdown_table(parts, BREAKDOWN_COLUMNS))
        if args.write:
            write_breakdown(parts, info, run_dir)
        if args.breakdown_only:
            return 0
        rows = measure(run_dir, Path(tmp), args.requests, args.workers, args.client,
                       args.rounds)
        load_end = os.getloadavg()[0]
    table = markdown_table(rows, COLUMNS)
    print(table)
    if args.write:
        write_report(table, rows, info, load_end, run_dir, args)
    return 0


def plan(kinds: list[str], n_requests: int) -> list[tuple[str, str, int, int]]:
    """The rows measured, as (client, endpoint, concurrent clients, requests): /recommend with
    every client kind, /similar (the server's cost dominates) with the first, and /health at 8
    clients with every kind: the least a request costs through that client and the server."""
    rows = [(kind, "/recommend", clients, n_requests) for clients in CLIENTS for kind in kinds]
    rows += [(kinds[0], "/similar", clients, max(n_requests // 5, 20)) for clients in CLIENTS]
    rows += [(kind, "/health", 8, n_requests) for kind in kinds]
    return rows


def measure(run_dir: Path, tmp: Path, n_requests: int, workers: list[int], kinds: list[str],
            rounds: int) -> list[dict]:
    """Starts one server per worker count, all at once, and measures every row of
    :func:`plan` on each in turn, ``rounds`` times: the servers are compared side by side,
    under the same background load. Each row's median round (by p95) is returned."""
    from recsys.storage.runs import load_run

    run = load_run(run_dir)
    rng = np.random.default_rng(0)
    servers: dict[int, tuple[subprocess.Popen, int, Path]] = {}
    results: dict[tuple, list[dict]] = {}
    try:
        for count in workers:
            port, log_dir = free_port(), tmp / f"log-{count}"
            servers[count] = (start_server(run_dir, log_dir, port, count), port, log_dir)
        for _ in range(rounds):
            for kind, endpoint, clients, requests in plan(kinds, n_requests):
                for count, (server, port, log_dir) in servers.items():
                    params = _params(run, rng, endpoint, requests + 10 * clients)
                    if kind == "wrk":
                        row = wrk_load(port, server.pid, endpoint, params, clients, log_dir,
                                       seconds=requests / 500)
                    else:
                        row = asyncio.run(load(port, server.pid, endpoint, params, clients,
                                               log_dir, kind))
                    row = {"client": kind, "workers": count, **row}
                    results.setdefault((kind, endpoint, clients, count), []).append(row)
                    print(markdown_table([row], COLUMNS).splitlines()[-1], file=sys.stderr)
    finally:
        for server, _, _ in servers.values():
            stop(server)
    return [sorted(found, key=lambda r: r["p95 ms"])[len(found) // 2]
            for found in results.values()]


def _params(run, rng: np.random.Generator, endpoint: str, n: int) -> list[dict]:
    if endpoint == "/health":
        return [{}] * n
    ids, key = ((run.user_ids, "user") if endpoint == "/recommend" else (run.item_ids, "movie"))
    return [{key: int(i), "k": 10} for i in rng.choice(ids, n)]


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


CLIENT_KINDS = ("raw", "httpx", "wrk")
CLIENT_NOTES = {
    "raw": "asyncio streams in this process: one keep-alive HTTP/1.1 connection per client, "
           "the request written and the response read by hand (no HTTP library)",
    "httpx": "asyncio + httpx in this process, one connection pool (what a Python service "
             "calling the API would use; about 2 ms of client CPU per request)",
    "wrk": "wrk 4.1 (C, Debian), one thread, one keep-alive connection per client, a Lua "
           "script cycling through the same random users / movies; it runs for a time (the "
           "requests asked for / 500 s), so its rows count the requests it sent",
}


async def load(port: int, server_pid: int, endpoint: str, params: list[dict], clients: int,
               log_dir: Path, client: str = "raw") -> dict:
    """``clients`` closed-loop clients send ``params`` in turn; the first ``10 * clients``
    requests warm up and are not counted. ``client``: ``"raw"`` or ``"httpx"``
    (:data:`CLIENT_NOTES`)."""
    warm = 10 * clients
    queue = deque(enumerate(params))
    latencies = np.full(len(params), np.nan)
    request_ids: list[str | None] = [None] * len(params)
    errors: list[str] = []
    timer = {"start": time.perf_counter()}

    def record(number: int, start: float, status: int, request_id: str | None) -> None:
        if number == warm:
            timer["start"] = start
        if status != 200:
            errors.append(f"HTTP {status}")
            return
        latencies[number] = time.perf_counter() - start
        request_ids[number] = request_id

    session = _raw_session if client == "raw" else _httpx_session
    cpu_before, client_before = cpu_seconds(server_pid), time.process_time()
    begin = time.perf_counter()
    await session(port, endpoint, queue, clients, record, errors)
    seconds = time.perf_counter() - timer["start"]  # the counted requests only
    wall = time.perf_counter() - begin  # warm-up included, as the CPU times are
    cpu, client_cpu = cpu_seconds(server_pid) - cpu_before, time.process_time() - client_before
    timed = latencies[warm:][np.isfinite(latencies[warm:])] * 1e3
    counted = set(request_ids[warm:])
    server = [r["latency_ms"] for r in read_log(log_dir) if r["request_id"] in counted]
    kinds = sorted(set(errors))
    return {"client": client, "endpoint": endpoint, "clients": clients, "requests": len(timed),
            "req/s": len(timed) / seconds, **percentiles(timed), **server_columns(server),
            "server CPU ms/req": cpu * 1e3 / len(params),
            "client CPU %": 100 * client_cpu / wall,
            "errors": f"{len(errors)} ({', '.join(kinds)})" if errors else 0}


def percentiles(latencies_ms: np.ndarray) -> dict[str, float]:
    return {f"p{q} ms": float(np.percentile(latencies_ms, q)) for q in (50, 95, 99)}


def server_columns(server_ms: list[float]) -> dict[str, float]:
    """The list's computation as logged (``latency_ms``): p50 and p95."""
    values = np.asarray(server_ms, float)
    return {f"server p{q} ms": float(np.percentile(values, q)) if len(values) else float("nan")
            for q in (50, 95)}


def read_log(log_dir: Path) -> list[dict]:
    from recsys.serving.served_log import read_records

    return list(read_records(log_dir)) if log_dir.exists() else []


async def _httpx_session(port, endpoint, queue, clients, record, errors) -> None:
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=30) as client:
        async def one_client() -> None:
            while queue:
                number, query = queue.popleft()
                start = time.perf_counter()
                try:
                    response = await client.get(endpoint, params=query)
                except httpx.HTTPError as err:
                    errors.append(type(err).__name__)
                    continue
                record(number, start, response.status_code, response.headers.get("x-request-id"))

        await asyncio.gather(*(one_client() for _ in range(clients)))


async def _raw_session(port, endpoint, queue, clients, record, errors) -> None:
    """Closed-loop clients on one keep-alive connection each, speaking just enough HTTP/1.1:
    a GET line, then the status line, the headers and ``Content-Length`` bytes of body."""
    async def one_client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                number, query = queue.popleft()
                request = (f"GET {endpoint}?{urlencode(query)} HTTP/1.1\r\n"
                           f"Host: 127.0.0.1:{port}\r\n\r\n").encode("ascii")
                start = time.perf_counter()
                writer.write(request)
                status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                await reader.readexactly(int(headers.get(b"content-length", b"0")))
                record(number, start, status, headers.get(b"x-request-id", b"").decode())
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            errors.append(type(err).__name__)
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))


WRK_SCRIPT = """
paths = {%(paths)s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %%d %%d %%d %%f %%f %%f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50),
    latency:percentile(95), latency:percentile(99)))
end
"""


def wrk_load(port: int, server_pid: int, endpoint: str, params: list[dict], clients: int,
             log_dir: Path, seconds: float) -> dict:
    """``clients`` keep-alive connections of one wrk thread, each sending its next request when
    the last is answered (closed loop), for ``seconds`` after a 2 s warm-up run. wrk reports
    its own percentiles; the server's list times are the log records written meanwhile."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        paths = ", ".join(f'"{endpoint}?{urlencode(q)}"' for q in params)
        script.write(WRK_SCRIPT % {"paths": paths})
    try:
        _run_wrk(port, clients, 2.0, script.name)
        logged_before = len(read_log(log_dir))
        cpu_before = cpu_seconds(server_pid)
        out, client_cpu, wall = _run_wrk(port, clients, seconds, script.name)
        cpu = cpu_seconds(server_pid) - cpu_before
    finally:
        os.unlink(script.name)
    line = next(row for row in out.splitlines() if row.startswith("WRK "))
    requests, micros, errors, p50, p95, p99 = (float(v) for v in line.split()[1:])
    server = [r["latency_ms"] for r in read_log(log_dir)[logged_before:]]
    return {"client": "wrk", "endpoint": endpoint, "clients": clients, "requests": int(requests),
            "req/s": requests / (micros / 1e6), "p50 ms": p50 / 1e3, "p95 ms": p95 / 1e3,
            "p99 ms": p99 / 1e3, **server_columns(server),
            "server CPU ms/req": cpu * 1e3 / max(requests, 1),
            "client CPU %": 100 * client_cpu / wall, "errors": int(errors)}


def _run_wrk(port: int, clients: int, seconds: float, script: str) -> tuple[str, float, float]:
    """wrk's output, its CPU seconds (from the kernel's rusage of the ended child) and the
    wall seconds it ran."""
    start = time.perf_counter()
    command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout",
               "30s", "-s", script, f"http://127.0.0.1:{port}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"wrk exited with {process.returncode}: {out}")
    return out, usage.ru_utime + usage.ru_stime, time.perf_counter() - start


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    status_line, *lines = head.rstrip(b"\r\n").split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


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
        "validation and JSON encoding by uvicorn and FastAPI come on top (a `/health` "
        "request, without list or log, costs 0.2-0.4 ms of server CPU: the HTTP table).",
        "",
        markdown_table(parts, BREAKDOWN_COLUMNS),
        "",
    ])
    _section("api-breakdown", body + "\n")
    print(f"wrote the breakdown into {REPORT}", file=sys.stderr)


def write_report(table: str, rows: list[dict], info: dict, load_end: float, run_dir: Path,
                 args: argparse.Namespace) -> None:
    from recsys.cli.serving import http_stack

    verdicts = []
    for row in rows:
        if row["endpoint"] == "/recommend" and row["clients"] == 8:
            met = "met" if row["p95 ms"] <= TARGET_P95_MS else "NOT met"
            verdicts.append(f"- {row['client']} client, {row['workers']} worker(s): "
                            f"{row['p95 ms']:.1f} ms, {met} (client CPU "
                            f"{row['client CPU %']:.0f} % of a core)")
    http, loop = http_stack()
    body = "\n".join([
        f"## Throughput and latency over HTTP ({info['date'][:10]})",
        "",
        f"`{command_line()}`, serving run `{run_dir.name}` with `recsys serve --workers N` "
        f"(uvicorn on {http} + {loop}, served-list log on); the servers of each worker count "
        "run side by side and take the rows in turn"
        + (f", {args.rounds} rounds, each row's median round by p95 shown (of an even number, "
           "the slower of the middle two)" if args.rounds > 1 else "") + ". "
        "Closed-loop clients on the same machine, `k=10`, random users / movies (seeded); "
        "`p50/p95/p99` are the client's wall time per request, `server p50/p95` the list's "
        "computation as logged (`latency_ms`), `server CPU` the server processes' CPU time per "
        "request (/proc), `client CPU %` the load generator's CPU time over the row's wall time "
        "(100 % = one of the 2 cores, taken from the server). The clients:",
        "",
        *(f"- `{kind}`: {CLIENT_NOTES[kind]}" for kind in args.client),
        "",
        "`/health` rows: the least a request costs through each client and the server (no "
        "list, no log).",
        "",
        *machine_lines(info),
        f"- 1-min load at the end: {load_end:.2f}",
        "",
        table,
        "",
        f"Target p95 <= {TARGET_P95_MS:.0f} ms for `/recommend` at 8 clients:",
        "",
        *verdicts,
        "",
    ])
    _section("api-http", body + "\n")
    print(f"wrote {REPORT}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
