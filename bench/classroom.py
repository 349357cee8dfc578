"""A class of students on one server: page views over Streamlit's own websocket protocol.

Each simulated student is one browser tab, speaking the protocol a browser speaks (see
STREAMLIT_NOTES.md, "Many visitors"): it fetches ``/_stcore/health`` and
``/_stcore/host-config``, opens ``ws://HOST/_stcore/stream`` (subprotocol ``streamlit``, an
``Origin`` header), sends ``BackMsg.rerun_script`` and reads ``ForwardMsg``s until
``script_finished``. Like the browser it keeps Streamlit's message cache (the hashes of the
large elements it holds go with every rerun, and the server answers with references to them),
and later pages of a visit go over the same socket by their page hash, as a click on a page link
does. A student visits Home → Recommendations ``?user=N`` → Similar movies ``?movie=N`` →
Embedding map → Build your profile ``?likes=a,b,c`` with 1–3 s of thinking after each page,
then starts over with other (seeded) users and movies. Everything is asyncio: 60 students cost
about 1 % of a core, so the server, not the generator, is what is measured.

Per level (number of students) the report gives, per page: time to ``script_finished`` (p50,
p95, max), time to the page's heading, errors (no ``script_finished``, a closed socket, or an
``exception`` element among the deltas), and the server's CPU time split among the page views
in flight (see :class:`CpuLedger`), plus the server's CPU use and resident memory.

    python -m bench.classroom                  # own server; 1, 10, 30, 60 students, 75 s each
    python -m bench.classroom --students 10 --duration 30
    python -m bench.classroom --url http://127.0.0.1:8501 --server-pids 1234
    python -m bench.classroom --students 30 --chromium 30   # + Chromium's first heading under 30
    python -m bench.classroom --students '' --sessions 500   # memory: RSS after 50, 500 sessions
    python -m bench.classroom --students '' --validate       # simulator vs Chromium, per page

Without ``--url`` the script starts ``streamlit run streamlit_app.py`` itself on 127.0.0.1
(from the working tree, or from ``--app-dir``: a copy of a commit, unchanged while others edit),
on a runs folder prepared as ``scripts/prepare.sh`` does (the class set; ``--prepare default``:
the default model only), and stops it by its PID at the end. With ``--url`` it drives any
running server, or a reverse proxy in front of several (pass their PIDs for CPU and memory).
``--section NAME`` writes the report into ``bench/CLASSROOM.md`` between
``<!-- NAME:start/end -->`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from bench.common import command_line, machine, machine_lines, median, write_section
from bench.paint import async_drawn, watch_script

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# As in bench/app.py and tests/browser.py (importing those would start the app's modules here).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPORT = Path(__file__).resolve().parent / "CLASSROOM.md"
LEVELS = (1, 10, 30, 60)
DURATION = 75.0  # s per level when neither --duration nor --visits is given
THINK = (1.0, 3.0)  # s: a student reads a page this long before the next click
RAMP = 5.0  # s: the students of a level open the app at random moments within this window
TIMEOUT = 180.0  # s: a page view without script_finished by then counts as an error
MEMORY_CHECKPOINTS = (50, 100, 250)  # sessions after which --sessions reports RSS (and at N)
HOME_HEADING = "MovieLens embeddings"  # the h1 a new visitor waits for
WATCH_HEADING = watch_script({"heading": ("h1", re.escape(HOME_HEADING))})
# What the browser says about itself in every rerun (ClientState.context_info).
CONTEXT = {"timezone": "Europe/London", "timezone_offset": 0, "locale": "en-GB",
           "color_scheme": "light"}
# Element kind (the ``Element`` oneof) -> the data-testid Chromium gives its rendered element:
# the kinds this app draws. Every element sits in one ``stElementContainer`` besides.
TESTIDS = {
    "alert": "stAlert", "button": "stButton", "checkbox": "stCheckbox",
    "dataframe": "stDataFrame", "exception": "stException", "heading": "stHeading",
    "markdown": "stMarkdown", "metric": "stMetric", "multiselect": "stMultiSelect",
    "page_link": "stPageLink", "plotly_chart": "stPlotlyChart", "radio": "stRadio",
    "selectbox": "stSelectbox", "slider": "stSlider", "text_input": "stTextInput",
}
CONTAINER = "stElementContainer"


# ---------------------------------------------------------------------- the visit
@dataclass(frozen=True)
class Catalogue:
    """The ids a student picks from: every user and movie, and the most rated movies (what
    a student names as liked)."""

    users: tuple[int, ...]
    movies: tuple[int, ...]
    popular: tuple[int, ...]

    @classmethod
    def load(cls) -> Catalogue:
        from recsys.data.loading import load_movielens

        ratings = load_movielens(progress=False).ratings
        counts = ratings["item_id"].value_counts()  # most rated first
        return cls(tuple(np.unique(ratings["user_id"]).tolist()),
                   tuple(np.sort(counts.index.to_numpy()).tolist()),
                   tuple(counts.index[:200].tolist()))


@dataclass(frozen=True)
class Page:
    """One page of the visit: its URL path under the base URL ("" = Home) and how a student
    picks its query string."""

    name: str
    path: str
    query: Callable[[random.Random, Catalogue], str]


PAGES = (
    Page("home", "", lambda rng, ids: ""),
    Page("recommendations", "recommendations", lambda rng, ids: f"user={rng.choice(ids.users)}"),
    Page("similar movies", "similar_movies", lambda rng, ids: f"movie={rng.choice(ids.movies)}"),
    Page("embedding map", "embedding_map", lambda rng, ids: ""),
    Page("profile", "profile",
         lambda rng, ids: "likes=" + ",".join(map(str, rng.sample(ids.popular, 3)))),
)


def page_url(base: str, page: Page, query: str) -> str:
    return f"{base}/{page.path}" + (f"?{query}" if query else "")


# ---------------------------------------------------------------------- protocol
@dataclass(eq=False)  # identity: the CPU ledger keeps the views in flight in a set
class View:
    """One page view: a rerun request and everything up to its ``script_finished``."""

    page: str
    query: str
    students: str = ""  # the level's label, filled in by the level
    seconds: float | None = None  # to script_finished; None when it never came
    heading: float | None = None  # to the first heading element
    kinds: Counter = field(default_factory=Counter)  # elements on screen at the end, by kind
    headings: list[str] = field(default_factory=list)  # their texts, in screen order
    exceptions: list[str] = field(default_factory=list)  # exception elements, even if replaced
    error: str | None = None  # the protocol failed (timeout, closed socket, missing page)
    bytes: int = 0  # websocket payload received
    cpu: float = 0.0  # server CPU seconds attributed to this view (CpuLedger)

    @property
    def failed(self) -> bool:
        return self.error is not None or bool(self.exceptions)

    def record(self) -> dict[str, Any]:
        return {"students": self.students, "page": self.page, "query": self.query,
                "seconds": self.seconds, "heading": self.heading, "cpu": self.cpu,
                "bytes": self.bytes, "kinds": dict(self.kinds), "headings": self.headings,
                "exceptions": self.exceptions, "error": self.error}


class MessageCache:
    """The browser's ForwardMsg cache (``ForwardMsgCache`` in Streamlit's frontend).

    Large elements arrive with ``metadata.cacheable``; the browser keeps them, names their
    hashes in every rerun request, and the server then sends a ``ref_hash`` instead of an
    element the browser holds. An entry unused for more than ``max_age`` complete runs (the
    server's ``maxCachedMessageAge``, from ``new_session``) is dropped. Only what the report
    needs is kept of each element: its kind and text.
    """

    def __init__(self) -> None:
        self.max_age = 2
        self._runs = 0
        self._entries: dict[str, list] = {}  # hash -> [(kind, text), run count at last use]

    def hashes(self) -> list[str]:
        return list(self._entries)

    def keep(self, digest: str, element: tuple[str, str]) -> None:
        entry = self._entries.setdefault(digest, [element, self._runs])
        entry[1] = self._runs

    def lookup(self, digest: str) -> tuple[str, str] | None:
        entry = self._entries.get(digest)
        if entry is not None:
            entry[1] = self._runs
        return entry and entry[0]

    def run_finished(self) -> None:
        self._runs += 1
        self._entries = {h: e for h, e in self._entries.items()
                         if self._runs - e[1] <= self.max_age}


def element_summary(element) -> tuple[str, str]:
    """An ``Element`` as (kind, text): the text of headings and exceptions, else ""."""
    kind = element.WhichOneof("type")
    if kind == "heading":
        return kind, element.heading.body
    if kind == "exception":
        return kind, f"{element.exception.type}: {element.exception.message}"
    return kind, ""


class RunDecoder:
    """What a browser makes of the ForwardMsgs of one script run.

    Elements are placed by ``metadata.delta_path``; a later delta at the same place replaces
    the earlier one (a spinner, an ``st.empty``), and a block added at a place replaces what
    was under it, so :meth:`kinds` counts what is on screen when the run ends. Exceptions are
    noted wherever they appear. Complete when a ``script_finished`` of a full run arrives
    (``FINISHED_EARLY_FOR_RERUN`` is followed by another run).
    """

    def __init__(self, cache: MessageCache) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._status = ForwardMsg.ScriptFinishedStatus
        self.cache = cache
        self.tree: dict[tuple[int, ...], tuple[str, str]] = {}
        self.exceptions: list[str] = []
        self.pages: dict[str, str] = {}  # url path -> page script hash (``navigation``)
        self.first_heading: float | None = None
        self.done = False
        self.error: str | None = None

    def feed(self, msg, elapsed: float) -> None:
        kind = msg.WhichOneof("type")
        if kind == "delta":
            self._delta(msg, msg.delta.WhichOneof("type"), elapsed)
        elif kind == "ref_hash":
            element = self.cache.lookup(msg.ref_hash)
            if element is None:
                self.error = f"cache miss for ref_hash {msg.ref_hash}"
            else:
                self._place(tuple(msg.metadata.delta_path), element, elapsed)
        elif kind == "new_session":
            self.cache.max_age = msg.new_session.config.max_cached_message_age
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
        elif kind == "page_not_found":
            self.error = f"page not found: {msg.page_not_found.page_name!r}"
        elif kind == "session_event" and msg.session_event.HasField(
                "script_compilation_exception"):
            self.error = "script compilation error"
        elif kind == "script_finished":
            self._finished(msg.script_finished)

    def _delta(self, msg, kind: str, elapsed: float) -> None:
        path = tuple(msg.metadata.delta_path)
        if kind == "new_element":
            element = element_summary(msg.delta.new_element)
            if msg.metadata.cacheable:
                self.cache.keep(msg.hash, element)
            self._place(path, element, elapsed)
        elif kind == "add_block":
            self.tree = {p: e for p, e in self.tree.items() if p[:len(path)] != path}

    def _place(self, path: tuple[int, ...], element: tuple[str, str], elapsed: float) -> None:
        self.tree[path] = element
        if element[0] == "heading" and self.first_heading is None:
            self.first_heading = elapsed
        elif element[0] == "exception":
            self.exceptions.append(element[1])

    def _finished(self, status: int) -> None:
        if status == self._status.FINISHED_WITH_COMPILE_ERROR:
            self.error = "script finished with a compile error"
        if status == self._status.FINISHED_EARLY_FOR_RERUN:
            return
        self.cache.run_finished()
        self.done = status == self._status.FINISHED_SUCCESSFULLY or self.error is not None

    def kinds(self) -> Counter:
        return Counter(kind for kind, _ in self.tree.values())

    def headings(self) -> list[str]:
        return [text for path, (kind, text) in sorted(self.tree.items()) if kind == "heading"]


def http_get(url: str, timeout: float) -> bytes:
    """GET without any proxy from the environment: the URL given is the server measured."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.read()


class Tab:
    """One browser tab on the app: a websocket session and the browser's message cache."""

    def __init__(self, base: str, timeout: float = TIMEOUT) -> None:
        self.base, self.timeout = base.rstrip("/"), timeout
        parts = urlsplit(self.base)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.stream = ("wss" if parts.scheme == "https" else "ws") + self.base[
            len(parts.scheme):] + "/_stcore/stream"
        self.cache = MessageCache()
        self.pages: dict[str, str] = {}
        self.ws = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        for endpoint in ("health", "host-config"):
            await asyncio.to_thread(http_get, f"{self.base}/_stcore/{endpoint}", self.timeout)
        # As Chromium does: subprotocol "streamlit" + the XSRF slot (no cookie: a placeholder);
        # no client pings (browsers send none); no limit on message size or queue.
        self.ws = await connect(self.stream, subprotocols=["streamlit", "PLACEHOLDER_AUTH_TOKEN"],
                                origin=self.origin, proxy=None, max_size=None, max_queue=None,
                                ping_interval=None, open_timeout=self.timeout)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    def rerun_request(self, page: Page, query: str) -> bytes:
        """The BackMsg a browser sends: the page by its URL path on a fresh load, by its hash
        (from ``navigation``) when the tab moves to it, as a page link does."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = query
        if page.path in self.pages:
            state.page_script_hash = self.pages[page.path]
        else:
            state.page_name = page.path
        state.cached_message_hashes.extend(self.cache.hashes())
        for key, value in CONTEXT.items():
            setattr(state.context_info, key, value)
        state.context_info.url = page_url(self.base, page, query)
        return msg.SerializeToString()

    async def view(self, page: Page, query: str, ledger: CpuLedger | None = None) -> View:
        """Requests ``page`` and reads until its run is complete. A failure is recorded in the
        view, never raised; after one the socket is closed (its state is unknown)."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from websockets.exceptions import ConnectionClosed

        view = View(page.name, query)
        decoder = RunDecoder(self.cache)
        if ledger is not None:
            ledger.begin(view)
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                await self.ws.send(self.rerun_request(page, query))
                while not decoder.done:
                    raw = await self.ws.recv()
                    view.bytes += len(raw)
                    decoder.feed(ForwardMsg.FromString(raw), time.perf_counter() - start)
            view.seconds = time.perf_counter() - start
            view.error = decoder.error
        except TimeoutError:
            view.error = f"no script_finished within {self.timeout:.0f} s"
        except ConnectionClosed as err:
            view.error = f"websocket closed: {err}"
        finally:
            if ledger is not None:
                ledger.end(view)
        self.pages.update(decoder.pages)
        view.heading, view.exceptions = decoder.first_heading, decoder.exceptions
        view.kinds, view.headings = decoder.kinds(), decoder.headings()
        if view.error is not None:
            await self.close()
        return view


# ---------------------------------------------------------------------- server processes
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (field 3, the state, is index 0)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def descendants(roots: Sequence[int]) -> list[int]:
    """``roots`` and every live process below them (training workers, spawn helpers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                parents.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(
                    int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


class ServerProcesses:
    """CPU time and resident memory of the server's processes, read from /proc (Linux; psutil
    is no dependency of the project). CPU includes reaped children (cutime, cstime)."""

    def __init__(self, roots: Sequence[int]) -> None:
        self.roots = list(roots)
        self.pids = descendants(self.roots)

    def refresh(self) -> None:
        self.pids = descendants(self.roots)

    def cpu_seconds(self) -> float:
        ticks = 0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                ticks += sum(int(v) for v in _stat_fields(pid)[11:15])
        return ticks / CLOCK_TICKS

    def rss_mb(self) -> float:
        pages = 0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        return pages * PAGE_SIZE / 2**20


class CpuLedger:
    """Splits the server's CPU time among the page views in flight.

    At every start and end of a view the server's CPU time is read; what it used since the
    last reading is shared equally by the views in flight then (with one student: exactly the
    CPU of that view). CPU used while no view is in flight goes to no view.
    """

    def __init__(self, procs: ServerProcesses) -> None:
        self.procs = procs
        self.last = procs.cpu_seconds()
        self.open: set[View] = set()

    def _advance(self) -> None:
        now = self.procs.cpu_seconds()
        used, self.last = max(0.0, now - self.last), now
        for view in self.open:
            view.cpu += used / len(self.open)

    def begin(self, view: View) -> None:
        self._advance()
        self.open.add(view)

    def end(self, view: View) -> None:
        self._advance()
        self.open.discard(view)


@dataclass
class Target:
    """The app under load: its base URL and the processes measured (none: no CPU or RSS)."""

    url: str
    procs: ServerProcesses | None
    restart: Callable[[], None] | None = None  # a fresh server process (own server only)


def first_free_port(ports: range) -> int:
    for port in ports:
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise SystemExit(f"no free port in {ports.start}-{ports.stop - 1}")


def prepare_runs(runs: Path, what: str, app: Path) -> None:
    """A runs folder as a lecturer's server has it, so that no visitor waits for a first-launch
    training: ``"class"``, the class set as ``scripts/prepare.sh`` prepares it (``recsys
    prepare-class --no-maps``: the pinned default model, mf-bpr and the baselines; kept runs
    are skipped); ``"default"``, only the default model, trained and pinned (seconds: tests).
    The CLI is the one of the app in ``app`` (``python -m`` there imports its ``recsys``)."""
    default = runs / "default"
    if what == "class":
        commands = [["prepare-class", "--no-maps", "--runs-dir", str(runs)]]
    elif not (default / "weights.npz").exists():
        commands = [["train", "--out", str(default), "--quiet"], ["pin", str(default)]]
    else:
        return
    print(f"preparing {runs} ({what})", flush=True)
    for command in commands:
        subprocess.run([sys.executable, "-m", "recsys.cli", *command], cwd=app, check=True,
                       stdout=subprocess.DEVNULL)


class OwnServer:
    """``streamlit run streamlit_app.py`` in ``app`` on 127.0.0.1:``port`` with
    ``RECSYS_RUNS_DIR=runs``, its output in ``log``; stopped by its PID (terminate, then kill
    after 15 s). Streamlit puts the script's folder first on ``sys.path``, so a copy of the
    app elsewhere imports its own ``recsys``, not the editable install's."""

    def __init__(self, app: Path, runs: Path, log: Path, port: int) -> None:
        self.app, self.runs, self.log_path, self.port = app, runs, log, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def spawn(self) -> None:
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
                 "--server.headless", "true", "--server.port", str(self.port),
                 "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
                 "--browser.gatherUsageStats", "false"],
                cwd=self.app, env={**os.environ, "RECSYS_RUNS_DIR": str(self.runs)}, stdout=log,
                stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                if http_get(f"{self.url}/_stcore/health", 2) == b"ok":
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"streamlit did not start; see {self.log_path}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def target(self) -> Target:
        """This server as a :class:`Target` whose ``restart`` starts a fresh process."""
        target = Target(self.url, ServerProcesses([self.proc.pid]))

        def restart() -> None:
            self.stop()
            self.spawn()
            self.wait_ready()
            target.procs = ServerProcesses([self.proc.pid])

        target.restart = restart
        return target


