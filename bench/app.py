"""What a person in a browser feels, beside the CLI, measured in one run.

1. Training: ``recsys train`` as a process vs. the Train page (click Train → the "Done:" box,
   page open all along) vs. the page closed right after the click (→ the run's ``weights.npz``).
2. First heading and page switches on a fresh server: first visitor, second visitor, warm
   switches through the app's sidebar links.
3. Maps: UMAP from the worker's cache, warm map interactions, the first UMAP of a run without
   a cache in the browser, and ``recsys project --method umap`` with a cold vs. warm numba cache.

Variants are interleaved and repeated; the report gives min/median/max and ratios of medians
taken in the same run. Headings, the first epoch and the "Done:" box are timed inside the
page, when first drawn (bench/paint.py), not when Playwright's polling noticed them. "Rendering
finished" means: the browser received Streamlit's
``script_finished`` message of a complete script run, the status widget is hidden and the
page's chart (where it has one) is visible.

    python -m bench.app            # quiet, 3 rounds (~12 min)
    python -m bench.app --small    # 1 round, 3 epochs (~4 min)
    python -m bench.app --busy     # quiet, then again with one CPU-bound process spinning
    python -m bench.app --busy-only --rounds 2
    python -m bench.app --training-only --rounds 3 [--cold-worker]   # section 1 only

Section 1 also times click Train → the first epoch on screen (1b-e) in a 1,366 × 800 window
(a projector), and compares click → "Done:" with the browser job's own fit (1b − 1j-fit, its
`fit_seconds`; the fit of a fresh `recsys train`, 1a-fit, also pays numba's set-up). The
visitor clicks once the Train page has rendered (``--click-early``: as soon as the button
shows). ``--cold-worker`` starts the server with
``RECSYS_WARM_WORKER=0``: every job starts a fresh ``python -m recsys.jobs.worker`` (imports
torch, loads MovieLens after the click), as before the warm standby worker.

Writes bench/APP_RESULTS.md. Servers, browsers, workers and the spinning process are stopped at
the end, also on errors.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.paint import drawn, reset, watch_script
from recsys.jobs.manager import read_events
from ui.embedding_map import COLOURS

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "APP_RESULTS.md"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RECSYS = Path(sys.executable).parent / "recsys"
STATUS = "[data-testid='stStatusWidget']"
CHART = "[data-testid='stPlotlyChart']"
LONG = 900.0  # s: the longest single wait (a training on a busy machine)
SERVER_ENV: dict[str, str] = {}  # extra environment of the servers (--cold-worker)
PROJECTOR = (1366, 800)  # the training visitor's window: what a projector shows
PAGES = [  # sidebar link, heading, whether the page draws a Plotly chart
    ("Recommendations", "Recommendations", False),
    ("Similar movies", "Similar movies", False),
    ("Embedding map", "Embedding map", True),
    ("Build your profile", "Build your profile", False),
    ("Train & evaluate", "Train & evaluate", False),
    ("Home", "MovieLens embeddings", True),
]
# What the page itself times (bench/paint.py): the moment each was first drawn, instead of
# when Playwright's wait_for, polling every 0.5 s after its first 0.3 s, noticed it.
WATCHES = {
    **{f"h1:{heading}": ("h1", re.escape(heading)) for _, heading, _ in PAGES},
    "epoch:progress": ("[data-testid='stProgress']", r"epoch \d+|refit|saved as"),
    "epoch:curves": (CHART, "Training loss"),
    "done": ("[data-testid='stAlert']", "Done:"),
}
# key -> (what is measured, target: ("s", seconds) on the median, or None)
ROWS: dict[str, tuple[str, tuple[str, float] | None]] = {
    "1a": ("training: `recsys train` as a whole process (wall)", None),
    "1a-fit": ("  same CLI runs: the fit's own time (`fit_seconds` in the run's metrics)", None),
    "1b-e": ("training, Train page open: click Train → first epoch on screen (\"epoch N\" "
             "in the job's progress bar, or its curves)", ("s", 1.0)),
    "1b-e-pw": ("  same runs, as Playwright's `wait_for` saw it (polls every 0.5 s after "
                "0.3 s)", None),
    "1b": ("training, Train page open: click Train → green \"Done:\" box drawn", None),
    "1b-pw": ("  same runs, as Playwright's `wait_for` saw it", None),
    "1b-w": ("  same runs: click Train → weights.npz written (file mtime)", None),
    "1j-c": ("  where the time goes, page open: click → the job admitted (`submitted` in "
             "job.json: the click's script run reached `submit`)", None),
    "1j-e": ("  … job admitted → the worker wrote its first epoch", None),
    "1j-s": ("  … job admitted → the worker saved the run", None),
    "1j-fit": ("  the browser job's own fit (`fit_seconds`, in the warm standby: no numba "
               "set-up, unlike a fresh `recsys train`)", None),
    "1c": ("training, page closed after the click: click Train → weights.npz exists", None),
    "1c-j": ("  same runs: click Train → job folder created (then about:blank)", None),
    "2a-h": ("first visitor: goto / → h1 \"MovieLens embeddings\" drawn", ("s", 5.0)),
    "2a-r": ("first visitor: goto / → rendering finished (chart visible)", None),
    "2b-h": ("second visitor: goto / → h1 drawn", ("s", 2.0)),
    "2b-r": ("second visitor: goto / → rendering finished", None),
    "2c-first": ("first switch to each page in the server's life → rendering finished", None),
    "2c-h": ("warm page switch (sidebar link) → target h1 drawn, all pages", ("s", 1.0)),
    "2c-r": ("warm page switch → rendering finished, all pages", ("s", 1.0)),
    "2c-fin": ("  same switches: → `script_finished` message received (server side done)",
               None),
    "3a": ("switch map to UMAP, run trained in the browser (worker's cache) → done",
           ("s", 1.0)),
    "3a-fin": ("  same: → `script_finished` received", None),
    "3b-colour": ("map warm: change \"Colour by\" → done", None),
    "3b-colour-fin": ("  same: → `script_finished` received", None),
    "3b-search": ("map warm: type into \"Highlight titles\" + Enter → done", None),
    "3b-search-fin": ("  same: → `script_finished` received", None),
    "3d": ("browser: first UMAP of a run without cache (pinned CLI run) → done", None),
    "3d-fin": ("  same: → `script_finished` received", None),
    "3c-cold": ("`recsys project RUN --method umap` process, empty NUMBA_CACHE_DIR", None),
    "3c-warm": ("`recsys project RUN --method umap` process, default (warm) numba cache",
                None),
}
DIFFERENCES = [  # (minuend, subtrahend, target difference of medians in seconds or None)
    ("1b", "1j-fit", 1.0), ("1b", "1a-fit", None), ("1b", "1a", None),
]
RATIOS = [  # (numerator, denominator, target ratio or None)
    ("1b", "1a", 1.2), ("1c", "1a", 1.2), ("1b-w", "1a", None), ("1b-w", "1c", None),
    ("1b", "1b-w", None), ("1b", "1c", None),
    ("3c-cold", "3c-warm", None),
]


# ---------------------------------------------------------------------- records
@dataclass
class Results:
    """Samples per (mode, key), plus notes worth reading beside the numbers."""

    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    load: dict[str, tuple[float, float]] = field(default_factory=dict)
    minutes: dict[str, float] = field(default_factory=dict)

    def add(self, mode: str, key: str, seconds: float) -> None:
        self.samples.setdefault((mode, key), []).append(seconds)
        print(f"  [{mode}] {key:10s} {seconds:8.2f} s", flush=True)

    def load_note(self, mode: str, section: str) -> None:
        """Other processes on the machine show up here (the load average lags by ~1 min)."""
        self.note(mode, f"{section}: 1-min load average {os.getloadavg()[0]:.2f} at the start")

    def note(self, mode: str, text: str) -> None:
        self.notes.append(f"[{mode}] {text}")
        print(f"  [{mode}] note: {text}", flush=True)

    def get(self, mode: str, key: str) -> list[float]:
        return self.samples.get((mode, key), [])


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``streamlit run streamlit_app.py`` on 127.0.0.1 with its own runs dir."""

    def __init__(self, runs: Path, log: Path) -> None:
        self.runs, self.log_path = runs, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.headless", "true", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env={**os.environ, "RECSYS_RUNS_DIR": str(runs), **SERVER_ENV},
            stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; log:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_workers(self.runs)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def stop_workers(runs: Path) -> None:
    """Ends any training worker this script's servers started that has not exited (errors)."""
    for job_dir in (runs / ".jobs").glob("*"):
        events = read_events(job_dir)
        pid = next((e.get("pid") for e in events if e["event"] == "start"), None)
        if pid and not any(e["event"] == "exit" for e in events):
            try:
                os.kill(int(pid), signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


@contextmanager
def spinning(on: bool):
    """One extra CPU-bound process (a pure-Python loop) while ``on``: a busy 2-core machine."""
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        proc.terminate()
        proc.wait()


def run_process(args: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one whole process; raises with its output if it fails."""
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def fresh_runs_dir(path: Path, base_run: Path) -> Path:
    """A runs dir holding a copy of the CLI-trained base run, pinned (no first-launch training)."""
    path.mkdir(parents=True)
    run = path / base_run.name
    shutil.copytree(base_run, run, ignore=shutil.ignore_patterns("projections"))
    run_process([str(RECSYS), "pin", str(run)])
    return path


# ---------------------------------------------------------------------- jobs
def job_ids(runs: Path) -> set[str]:
    jobs = runs / ".jobs"
    return {p.name for p in jobs.iterdir() if p.is_dir()} if jobs.exists() else set()


def wait_new_job(runs: Path, before: set[str], timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in job_ids(runs) - before:
            job_dir = runs / ".jobs" / name
            if (job_dir / "job.json").exists():
                return job_dir
        time.sleep(0.01)
    raise TimeoutError("no training job appeared after clicking Train")


def read_job(job_dir: Path, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads((job_dir / "job.json").read_text())
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def wait_job_exit(job_dir: Path, timeout: float = LONG) -> list[dict[str, Any]]:
    """Waits until the worker has finished everything (training and maps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(job_dir)
        if any(e["event"] == "exit" for e in events):
            return events
        time.sleep(0.2)
    raise TimeoutError(f"job {job_dir.name} did not exit within {timeout:.0f} s")


def map_summary(events: list[dict[str, Any]]) -> str:
    parts = [f"{e['method']} {e['seconds']:.1f}s" for e in events
             if e["event"] == "map" and e.get("state") == "done"]
    failed = [f"{e['method']} FAILED ({e.get('error')})" for e in events
              if e["event"] == "map" and e.get("state") == "failed"]
    return ", ".join(parts + failed) or "no maps"


# ---------------------------------------------------------------------- browser
class Tab:
    """A page that counts complete script runs from Streamlit's websocket messages."""

    def __init__(self, context) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        done = ForwardMsg.ScriptFinishedStatus
        # a fragment's rerun (st.fragment) is a complete run of what it redraws
        self._msg, self._ok = ForwardMsg, {done.FINISHED_SUCCESSFULLY,
                                           done.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}
        self.finished = 0
        self.finished_at = 0.0  # perf_counter when the last complete run's message arrived
        self.page = context.new_page()
        self.page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws) -> None:
        if "_stcore/stream" in ws.url:
            ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload) -> None:
        if isinstance(payload, str):
            return
        msg = self._msg()
        try:
            msg.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - anything that is not one ForwardMsg is ignored
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished in self._ok:
            self.finished += 1
            self.finished_at = time.perf_counter()

    def heading(self, text: str):
        return self.page.locator("h1").filter(has_text=text).first

    def link(self, label: str):
        return self.page.locator("[data-testid='stSidebar']").get_by_role(
            "link", name=label, exact=True)

    def rendered(self, since: int, chart: bool = False, timeout: float = LONG) -> None:
        """A complete script run after ``since``, the status widget hidden, the chart shown."""
        deadline = time.perf_counter() + timeout
        while self.finished <= since:
            if time.perf_counter() > deadline:
                raise TimeoutError("no complete script run")
            self.page.wait_for_timeout(10)  # lets the websocket handler run
        left = max(1.0, deadline - time.perf_counter()) * 1000
        self.page.locator(STATUS).wait_for(state="hidden", timeout=left)
        if chart:
            self.page.locator(CHART).first.wait_for(state="visible", timeout=left)

    def drawn_since(self, name: str, wall: float, polled: float) -> float:
        """Seconds from ``wall`` (time.time()) to the watched element ``name`` drawn, as the
        page timed it; Playwright's ``polled`` seconds where the page has no time for it."""
        at = drawn(self.page, name)
        return polled if at is None else at - wall

    def goto(self, url: str, heading: str, chart: bool) -> tuple[float, float]:
        """Seconds to the heading drawn and to rendering finished."""
        since = self.finished
        wall, start = time.time(), time.perf_counter()
        self.page.goto(url, wait_until="commit")
        self.heading(heading).wait_for(state="visible", timeout=LONG * 1000)
        head = self.drawn_since(f"h1:{heading}", wall, time.perf_counter() - start)
        self.rendered(since, chart)
        return head, time.perf_counter() - start

    def act(self, action, chart: bool = True, heading: str | None = None):
        """Seconds from ``action()`` to the heading (optional) and to rendering finished;
        ``self.server_seconds`` = to the arrival of the run's ``script_finished`` message."""
        since = self.finished
        if heading:
            reset(self.page, f"h1:{heading}")
        wall, start = time.time(), time.perf_counter()
        action()
        head = None
        if heading:
            self.heading(heading).wait_for(state="visible", timeout=LONG * 1000)
            head = self.drawn_since(f"h1:{heading}", wall, time.perf_counter() - start)
        self.rendered(since, chart)
        self.server_seconds = self.finished_at - start
        return head, time.perf_counter() - start


def new_tab(browser, viewport: tuple[int, int] = (1400, 1000)) -> Tab:
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    context.add_init_script(watch_script(WATCHES))
    context.set_default_timeout(LONG * 1000)  # a click waits as long as a busy machine needs
    return Tab(context)


def close_tab(tab: Tab) -> None:
    tab.page.context.close()


# ---------------------------------------------------------------------- 1 + 3a/3b: training
CLICK_EARLY = False  # --click-early: click as soon as the button shows (the page still loading)


def open_train_page(tab: Tab, server: Server, epochs: int | None):
    """The Train page, rendered as a visitor sees it before pressing Train: its script
    finished and its lessons chart drawn. Until Dec 7 2026 the click came as soon as the
    button showed, while Chromium was still evaluating Plotly's 4.7 MB chunk for that chart
    (a ~1 s task on this CPU), which held the click's own message back by ~1 s: a page-load
    cost, not training's (``--click-early`` measures that way again)."""
    tab.goto(f"{server.url}/train", "Train & evaluate", chart=not CLICK_EARLY)
    button = tab.page.get_by_role("button", name="Train", exact=True)
    button.wait_for(state="visible", timeout=60_000)
    if epochs is not None:
        spin = tab.page.get_by_role("spinbutton", name="Epochs", exact=True)
        spin.fill(str(epochs))
        spin.press("Tab")
    return button


def train_cli(res: Results, mode: str, work: Path, epochs: int | None, tag: str) -> Path:
    out = work / f"cli-{tag}"
    extra = ["--epochs", str(epochs)] if epochs is not None else []
    res.add(mode, "1a", run_process([str(RECSYS), "train", "--out", str(out), "--quiet",
                                     *extra]))
    res.add(mode, "1a-fit", json.loads((out / "metrics.json").read_text())["fit_seconds"])
    return out


def train_browser(res: Results, mode: str, browser, server: Server, epochs: int | None,
                  page_open: bool, rounds_of_maps: int) -> dict[str, Any]:
    tab = new_tab(browser, PROJECTOR)
    try:
        button = open_train_page(tab, server, epochs)
        before = job_ids(server.runs)
        wall, start = time.time(), time.perf_counter()
        button.click()
        if page_open:
            first_epoch(res, mode, tab, start, wall)
            done = tab.page.locator("[data-testid='stAlert']").filter(has_text="Done:")
            done.first.wait_for(state="visible", timeout=LONG * 1000)
            polled = time.perf_counter() - start
            res.add(mode, "1b", tab.drawn_since("done", wall, polled))
            res.add(mode, "1b-pw", polled)
            job_dir = wait_new_job(server.runs, before, timeout=5)
        else:
            job_dir = wait_new_job(server.runs, before)
            res.add(mode, "1c-j", time.perf_counter() - start)
            tab.page.goto("about:blank")
            weights = Path(read_job(job_dir)["out_dir"]) / "weights.npz"
            while not weights.exists():
                if time.perf_counter() - start > LONG:
                    raise TimeoutError(f"{weights} never appeared")
                time.sleep(0.01)
            res.add(mode, "1c", time.perf_counter() - start)
        job = read_job(job_dir)
        weights = Path(job["out_dir"]) / "weights.npz"
        if page_open:
            res.add(mode, "1b-w", weights.stat().st_mtime - wall)
        events = wait_job_exit(job_dir)
        if page_open:
            job_parts(res, mode, job, events, wall)
        res.note(mode, f"{'open' if page_open else 'closed'} job {job_dir.name} "
                       f"({'standby worker' if job.get('warm') else 'cold worker'}): worker maps "
                       f"{map_summary(events)}; exit after {events[-1]['t'] - wall:.1f} s")
        if page_open:
            maps_in_browser(res, mode, tab, Path(job["out_dir"]), rounds_of_maps)
        return job
    finally:
        close_tab(tab)


def first_epoch(res: Results, mode: str, tab: Tab, start: float, wall: float) -> None:
    """1b-e: the first sign of an epoch in the job panel (the progress text "epoch N", or the
    live curves, which appear with the first epoch), and whether it is inside the window
    without scrolling (a projector shows only the window)."""
    progress = tab.page.locator("[data-testid='stProgress']").filter(
        has_text=re.compile(r"epoch \d+|refit|saved as"))
    seen = progress.or_(tab.page.locator(CHART).filter(has_text="Training loss")).first
    seen.wait_for(state="visible", timeout=LONG * 1000)
    polled = time.perf_counter() - start
    times = [at for at in (drawn(tab.page, "epoch:progress"), drawn(tab.page, "epoch:curves"))
             if at is not None]
    res.add(mode, "1b-e", min(times) - wall if times else polled)
    res.add(mode, "1b-e-pw", polled)
    top = seen.evaluate("e => e.getBoundingClientRect().top")
    height = tab.page.evaluate("() => window.innerHeight")
    res.note(mode, f"first epoch shown {top:.0f} px from the top of a {height} px window: "
                   f"{'in view' if top < height else 'below the fold (needs scrolling)'}")


def job_parts(res: Results, mode: str, job: dict[str, Any], events: list[dict[str, Any]],
              wall: float) -> None:
    """1j-*: the click's time split at the job's admission, from the job's own files: the
    server's part (the click's script run) and the worker's (start-up, first epoch, save)."""
    submitted = float(job["submitted"])
    first = next((e["t"] for e in events if e["event"] == "epoch"), None)
    saved = next((e["t"] for e in events if e["event"] == "saved"), None)
    res.add(mode, "1j-c", submitted - wall)
    if first is not None:
        res.add(mode, "1j-e", first - submitted)
    if saved is not None:
        res.add(mode, "1j-s", saved - submitted)
    fit = next((e.get("fit_seconds") for e in events if e["event"] == "saved"), None)
    if fit is not None:
        res.add(mode, "1j-fit", fit)


def maps_in_browser(res: Results, mode: str, tab: Tab, run: Path, repeats: int) -> None:
    """3a/3b on the visitor whose active model is the run just trained (maps cached)."""
    # items-<lens>-...-umap-<settings>.npz (the lens prefix came with the debiased map lens)
    cached = sorted(p.name for p in (run / "projections").glob("items-*umap-*.npz"))
    if not cached:
        res.note(mode, f"3a: the worker left no UMAP cache in {run.name}")
    page = tab.page
    tab.act(tab.link("Embedding map").click, chart=True, heading="Embedding map")
    radio = page.locator("[data-testid='stRadio']").filter(has_text="Projection")
    _, seconds = tab.act(radio.get_by_text("UMAP", exact=True).click)
    res.add(mode, "3a", seconds)
    res.add(mode, "3a-fin", tab.server_seconds)
    if page.get_by_text("Computing the UMAP map").count():
        res.note(mode, "3a: the UMAP spinner was shown although the worker cached the map")
    colours = [COLOURS[key] for key in ("popularity", "year", "length", "genre")]  # as labelled
    queries = ["star wars", "alien", "godfather", "toy story"]
    box = page.locator("[data-testid='stSelectbox']").filter(has_text="Colour by")
    search = page.get_by_label("Highlight titles")
    for i in range(repeats):
        box.get_by_role("button", name="Open").click()
        option = page.get_by_role("option", name=colours[i % 4], exact=True)
        _, seconds = tab.act(option.click)
        res.add(mode, "3b-colour", seconds)
        res.add(mode, "3b-colour-fin", tab.server_seconds)
        search.fill(queries[i % 4])
        _, seconds = tab.act(lambda: search.press("Enter"))  # noqa: B023 - called at once
        res.add(mode, "3b-search", seconds)
        res.add(mode, "3b-search-fin", tab.server_seconds)


def section_training(res: Results, mode: str, browser, work: Path, base_run: Path,
                     rounds: int, epochs: int | None) -> None:
    print(f"[{mode}] 1. training: CLI vs Train page open vs closed, {rounds} rounds",
          flush=True)
    res.load_note(mode, "section 1")
    runs = fresh_runs_dir(work / "runs-train", base_run)
    server = Server(runs, work / "server-train.log")
    try:
        server.wait_ready()
        warm = new_tab(browser)  # the first page view pays the imports; not measured here
        try:
            warm.goto(server.url, "MovieLens embeddings", chart=True)
        finally:
            close_tab(warm)
        configs: dict[str, dict] = {}
        variants = ["cli", "open", "closed"]
        for r in range(rounds):
            order = variants[r % 3:] + variants[:r % 3]
            print(f"[{mode}] round {r + 1}/{rounds}: {' → '.join(order)}", flush=True)
            for variant in order:
                if variant == "cli":
                    out = train_cli(res, mode, work, epochs, f"{mode}-{r}")
                    configs["cli"] = json.loads((out / "config.json").read_text())["train"]
                else:
                    job = train_browser(res, mode, browser, server, epochs,
                                        variant == "open", rounds_of_maps=2)
                    configs[variant] = job["train"]
        for variant in ("open", "closed"):
            diff = {k: (configs["cli"].get(k), v) for k, v in configs[variant].items()
                    if configs["cli"].get(k) != v}
            res.note(mode, f"config of the {variant}-page job vs CLI: "
                           f"{'identical' if not diff else diff}")
    finally:
        server.stop()


# ---------------------------------------------------------------------- 2 + 3d: navigation
def section_navigation(res: Results, mode: str, browser, work: Path, base_run: Path,
                       rounds: int) -> None:
    print(f"[{mode}] 2. first heading and page switches on a fresh server", flush=True)
    res.load_note(mode, "section 2")
    runs = fresh_runs_dir(work / "runs-nav", base_run)
    server = Server(runs, work / "server-nav.log")
    tabs: list[Tab] = []
    try:
        server.wait_ready()
        for key in ("2a", "2b"):
            tabs.append(new_tab(browser))
            head, done = tabs[-1].goto(server.url + "/", "MovieLens embeddings", chart=True)
            res.add(mode, f"{key}-h", head)
            res.add(mode, f"{key}-r", done)
        tab = tabs[-1]
        for r in range(rounds + 1):  # pass 0: each page's first run on this server
            for label, heading, chart in PAGES:
                head, done = tab.act(tab.link(label).click, chart=chart, heading=heading)
                if r == 0:
                    res.add(mode, "2c-first", done)
                    res.note(mode, f"first switch to {label}: heading {head:.2f} s, "
                                   f"rendered {done:.2f} s")
                else:
                    res.add(mode, "2c-h", head)
                    res.add(mode, "2c-r", done)
                    res.add(mode, "2c-fin", tab.server_seconds)
                    res.add(mode, f"2c-r:{label}", done)
        tab.act(tab.link("Embedding map").click, chart=True, heading="Embedding map")
        radio = tab.page.locator("[data-testid='stRadio']").filter(has_text="Projection")
        _, seconds = tab.act(radio.get_by_text("UMAP", exact=True).click)
        res.add(mode, "3d", seconds)
        res.add(mode, "3d-fin", tab.server_seconds)
        exceptions = sum(t.page.locator("[data-testid='stException']").count() for t in tabs)
        if exceptions:
            res.note(mode, f"{exceptions} exception box(es) on screen after navigation")
    finally:
        for tab in tabs:
            close_tab(tab)
        server.stop()


# ---------------------------------------------------------------------- 3c: numba cache
def section_umap_cli(res: Results, mode: str, work: Path, base_run: Path, rounds: int) -> None:
    print(f"[{mode}] 3c. `recsys project --method umap`: cold vs warm numba cache", flush=True)
    res.load_note(mode, "section 3c")
    run = work / "umap-run"
    shutil.copytree(base_run, run, ignore=shutil.ignore_patterns("projections"))
    args = [str(RECSYS), "project", str(run), "--method", "umap"]

    def once(env: dict[str, str] | None = None) -> float:
        shutil.rmtree(run / "projections", ignore_errors=True)
        return run_process(args, env)

    res.note(mode, f"3c: warm-up run with the default numba cache {once():.1f} s (not counted)")
    for r in range(rounds):
        for variant in (["cold", "warm"] if r % 2 == 0 else ["warm", "cold"]):
            if variant == "cold":
                cache = tempfile.mkdtemp(prefix="numba-cold-", dir=work)
                res.add(mode, "3c-cold", once({"NUMBA_CACHE_DIR": cache}))
            else:
                res.add(mode, "3c-warm", once())


# ---------------------------------------------------------------------- report
def pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def chromium_version() -> str:
    try:
        out = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def verdict(values: list[float], target: tuple[str, float] | None) -> str:
    if target is None or not values:
        return ""
    ok = med(values) <= target[1]
    worst = "" if max(values) <= target[1] else f" (max {max(values):.2f} s over)"
    return f"≤ {target[1]:g} s: {'met' if ok else 'NOT met'}{worst}"


def tables(res: Results, mode: str) -> list[str]:
    lines = [f"### {mode}", "",
             "| key | what | n | min s | median s | max s | target (on the median) |",
             "|---|---|---|---|---|---|---|"]
    keys = list(ROWS) + sorted({k for m, k in res.samples if m == mode and ":" in k})
    for key in keys:
        values = res.get(mode, key)
        if not values:
            continue
        what, target = ROWS[key] if key in ROWS else (
            f"  warm switch to {key.split(':', 1)[1]} → rendered", None)
        lines.append(f"| {key} | {what} | {len(values)} | {min(values):.2f} | "
                     f"{med(values):.2f} | {max(values):.2f} | {verdict(values, target)} |")
    lines += ["", "| difference of medians (same run) | value | target |", "|---|---|---|"]
    for top, bottom, target in DIFFERENCES:
        a, b = res.get(mode, top), res.get(mode, bottom)
        if not a or not b:
            continue
        gap = med(a) - med(b)
        goal = "" if target is None else (f"≤ {target:g} s: "
                                          f"{'met' if gap <= target else 'NOT met'}")
        lines.append(f"| {top} − {bottom} | {gap:+.2f} s | {goal} |")
    lines += ["", "| ratio of medians (same run) | value | target |", "|---|---|---|"]
    for top, bottom, target in RATIOS:
        a, b = res.get(mode, top), res.get(mode, bottom)
        if not a or not b:
            continue
        ratio = med(a) / med(b)
        goal = "" if target is None else (f"≤ {target:g}×: "
                                          f"{'met' if ratio <= target else 'NOT met'}")
        lines.append(f"| {top} / {bottom} | {ratio:.2f}× | {goal} |")
    return lines + [""]


def report(res: Results, args: argparse.Namespace, modes: list[str], started: str,
           total: float) -> str:
    lines = [
        "# App benchmark: what a person in a browser feels, beside the CLI", "",
        f"Written by `python -m bench.app{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`"
        f" on {started}; the script took {total / 60:.1f} min "
        f"({', '.join(f'{m} {v:.1f} min' for m, v in res.minutes.items())}).", "",
        "## Machine", "",
        f"- {os.cpu_count()} CPUs, {platform_line()}",
    ]
    for mode, (before, after) in res.load.items():
        lines.append(f"- 1-min load average, {mode}: {before:.2f} before, {after:.2f} after")
    lines += [
        f"- versions: python {sys.version.split()[0]}, streamlit {pkg('streamlit')}, "
        f"playwright {pkg('playwright')}, {chromium_version()}, torch {pkg('torch')}, "
        f"plotly {pkg('plotly')}, umap-learn {pkg('umap-learn')}, numba {pkg('numba')}",
        f"- rounds {args.rounds} (busy: {args.busy_rounds}); epochs "
        f"{args.epochs if args.epochs else 'default (form untouched, CLI without --epochs)'}; "
        f"modes: {', '.join(modes)} (busy = one extra `while True: pass` process spinning)",
        f"- sections: {'1 only (--training-only)' if args.training_only else 'all'}; "
        f"training worker: {'cold per job (--cold-worker)' if args.cold_worker else 'default'}"
        "; Train clicked " + ("as soon as the button shows (--click-early)" if args.click_early
                              else "once the page has rendered (its chart drawn)"),
        "",
        "## What was measured", "",
        "All browser timings are `time.perf_counter()` around Playwright waits in headless "
        "Chromium; each visitor is a new browser context. *Rendering finished* / *done* = the "
        "browser received Streamlit's `script_finished` message of a complete script run "
        "(decoded from the websocket), then `[data-testid='stStatusWidget']` hidden and, on "
        "pages with a chart, the first Plotly chart visible. *Drawn* (headings, the first "
        "epoch, the \"Done:\" box) = the time the page itself recorded for the first frame "
        "showing the element (`bench/paint.py`: a MutationObserver, then the next animation "
        "frame), minus the wall clock at the click or `goto`; Playwright's `wait_for` only "
        "waits for it, as it polls every 0.5 s after its first 0.3 s (the `-pw` rows show "
        "what it saw: up to 0.5 s later).", "",
        "- **1** One server with a fresh runs dir holding a pinned copy of a CLI-trained "
        "default run (no first-launch training); its Home page was visited once before timing. "
        "Each round runs the three variants in a rotated order; before the next variant starts "
        "the browser job's worker has exited (its PCA, t-SNE and UMAP maps done), so nothing "
        "overlaps. (a) `recsys train --out DIR --quiet` wall time; (b) new visitor opens "
        "`/train`, clicks Train, waits for the green box containing \"Done:\" (page open, "
        "curves live); 1b-w = mtime of the run's `weights.npz` − wall clock at the click; "
        "(c) new visitor clicks Train, the script waits for the job folder "
        "(`<runs>/.jobs/<id>`, 1c-j), navigates the tab to `about:blank` and polls every "
        "10 ms for `<run>/weights.npz`.",
        "- **2** A second fresh server (same pinned copy). (a) first visitor `goto('/')` → "
        "h1 and → rendered with the Home chart; (b) a second visitor the same; (c) in the "
        "second visitor's tab, clicks on the sidebar links Recommendations → Similar movies → "
        "Embedding map → Build your profile → Train & evaluate → Home: the first pass "
        "(2c-first, each page's first run on the server, caches cold) and then "
        f"{args.rounds} warm passes (2c-h heading, 2c-r rendered).",
        "- **3a/3b** In the visitor of each \"page open\" training, after the worker exited: "
        "sidebar → Embedding map, click the UMAP radio (the worker cached it) → done; then "
        "twice: pick another \"Colour by\" option → done, type a title into \"Highlight "
        "titles\" + Enter → done. **3d**: on the navigation server, Embedding map → UMAP for "
        "the pinned CLI run, which has no cached UMAP (one sample per mode; includes "
        "`import umap` and the fit inside the server).",
        "- **3c** `recsys project RUN --method umap` as a whole process on a copy of the run "
        "whose `projections/` folder is deleted before every call; cold = `NUMBA_CACHE_DIR` "
        "set to a new empty folder, warm = the default cache, after one uncounted warm-up "
        "call. Interleaved cold/warm, no server running.",
        "",
        "## Results", "",
    ]
    for mode in modes:
        lines += tables(res, mode)
    lines += ["## Notes from the run", ""] + [f"- {n}" for n in res.notes] + [""]
    return "\n".join(lines)


def platform_line() -> str:
    import platform

    from bench.common import cpu_name

    return f"{cpu_name()}, {platform.platform()}"


def print_tables(res: Results, modes: list[str]) -> None:
    for mode in modes:
        print("\n".join(tables(res, mode)))


# ---------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.app", description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true",
                   help="quick check: 1 round, Epochs 3 in the form and --epochs 3")
    p.add_argument("--busy", action="store_true",
                   help="after the quiet run, run everything again with a CPU hog spinning")
    p.add_argument("--busy-only", action="store_true", help="only the busy run")
    p.add_argument("--rounds", type=int, help="repetitions (default 3, 1 with --small)")
    p.add_argument("--busy-rounds", type=int,
                   help="repetitions of the busy run (default: --rounds)")
    p.add_argument("--training-only", action="store_true",
                   help="only section 1 (training: CLI vs Train page)")
    p.add_argument("--cold-worker", action="store_true",
                   help="the server's jobs start a cold worker each (RECSYS_WARM_WORKER=0): "
                        "the behaviour before the warm standby worker")
    p.add_argument("--click-early", action="store_true",
                   help="section 1 clicks Train as soon as the button shows, before the page "
                        "has drawn its chart (the method before Dec 7 2026)")
    p.add_argument("--out", type=Path, default=OUT, help=f"report (default {OUT.name})")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.small else 3)
    args.busy_rounds = args.busy_rounds or args.rounds
    args.epochs = 3 if args.small else None
    return args


