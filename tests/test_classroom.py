"""The classroom deployment (scripts/classroom.sh): two Streamlit processes of the app behind
Caddy (deploy/Caddyfile) on one runs folder. A browser gets every page through the proxy, new
visitors are spread over both processes and each kept on one by a cookie, and stopping the
script stops every process it started."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from recsys.data.loading import load_movielens
from recsys.errors import DataUnavailableError
from recsys.jobs import class_set
from tests.browser import CHROMIUM, FLAGS, ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from port_is_free import port_is_free  # noqa: E402

pytestmark = pytest.mark.browser
if shutil.which("caddy") is None or not CHROMIUM.exists():  # pragma: no cover - machine
    pytest.skip("needs Debian's caddy and chromium (bash scripts/setup.sh test installs both)",
                allow_module_level=True)
try:
    ML = load_movielens(download=False, progress=False)
except DataUnavailableError as err:  # pragma: no cover - depends on the machine
    pytest.skip(f"MovieLens 100K unavailable: {err}", allow_module_level=True)

SERVERS = 2


def free_ports(count: int) -> int:
    """A base port with ``count`` free ports from it on."""
    for _ in range(200):
        base = random.randrange(20_000, 40_000)
        if all(port_is_free(p) for p in range(base, base + count)):
            return base
    raise RuntimeError("no free ports")


def fetch(url: str, timeout: float = 5) -> tuple[bytes, str | None]:
    """(body, the recsys_server cookie the proxy set) of one request without cookies."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        cookies = [c for c in response.headers.get_all("Set-Cookie") or []
                   if c.startswith("recsys_server=")]
        return response.read(), (cookies[0].split(";")[0] if cookies else None)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    runs = tmp_path_factory.mktemp("class")
    assert class_set.prepare_class(ML, runs, maps=False).complete
    port = free_ports(SERVERS + 1)
    log = (tmp_path_factory.mktemp("log") / "classroom.log").open("w")
    proc = subprocess.Popen(
        ["bash", "scripts/classroom.sh"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PORT": str(port), "SERVERS": str(SERVERS),
             "RECSYS_RUNS_DIR": str(runs), "RECSYS_CLASS_SET": "no-maps"},
        start_new_session=True)  # its own process group: stopped as one below
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if fetch(f"{url}/_stcore/health")[0] == b"ok":
                    break
            except OSError:
                pass
            assert proc.poll() is None, Path(log.name).read_text()
            assert time.time() < deadline, "the classroom did not start"
            time.sleep(0.5)
        yield url, port, proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):  # anything left of its process group
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_pages_render_through_the_proxy(classroom):
    from playwright.sync_api import sync_playwright

    url, _, _ = classroom
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 800})
            for path, heading in (("tour", "Guided tour"),
                                  ("recommendations?user=14", "Recommendations")):
                page.goto(f"{url}/{path}")
                page.get_by_role("heading", name=heading).first.wait_for(timeout=120_000)
                page.wait_for_selector("[data-testid=stDataFrame], .js-plotly-plot",
                                       timeout=120_000)
                assert page.locator("[data-testid=stException]").count() == 0
            assert any(c["name"] == "recsys_server" for c in page.context.cookies())
        finally:
            browser.close()


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (IPv4 and IPv6, /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


def test_the_proxy_listens_only_where_it_was_told(classroom):
    """ADDRESS=127.0.0.1 (the default) keeps other machines off: only the loopback address
    listens, and the servers behind it listen on loopback too."""
    _, port, _ = classroom
    loopback = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
    for p in range(port, port + SERVERS + 1):
        assert listening_addresses(p) == {loopback}, p


def test_streamlits_static_files_come_from_caddy(classroom):
    """A new visitor's ~60 JavaScript and CSS files are Caddy's work, not a Python process's,
    cached a year (their names change with each Streamlit release)."""
    url, _, _ = classroom
    page, _ = fetch(f"{url}/")
    script = re.search(rb'src="\./(static/js/[^"]+\.js)"', page)[1].decode()
    with urllib.request.urlopen(f"{url}/{script}", timeout=5) as response:
        assert response.headers.get_all("Server") == ["Caddy"]  # no Streamlit (uvicorn) behind
        assert "immutable" in response.headers["Cache-Control"]
        assert len(response.read()) > 0


def test_new_visitors_are_spread_over_the_processes_and_kept_on_theirs(classroom):
    url, _, _ = classroom
    cookies = {fetch(f"{url}/")[1] for _ in range(16)}  # each a new visitor: no cookie sent
    assert None not in cookies and len(cookies) == SERVERS  # random first pick: both used
    cookie = next(iter(cookies))
    request = urllib.request.Request(f"{url}/", headers={"Cookie": cookie})
    for _ in range(4):  # a visitor with a cookie is not moved
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers.get("Set-Cookie") is None


def test_stopping_the_script_stops_every_process_it_started(classroom):
    url, port, proc = classroom
    os.kill(proc.pid, signal.SIGTERM)  # the script alone: its trap stops the rest
    assert proc.wait(timeout=60) == 143
    deadline = time.time() + 30
    while not all(port_is_free(p) for p in range(port, port + SERVERS + 1)):
        assert time.time() < deadline, "a server or the proxy is still listening"
        time.sleep(0.5)