@contextlib.contextmanager
def own_server(app: Path, runs: Path, log: Path, port: int, prepare: str) -> Iterator[Target]:
    """An :class:`OwnServer` on ``runs`` (prepared while the server boots) as a
    :class:`Target`, stopped on the way out."""
    server = OwnServer(app, runs, log, port)
    try:
        server.spawn()
        prepare_runs(runs, prepare, app)  # no visitor comes before it is done
        server.wait_ready()
        yield server.target()
    finally:
        server.stop()


# ---------------------------------------------------------------------- Chromium
class Chromium:
    """Debian Chromium through Playwright's async API, so it shares the students' event loop.
    Each visit is a new browser context: a new visitor with an empty cache."""

    async def __aenter__(self) -> Chromium:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self.browser = await self._playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                              args=FLAGS)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.browser.close()
        await self._playwright.stop()

    @contextlib.asynccontextmanager
    async def tab(self):
        """A new visitor's page and a :class:`RunDecoder` fed with its websocket frames."""
        context = await self.browser.new_context(viewport={"width": 1400, "height": 1000})
        await context.add_init_script(WATCH_HEADING)
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT * 1000)
        decoder = RunDecoder(MessageCache())

        def on_websocket(ws) -> None:
            if "_stcore/stream" in ws.url:
                ws.on("framereceived", on_frame)

        def on_frame(payload) -> None:
            from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

            if isinstance(payload, bytes) and not decoder.done:
                decoder.feed(ForwardMsg.FromString(payload), 0.0)

        page.on("websocket", on_websocket)
        try:
            yield page, decoder
        finally:
            await context.close()

    async def first_heading(self, base: str) -> tuple[float, float, float]:
        """A new visitor opens Home: seconds to the h1 drawn (timed by the page itself,
        bench/paint.py), to rendering finished (a complete run's ``script_finished`` received
        and the status widget hidden), and to the h1 as Playwright's ``wait_for`` saw it
        (it polls every 0.5 s after its first 0.3 s, so up to 0.5 s late)."""
        async with self.tab() as (page, decoder):
            wall, start = time.time(), time.perf_counter()
            await page.goto(base + "/", wait_until="commit")
            await page.locator("h1").filter(has_text=HOME_HEADING).first.wait_for(
                state="visible")
            polled = time.perf_counter() - start
            at = await async_drawn(page, "heading")
            await finished(page, decoder)
            return (polled if at is None else at - wall), time.perf_counter() - start, polled

    async def rendered(self, url: str) -> tuple[Counter, list[str], Counter]:
        """Opens ``url`` in a new visitor and waits until everything is drawn; returns the
        data-testid counts of the page, its heading texts and the kinds in its frames."""
        async with self.tab() as (page, decoder):
            await page.goto(url, wait_until="commit")
            await finished(page, decoder)
            counts = await settled_testids(page)
            headings = await page.locator(f"[data-testid='{TESTIDS['heading']}']"
                                          ).all_inner_texts()
            return counts, headings, decoder.kinds()