def check_machine() -> None:
    if not CHROMIUM.exists():
        raise SystemExit(f"bench.app needs Debian Chromium at {CHROMIUM} "
                         "(apt-get install chromium); `playwright install` is not used here.")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"bench.app needs playwright (pip install playwright): {err}") from err
    if not RECSYS.exists():
        raise SystemExit(f"{RECSYS} not found: run from the project's venv")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_machine()
    if args.cold_worker:
        SERVER_ENV["RECSYS_WARM_WORKER"] = "0"
    global CLICK_EARLY
    CLICK_EARLY = args.click_early
    from playwright.sync_api import sync_playwright

    modes = ["busy"] if args.busy_only else (["quiet", "busy"] if args.busy else ["quiet"])
    res = Results()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    t_all = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    failed = True
    try:
        base = work / "base" / "mf-bpr-base"
        print(f"training the base run with the CLI -> {base}", flush=True)
        run_process([str(RECSYS), "train", "--out", str(base), "--quiet",
                     *(["--epochs", str(args.epochs)] if args.epochs else [])])
        with sync_playwright() as p, ExitStack() as stack:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            stack.callback(browser.close)
            for mode in modes:
                t_mode = time.perf_counter()
                before = os.getloadavg()[0]
                mode_dir = work / mode
                mode_dir.mkdir()
                rounds = args.busy_rounds if mode == "busy" else args.rounds
                with spinning(mode == "busy"):
                    section_training(res, mode, browser, mode_dir, base, rounds, args.epochs)
                    if not args.training_only:
                        section_navigation(res, mode, browser, mode_dir, base, rounds)
                        section_umap_cli(res, mode, mode_dir, base, rounds)
                res.load[mode] = (before, os.getloadavg()[0])
                res.minutes[mode] = (time.perf_counter() - t_mode) / 60
        failed = False
    finally:
        total = time.perf_counter() - t_all
        if res.samples:
            print_tables(res, modes)
            if failed:
                res.notes.append("THE RUN STOPPED WITH AN ERROR: the tables are partial")
            args.out.write_text(report(res, args, modes, started, total))
            print(f"wrote {args.out} ({total / 60:.1f} min)")
        if failed:
            print(f"kept {work} (server logs, runs) for inspection", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