async def finished(page, decoder: RunDecoder) -> None:
    deadline = time.perf_counter() + TIMEOUT
    while not decoder.done:
        if time.perf_counter() > deadline:
            raise TimeoutError("Chromium received no script_finished")
        await asyncio.sleep(0.01)
    await page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden")


TESTID_COUNTS = """() => {
  const counts = {};
  for (const e of document.querySelectorAll('[data-testid]')) {
    const id = e.getAttribute('data-testid');
    counts[id] = (counts[id] || 0) + 1;
  }
  return counts;
}"""


async def settled_testids(page, timeout: float = 30.0) -> Counter:
    """data-testid counts once lazy elements (Plotly, data grids: a ``stSkeleton`` until their
    code is loaded) are drawn and the counts have not changed for 0.5 s."""
    deadline, last, stable = time.perf_counter() + timeout, None, 0
    while time.perf_counter() < deadline:
        counts = Counter(await page.evaluate(TESTID_COUNTS))
        stable = stable + 1 if counts == last and not counts["stSkeleton"] else 0
        if stable >= 5:
            break
        last = counts
        await asyncio.sleep(0.1)
    return last


# ---------------------------------------------------------------------- students
@dataclass
class Level:
    """One run of N students: every page view, and what the server used meanwhile."""

    label: str
    students: int
    views: list[View]
    wall: float
    load: tuple[float, float]
    generator_cpu: float  # this script's own CPU seconds
    cpu: float | None = None  # server CPU seconds
    rss: tuple[float, float] | None = None
    chromium: list[tuple[float, float, float]] = field(default_factory=list)
    chromium_quiet: list[tuple[float, float, float]] = field(default_factory=list)


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def student(index: int, target: Target, ids: Catalogue, args, stop_at: float,
                  ledger: CpuLedger | None, views: list[View]) -> None:
    """One student: opens the app at a random moment of the ramp, then visits the pages in
    turn (thinking after each) until ``stop_at`` or ``args.visits`` full visits."""
    from websockets.exceptions import WebSocketException

    rng = random.Random(args.seed * 10_000 + index)
    await asyncio.sleep(rng.uniform(0, args.ramp))
    tab, visits = Tab(target.url, args.timeout), 0
    try:
        while time.perf_counter() < stop_at and (args.visits is None or visits < args.visits):
            for page in PAGES:
                if time.perf_counter() >= stop_at:
                    return
                if tab.ws is None:
                    try:
                        await tab.open()
                    except (OSError, TimeoutError, WebSocketException) as err:
                        views.append(View(page.name, "", error=f"cannot connect: {err}"))
                        await asyncio.sleep(rng.uniform(*args.think))
                        continue
                views.append(await tab.view(page, page.query(rng, ids), ledger))
                await asyncio.sleep(rng.uniform(*args.think))
            visits += 1
    finally:
        await tab.close()


async def run_level(target: Target, ids: Catalogue, students: int, args,
                    chromium: Chromium | None = None) -> Level:
    """``students`` students for ``args.duration`` seconds (or ``args.visits`` visits);
    with ``chromium``, a new Chromium visitor opens Home before the students come and three
    times while they browse."""
    label = f"{students} + Chromium" if chromium else str(students)
    quiet = [await chromium.first_heading(target.url) for _ in range(3)] if chromium else []
    ledger = None
    if target.procs is not None:
        target.procs.refresh()
        ledger = CpuLedger(target.procs)
        cpu0, rss0 = ledger.last, target.procs.rss_mb()
    load0, mine0, start = os.getloadavg()[0], own_cpu(), time.perf_counter()
    stop_at = start + (args.duration if args.duration is not None else float("inf"))
    views: list[View] = []
    print(f"{label} students: {args.duration or '-'} s, {args.visits or '-'} visits", flush=True)
    tasks = [student(i, target, ids, args, stop_at, ledger, views) for i in range(students)]
    probes = [probe_chromium(chromium, target.url, start, args)] if chromium else []
    results = await asyncio.gather(*tasks, *probes)
    wall = time.perf_counter() - start
    level = Level(label, students, views, wall, (load0, os.getloadavg()[0]), own_cpu() - mine0,
                  chromium=results[-1] if chromium else [], chromium_quiet=quiet)
    if ledger is not None:
        level.cpu = target.procs.cpu_seconds() - cpu0
        level.rss = (rss0, target.procs.rss_mb())
    for view in views:
        view.students = label
    print_summary(level)
    return level


async def probe_chromium(chromium: Chromium, base: str, start: float,
                         args) -> list[tuple[float, float, float]]:
    """Chromium opens Home three times while the students browse: after the ramp, then
    spread over the rest of the level."""
    span = max(0.0, (args.duration or 60.0) - args.ramp - 10.0)
    samples = []
    for moment in (args.ramp + 5.0 + span * i / 3 for i in range(3)):
        await asyncio.sleep(max(0.0, start + moment - time.perf_counter()))
        samples.append(await chromium.first_heading(base))
    return samples


async def cold_visit(target: Target, ids: Catalogue, args) -> list[View]:
    """One student's first visit on a fresh server (caches cold), no thinking: not part of
    any level, it also warms the server up for them."""
    rng = random.Random(args.seed)
    ledger = CpuLedger(target.procs) if target.procs else None
    tab = Tab(target.url, args.timeout)
    await tab.open()
    try:
        views = [await tab.view(page, page.query(rng, ids), ledger) for page in PAGES]
    finally:
        await tab.close()
    for view in views:
        view.students = "cold"
    return views


# ---------------------------------------------------------------------- memory
async def memory_run(target: Target, ids: Catalogue, args) -> list[tuple[str, float, int]]:
    """Opens and closes ``args.sessions`` sessions (each one Home view, or the full visit with
    ``--session-visit full``), ``args.concurrency`` at a time; the server's RSS before, after
    each checkpoint and, with ``--settle``, after a pause longer than Streamlit's TTL for
    disconnected sessions plus one more session (whose save reaps the expired ones).
    Rows: (when, RSS MB, failed views so far)."""
    from websockets.exceptions import WebSocketException

    pages = PAGES if args.session_visit == "full" else PAGES[:1]
    gate, failed = asyncio.Semaphore(args.concurrency), 0

    async def session(index: int) -> None:
        nonlocal failed
        rng = random.Random(args.seed * 10_000 + 5_000 + index)
        async with gate:
            tab = Tab(target.url, args.timeout)
            try:
                await tab.open()
                for page in pages:
                    failed += (await tab.view(page, page.query(rng, ids))).failed
            except (OSError, TimeoutError, WebSocketException):
                failed += 1
            finally:
                await tab.close()

    rows = [("at the start", target.procs.rss_mb(), 0)]
    done = 0
    for checkpoint in sorted({c for c in MEMORY_CHECKPOINTS if c < args.sessions}
                             | {args.sessions}):
        await asyncio.gather(*(session(i) for i in range(done, checkpoint)))
        done = checkpoint
        rows.append((f"after {checkpoint} sessions", target.procs.rss_mb(), failed))
        print(f"  {rows[-1][0]}: RSS {rows[-1][1]:.0f} MB", flush=True)
    if args.settle:
        await asyncio.sleep(args.settle)
        await session(done)
        rows.append((f"{args.settle:.0f} s later, after one more session", target.procs.rss_mb(),
                     failed))
    return rows


# ---------------------------------------------------------------------- validation
def plain_heading(text: str) -> str:
    """A heading's markdown as Chromium shows it: a ``:material/name:`` icon is drawn as its
    ligature name; whitespace collapsed."""
    return " ".join(re.sub(r":material/(\w+):", r"\1", text).split())


async def validate(target: Target, ids: Catalogue, chromium: Chromium, args) -> list[dict]:
    """For each page (one seeded URL): the simulator's elements against what Chromium draws
    for the same URL (a new visitor each) and against the frames Chromium received."""
    rng = random.Random(args.seed)
    rows = []
    for page in PAGES:
        query = page.query(rng, ids)
        tab = Tab(target.url, args.timeout)
        await tab.open()
        try:
            view = await tab.view(page, query)
        finally:
            await tab.close()
        dom, dom_headings, frames = await chromium.rendered(page_url(target.url, page, query))
        rows.append(compare(page, query, view, dom, dom_headings, frames))
        print(f"  validate {page.name}: {'match' if rows[-1]['match'] else 'DIFFERENT'}",
              flush=True)
    return rows


def compare(page: Page, query: str, view: View, dom: Counter, dom_headings: list[str],
            frames: Counter) -> dict:
    """One validation row: element counts per kind (simulator vs Chromium's DOM), the total
    (vs ``stElementContainer``), heading texts, and the kinds decoded from Chromium's frames."""
    differences = []
    for kind in sorted(set(view.kinds) | {k for k, t in TESTIDS.items() if dom[t]}):
        testid = TESTIDS.get(kind)
        if testid is not None and view.kinds[kind] != dom[testid]:
            differences.append(f"{kind} {view.kinds[kind]} vs {testid} {dom[testid]}")
    total = sum(view.kinds.values())
    if total != dom[CONTAINER]:
        differences.append(f"elements {total} vs {CONTAINER} {dom[CONTAINER]}")
    ours = sorted(plain_heading(h) for h in view.headings)
    theirs = sorted(" ".join(h.split()) for h in dom_headings)
    if ours != theirs:
        differences.append(f"headings {ours} vs {theirs}")
    if frames != view.kinds:
        differences.append(f"Chromium's frames {dict(frames)}")
    if view.failed:
        differences.append(f"simulator error: {view.error or view.exceptions}")
    return {"page": page.name, "url": "/" + page.path + (f"?{query}" if query else ""),
            "elements": total, "dom": dom[CONTAINER], "kinds": len(view.kinds),
            "headings": len(ours), "match": not differences, "differences": differences}


# ---------------------------------------------------------------------- report
def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def stats(views: list[View]) -> dict[str, float | None]:
    """p50 / p95 / max seconds of the views that finished, medians of heading time, CPU, KB."""
    seconds = np.array([v.seconds for v in views if v.seconds is not None and not v.failed])
    heads = [v.heading for v in views if v.heading is not None and not v.failed]
    p50, p95, top = (np.percentile(seconds, [50, 95, 100]) if len(seconds)
                     else (None, None, None))
    return {"p50": p50, "p95": p95, "max": top, "heading": median(heads) if heads else None,
            "cpu": median([v.cpu for v in views]) if views else None,
            "kb": median([v.bytes / 1024 for v in views]) if views else None,
            "errors": sum(v.failed for v in views)}


SUMMARY = ("students", "page views", "p50 s", "p95 s", "max s", "errors", "server CPU %",
           "CPU s per page view (median)", "RSS MB (before → after)", "1-min load (start → end)",
           "generator CPU %")


def summary_row(level: Level) -> list[str]:
    s = stats(level.views)
    measured = level.cpu is not None
    return [level.label, str(len(level.views)), fmt(s["p50"]), fmt(s["p95"]), fmt(s["max"]),
            str(s["errors"]), fmt(100 * level.cpu / level.wall, 0) if measured else "–",
            fmt(s["cpu"], 3) if measured else "–",
            f"{level.rss[0]:.0f} → {level.rss[1]:.0f}" if measured else "–",
            f"{level.load[0]:.2f} → {level.load[1]:.2f}",
            fmt(100 * level.generator_cpu / level.wall, 1)]


def table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def print_summary(level: Level) -> None:
    print("\n".join(table(SUMMARY, [summary_row(level)])), flush=True)


def per_page_rows(views: list[View], label: str) -> list[list[str]]:
    rows = []
    for page in PAGES:
        mine = [v for v in views if v.page == page.name]
        if mine:
            s = stats(mine)
            rows.append([label, page.name, str(len(mine)), fmt(s["p50"]), fmt(s["p95"]),
                         fmt(s["max"]), fmt(s["heading"]), fmt(s["cpu"], 3), fmt(s["kb"], 0),
                         str(s["errors"])])
    return rows


def error_lines(views: list[View]) -> list[str]:
    counts = Counter(f"{v.students} / {v.page}: {v.error or v.exceptions[0]}"
                     for v in views if v.failed)
    return [f"- {n} × {text}" for text, n in counts.most_common(10)]


def app_version(app: Path) -> str:
    """The commit of the app's code, and how many files the working tree changes (pages and
    modules are read when the server first needs them); for a copy, its folder."""
    if app != ROOT:
        return f"the copy in {app}"

    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()

    changed = len(git("status", "--porcelain", "--untracked-files=no").splitlines())
    return f"commit {git('rev-parse', '--short', 'HEAD') or 'unknown'}" + (
        f" + {changed} changed file(s) in the working tree" if changed else "")


def report(cold: list[View], levels: list[Level], memory, validation, info, args,
           minutes: float) -> str:
    """The whole report in markdown: set-up, then each part that was measured."""
    target = args.url or "own server (streamlit run, 127.0.0.1)"
    lines = [f"Command: `{command_line()}` ({minutes:.1f} min in all).", "", *machine_lines(info),
             *([f"- app: {info['app']}"] if info["app"] else []),
             f"- target: {target}; think time {args.think[0]:g}–{args.think[1]:g} s, ramp "
             f"{args.ramp:g} s, seed {args.seed}", ""]
    lines += cold_lines(cold) + level_lines(levels)
    for level in levels:
        lines += chromium_lines(level)
    return "\n".join(lines + memory_lines(memory, args) + validation_lines(validation))


def cold_lines(cold: list[View]) -> list[str]:
    if not cold:
        return []
    return ["Cold first visit (fresh server, one student, no thinking):", "",
            *table(("page", "s to script_finished", "s to heading", "server CPU s"),
                   [[v.page, fmt(v.seconds), fmt(v.heading), fmt(v.cpu)] for v in cold])]


def level_lines(levels: list[Level]) -> list[str]:
    if not levels:
        return []
    errors = error_lines([v for level in levels for v in level.views])
    return [*table(SUMMARY, [summary_row(level) for level in levels]), "Per page:", "",
            *table(("students", "page", "views", "p50 s", "p95 s", "max s", "heading p50 s",
                    "CPU s/view (median)", "KB/view (median)", "errors"),
                   [row for level in levels for row in per_page_rows(level.views, level.label)]),
            *errors, *([""] if errors else [])]


def chromium_lines(level: Level) -> list[str]:
    if not level.chromium:
        return []
    samples = (("quiet", level.chromium_quiet), (f"{level.students} students", level.chromium))
    return [f"Chromium, a new visitor opens Home (s; heading drawn / rendering finished), "
            f"server on its own vs. with {level.students} students browsing. The heading is "
            "timed by the page (its first frame); Playwright's `wait_for` saw it later, as it "
            "polls every 0.5 s after 0.3 s:", "",
            *table(("when", "samples", "heading (each)", "heading median", "rendered median",
                    "Playwright saw the heading (each)"),
                   [[name, str(len(s)), ", ".join(fmt(h) for h, _, _ in s),
                     fmt(median([h for h, _, _ in s])), fmt(median([r for _, r, _ in s])),
                     ", ".join(fmt(p) for _, _, p in s)]
                    for name, s in samples if s])]


def memory_lines(memory: list[tuple[str, float, int]], args) -> list[str]:
    if not memory:
        return []
    each = "the full visit" if args.session_visit == "full" else "one Home view"
    server = "the server as found" if args.url else "fresh server"
    return [f"Memory: {args.sessions} sessions opened and closed, {args.concurrency} at a time, "
            f"each {each} ({server}):", "",
            *table(("when", "server RSS MB", "failed views"),
                   [[when, fmt(rss, 0), str(failed)] for when, rss, failed in memory])]


def validation_lines(validation: list[dict]) -> list[str]:
    if not validation:
        return []
    return ["Validation, simulator vs Chromium (same URL, a new visitor each):", "",
            *table(("page", "URL", "elements (simulator)", "stElementContainer (Chromium)",
                    "kinds", "headings", "match", "differences"),
                   [[r["page"], f"`{r['url']}`", str(r["elements"]), str(r["dom"]),
                     str(r["kinds"]), str(r["headings"]), "yes" if r["match"] else "NO",
                     "; ".join(r["differences"]) or "–"] for r in validation])]


# ---------------------------------------------------------------------- main
def number_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def think_range(text: str) -> tuple[float, float]:
    low, high = (float(part) for part in text.split(","))
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError("--think wants LOW,HIGH with 0 <= LOW <= HIGH")
    return low, high


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.classroom",
                                description=__doc__.split("\n")[0])
    p.add_argument("--students", type=number_list, default=list(LEVELS),
                   help="levels, run in turn (default 1,10,30,60; '' for none)")
    p.add_argument("--duration", type=float,
                   help=f"seconds per level (default {DURATION:g} unless --visits is given)")
    p.add_argument("--visits", type=int, help="full visits per student (ends a level early)")
    p.add_argument("--think", type=think_range, default=THINK,
                   help="think time range in s after each page (default 1,3)")
    p.add_argument("--ramp", type=float, default=RAMP,
                   help=f"students arrive within this many seconds (default {RAMP:g})")
    p.add_argument("--seed", type=int, default=0, help="seed of users, movies, think times")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="s per page view")
    p.add_argument("--url", help="drive this running server (or proxy) instead of starting one")
    p.add_argument("--server-pids", type=number_list, default=[],
                   help="with --url: PIDs of the server processes (CPU, RSS; children included)")
    p.add_argument("--runs-dir", type=Path,
                   help="own server's RECSYS_RUNS_DIR (default: a new temporary folder), "
                        "prepared as --prepare says; keep one to prepare it once")
    p.add_argument("--app-dir", type=Path, default=ROOT,
                   help="serve the app from this folder, e.g. a `git archive` copy of a commit "
                        "(default: this repository's working tree)")
    p.add_argument("--prepare", choices=("class", "default"), default="class",
                   help="what the own server's runs folder holds: the class set, as "
                        "scripts/prepare.sh makes it (default), or only the default model")
    p.add_argument("--port", type=int, default=0,
                   help="own server's port (default: the first free one in 8840-8870)")
    p.add_argument("--chromium", type=number_list, default=[],
                   help="extra levels (students) during which Chromium opens Home 3 times")
    p.add_argument("--validate", action="store_true",
                   help="compare the simulator's elements with Chromium's, page by page")
    p.add_argument("--sessions", type=int, default=0,
                   help="memory mode: open and close this many sessions on a fresh server")
    p.add_argument("--session-visit", choices=("home", "full"), default="home",
                   help="what each memory-mode session views (default: one Home view)")
    p.add_argument("--concurrency", type=int, default=4, help="memory mode: sessions at a time")
    p.add_argument("--settle", type=float, default=0.0,
                   help="memory mode: then wait this long (Streamlit keeps disconnected "
                        "sessions 120 s) and open one more session")
    p.add_argument("--section", help=f"also write the report into {REPORT.name}'s section NAME")
    p.add_argument("--json", type=Path, help="write every page view to this JSON file")
    args = p.parse_args(argv)
    if args.duration is None and args.visits is None:
        args.duration = DURATION
    args.app_dir = args.app_dir.resolve()
    if not (args.app_dir / "streamlit_app.py").exists():
        p.error(f"--app-dir {args.app_dir} holds no streamlit_app.py")
    if args.url:
        args.url = args.url.rstrip("/")
    elif args.server_pids:
        p.error("--server-pids goes with --url (an own server is measured anyway)")
    if args.sessions and not (args.url is None or args.server_pids):
        p.error("--sessions measures RSS: give --server-pids with --url")
    if args.chromium or args.validate:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError as err:
            p.error(f"--chromium and --validate need playwright (pip install playwright): {err}")
        if not CHROMIUM.exists():
            p.error(f"--chromium and --validate need Debian Chromium at {CHROMIUM} "
                    "(apt-get install chromium); `playwright install` is not used here")
    return args


async def measure(target: Target, args) -> tuple:
    """Everything asked for, in an order that keeps the measurements apart: the cold first
    visit, the validation (quiet server), the levels, the Chromium levels, then memory on a
    fresh server process."""
    ids = Catalogue.load()
    cold = [] if args.url else await cold_visit(target, ids, args)
    levels, memory, validation = [], [], []
    async with contextlib.AsyncExitStack() as stack:
        chromium = (await stack.enter_async_context(Chromium())
                    if args.chromium or args.validate else None)
        if args.validate:
            validation = await validate(target, ids, chromium, args)
        for students in args.students:
            levels.append(await run_level(target, ids, students, args))
        for students in args.chromium:
            levels.append(await run_level(target, ids, students, args, chromium))
    if args.sessions:
        if target.restart is not None:
            target.restart()
            await cold_visit(target, ids, args)
        print(f"memory: {args.sessions} sessions", flush=True)
        memory = await memory_run(target, ids, args)
    return cold, levels, memory, validation


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    app = "" if args.url else app_version(args.app_dir)
    info, started = {**machine(), "app": app}, time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="classroom-"))  # the own server's log and runs
    try:
        with contextlib.ExitStack() as stack:
            if args.url:
                target = Target(args.url, ServerProcesses(args.server_pids)
                                if args.server_pids else None)
            else:
                runs = args.runs_dir or work / "runs"
                port = args.port or first_free_port(range(8840, 8871))
                target = stack.enter_context(own_server(args.app_dir, runs, work / "server.log",
                                                        port, args.prepare))
            cold, levels, memory, validation = asyncio.run(measure(target, args))
    except BaseException:
        print(f"kept {work} (server log) for inspection", file=sys.stderr)
        raise
    shutil.rmtree(work, ignore_errors=True)
    text = report(cold, levels, memory, validation, info, args,
                  (time.perf_counter() - started) / 60)
    print("\n" + text)
    if args.section:
        write_section(REPORT, args.section, text + "\n")
        print(f"wrote section {args.section!r} of {REPORT}")
    if args.json:
        views = cold + [v for level in levels for v in level.views]
        args.json.write_text(json.dumps([v.record() for v in views], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
