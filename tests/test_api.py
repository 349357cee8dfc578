"""The serving API (recsys.serving.api) on small runs: the same lists as the CLI and the
serving functions, 4xx errors naming the field, every served list logged, and `recsys serve`
as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench import api as bench_api
from recsys.cli import main as cli
from recsys.cli import serving as cli_serving
from recsys.data.loading import GENRES_100K, load_movielens, read_grouplens_dir
from recsys.data.protocol import SplitConfig
from recsys.errors import DataUnavailableError
from recsys.models.config import TrainConfig
from recsys.serving import served_log
from recsys.serving.api import MAX_BODY_BYTES, MAX_K, create_app, warm_up
from recsys.serving.catalog import as_records, default_lens, recommend, similar_movies
from recsys.serving.coldstart import ColdStartConfig, cold_start
from recsys.storage.runs import train_run
from tests.synthetic import fit, make_world

ROOT = Path(__file__).resolve().parent.parent
# The API, the CLI and the direct call run the same function on the same arrays in one process:
# the scores agree to the last bit in practice; the tolerance only absorbs a float64 -> JSON ->
# float64 round trip, which repr() makes exact anyway.
SCORE_TOL = 1e-12


@pytest.fixture(scope="module")
def world():
    return make_world()


@pytest.fixture(scope="module")
def runs(world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    return {model: fit(world, folder, model) for model in ("mf-bpr", "popularity")}


@pytest.fixture
def logged(runs, tmp_path):
    """A client of the mf-bpr run's API and its served-list log."""
    log = served_log.ServedLog(tmp_path / "log")
    with TestClient(create_app(runs["mf-bpr"], log)) as client:
        yield client, log


@pytest.fixture(autouse=True)
def synthetic_data(monkeypatch, world):
    monkeypatch.setattr(cli_serving, "load_movielens", lambda data_dir, download: world)


def records(log) -> list[dict]:
    return list(served_log.read_records(log.folder)) if log.path.exists() else []


def ids_and_scores(items) -> tuple[list[int], list[float]]:
    return [int(i["item_id"]) for i in items], [float(i["score"]) for i in items]


def cli_json(capsys, *args) -> object:
    assert cli.main([str(a) for a in args]) == 0
    return json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------------------- one code path
@pytest.mark.parametrize("user,k,lens,exclude_seen", [
    (3, 5, "dot", True), (25, 10, "cosine", True), (7, 4, "dot", False),
    (40, MAX_K, "dot", True),  # more than the catalogue: all of it, as the CLI caps k
])
def test_recommend_equals_cli_and_function(logged, runs, capsys, user, k, lens, exclude_seen):
    client, log = logged
    catalog = runs["mf-bpr"]
    response = client.get("/recommend", params={"user": user, "k": k, "lens": lens,
                                                "exclude_seen": exclude_seen})
    assert response.status_code == 200, response.text
    api = response.json()["items"]
    flags = ["--scoring", lens] + ([] if exclude_seen else ["--include-seen"])
    cli_items = cli_json(capsys, "recommend", catalog.run.path, "--user", user, "--k", k,
                         "--json", *flags)
    direct = recommend(catalog, user, min(k, len(catalog.run.item_ids)),
                       exclude_seen=exclude_seen, scoring=lens)
    direct_ids, direct_scores = direct["item_id"].tolist(), direct["score"].tolist()
    for ids, scores in (ids_and_scores(api), ids_and_scores(cli_items)):
        assert ids == direct_ids
        np.testing.assert_allclose(scores, direct_scores, rtol=SCORE_TOL)
    assert len(direct_ids) > 0
    assert {i["source"] for i in api} == {"retrieval"}
    text_columns = ("rank", "item_id", "title")  # the CLI's JSON columns other than the score
    assert [{c: a[c] for c in text_columns} for a in api] == [
        {c: r[c] for c in text_columns} for r in cli_items]
    assert [(a["year"], a["genres"]) for a in api] == list(zip(
        direct["year"].astype(object).where(direct["year"].notna(), None),
        direct["genres"], strict=True))
    [record] = records(log)
    assert [i["movie_id"] for i in record["items"]] == direct_ids


@pytest.mark.parametrize("movie,lens", [("4", None), ("beta love 12", "cosine"),
                                        ("15", "dot"), ("2", "hybrid")])
def test_similar_equals_cli_and_function(logged, runs, capsys, movie, lens):
    client, _ = logged
    catalog = runs["mf-bpr"]
    params = {"movie": movie, "k": 3} | ({"lens": lens} if lens else {})
    api = client.get("/similar", params=params).json()
    cli_out = cli_json(capsys, "similar", catalog.run.path, "--movie", movie, "--k", 3,
                       "--json", *(["--lens", lens] if lens else []))
    direct = similar_movies(catalog, movie, 3, lens or default_lens(catalog)).to_dict()
    assert api["lens"] == cli_out["lens"] == direct["lens"] == (lens or default_lens(catalog))
    for key in ("embedding", "cooccurrence"):
        assert direct[key]
        for other in (api, cli_out):
            assert ids_and_scores(other[key])[0] == ids_and_scores(direct[key])[0]
            np.testing.assert_allclose(ids_and_scores(other[key])[1],
                                       ids_and_scores(direct[key])[1], rtol=SCORE_TOL)
    assert api["movie"] == cli_out["movie"] == direct["movie"]
    assert api["overlap"] == direct["overlap"]


@pytest.mark.parametrize("likes,dislikes,blend", [
    ([1, 2, 3], [15], None), ([12], [], 0.0), ([], [], None), ([5, 6], [], 1.0)])
def test_profile_equals_the_profile_pages_call(logged, runs, likes, dislikes, blend):
    client, log = logged
    response = client.post("/recommend/profile", json={"likes": likes, "dislikes": dislikes,
                                                       "k": 6, "blend": blend})
    assert response.status_code == 200, response.text
    body = response.json()
    direct = cold_start(runs["mf-bpr"], likes, dislikes, k=6, config=ColdStartConfig(blend=blend))
    ids, scores = ids_and_scores(body["items"])
    assert ids == direct["item_id"].tolist()
    np.testing.assert_allclose(scores, direct["score"], rtol=SCORE_TOL)
    assert not set(ids) & set(likes + dislikes)
    expected = {"collaborative": "fold-in", "content": "content", "both": "fold-in+content",
                "popularity": "popularity"}
    assert [i["source"] for i in body["items"]] == [expected[s] for s in direct["source"]]
    assert [i["source"] for i in records(log)[0]["items"]] == [i["source"]
                                                               for i in body["items"]]


# ---------------------------------------------------------------------------- bad input
BAD_REQUESTS = [  # (method, path, params or body, status, field)
    ("get", "/recommend", {"user": 999}, 404, "user"),
    ("get", "/recommend", {"user": 10**30}, 404, "user"),  # beyond int64: still a 404
    ("get", "/recommend", {"user": "abc"}, 422, "user"),
    ("get", "/recommend", {}, 422, "user"),
    ("get", "/recommend", {"user": 3, "k": 0}, 422, "k"),
    ("get", "/recommend", {"user": 3, "k": MAX_K + 1}, 422, "k"),
    ("get", "/recommend", {"user": 3, "k": "ten"}, 422, "k"),
    ("get", "/recommend", {"user": 3, "lens": "euclid"}, 422, "lens"),
    ("get", "/recommend", {"user": 3, "exclude_seen": "maybe"}, 422, "exclude_seen"),
    ("get", "/similar", {"movie": 999}, 404, "movie"),
    ("get", "/similar", {"movie": "no such film"}, 404, "movie"),
    ("get", "/similar", {"movie": "star trek"}, 422, "movie"),  # two titles match
    ("get", "/similar", {"movie": "x" * 500}, 422, "movie"),
    ("get", "/similar", {"movie": 4, "lens": "sideways"}, 422, "lens"),
    ("get", "/similar", {"movie": 4, "k": -3}, 422, "k"),
    ("post", "/recommend/profile", {"likes": [999]}, 404, "likes"),
    ("post", "/recommend/profile", {"dislikes": [0]}, 404, "dislikes"),
    ("post", "/recommend/profile", {"likes": [1, 10**30]}, 404, "likes"),
    ("post", "/recommend/profile", {"likes": [1], "dislikes": [1]}, 422, "dislikes"),
    ("post", "/recommend/profile", {"likes": ["1"]}, 422, "likes.0"),
    ("post", "/recommend/profile", {"likes": 1}, 422, "likes"),
    ("post", "/recommend/profile", {"likes": [1], "k": 0}, 422, "k"),
    ("post", "/recommend/profile", {"likes": [1], "blend": 2}, 422, "blend"),
    ("post", "/recommend/profile", {"likes": [1], "colour": "red"}, 422, "colour"),
    ("post", "/recommend/profile", [1, 2], 422, "body"),
    ("post", "/recommend/profile", {"likes": list(range(1, 23))}, 422, "likes"),  # all movies
]


@pytest.mark.parametrize("method,path,data,status,field", BAD_REQUESTS)
def test_bad_input_is_a_4xx_naming_the_field(logged, method, path, data, status, field):
    client, log = logged
    response = (client.get(path, params=data) if method == "get"
                else client.post(path, json=data))
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field and body["status"] == status
    assert body["message"] and "Traceback" not in body["message"]
    assert records(log) == []  # nothing served, nothing logged


@pytest.mark.parametrize("content,status,words", [
    (b'{"likes": [1, 2', 400, "malformed JSON"),
    (b"likes=1", 400, "malformed JSON"),
    (b"", 422, "required"),
    (b'{"likes": [' + b"1, " * (MAX_BODY_BYTES // 3) + b"1]}", 413, "over"),
])
def test_malformed_and_oversized_bodies(logged, content, status, words):
    client, log = logged
    response = client.post("/recommend/profile", content=content,
                           headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["field"] == "body" and words in response.json()["message"]
    assert records(log) == []


def test_oversized_body_sent_in_chunks_without_a_length(logged):
    client, _ = logged
    chunks = (b"[" + b"1," * 10_000 for _ in range(10))  # ~200 KB, no content-length
    response = client.post("/recommend/profile", content=chunks,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["field"] == "body"


def test_a_run_without_the_capability_says_which_field(runs):
    with TestClient(create_app(runs["popularity"])) as client:
        cosine = client.get("/recommend", params={"user": 3, "lens": "cosine"})
        assert cosine.status_code == 422 and cosine.json()["field"] == "lens"
        assert "no user embeddings" in cosine.json()["message"]
        profile = client.post("/recommend/profile", json={"likes": [1]})
        assert profile.status_code == 422 and profile.json()["field"] == "likes"
        assert "cannot score a new user" in profile.json()["message"]
        nobody = client.post("/recommend/profile", json={})  # no likes: the popular movies
        assert nobody.status_code == 200
        assert {i["source"] for i in nobody.json()["items"]} == {"popularity"}


def test_warm_up_serves_what_each_run_can(runs):
    for catalog in runs.values():  # a factor model and one without vectors or fold-in
        warm_up(catalog)
    assert ("cosine" in str(runs["mf-bpr"]._indexes)) and not runs["popularity"]._indexes


# ---------------------------------------------------------------------------- the log
def test_every_served_list_is_logged_with_its_request_id(logged, runs):
    client, log = logged
    responses = [client.get("/recommend", params={"user": 3, "k": 2}),
                 client.get("/similar", params={"movie": 4, "k": 2}),
                 client.post("/recommend/profile", json={"likes": [12, 13], "k": 2}),
                 client.get("/health"), client.get("/model")]
    logged_records = records(log)
    assert [r["endpoint"] for r in logged_records] == ["recommend", "similar",
                                                      "recommend/profile"]
    run = runs["mf-bpr"].run
    for response, record in zip(responses, logged_records, strict=False):
        body = response.json()
        assert response.headers["x-request-id"] == body["request_id"] == record["request_id"]
        assert len(record["request_id"]) == 32 and int(record["request_id"], 16) >= 0
        assert record["run"] == run.path.name and record["fingerprint"] == run.dataset[
            "fingerprint"]
        assert record["time"].endswith("Z") and record["latency_ms"] > 0
        assert record["inputs"] == body["inputs"]
        assert set(record["items"][0]) == {"movie_id", "score", "source"}
    assert logged_records[1]["inputs"] == {"movie": 4, "k": 2, "lens": default_lens(runs[
        "mf-bpr"])}
    assert [i["source"] for i in logged_records[1]["items"]] == ["embedding"] * 2 + [
        "co-occurrence"] * 2


def test_client_text_reaches_the_log_escaped(logged):
    client, log = logged
    query = 'Alpha\n\x1cSpace\r\t 4\x1f'  # whitespace and control characters around the words
    response = client.get("/similar", params={"movie": query, "k": 2})
    assert response.status_code == 200, response.text
    refused = client.get("/similar", params={"movie": 'x"}\n{"endpoint": "forged\x00'})
    assert refused.status_code == 404
    raw = log.path.read_bytes()
    assert raw.count(b"\n") == 1 and raw.endswith(b"\n")
    assert all(32 <= byte < 127 for byte in raw[:-1])  # escaped: printable ASCII only
    assert b"forged" not in raw
    [record] = records(log)
    assert record["inputs"]["query"] == query and record["inputs"]["movie"] == 4


def test_model_and_health(logged, runs):
    client, _ = logged
    run = runs["mf-bpr"].run
    assert client.get("/health").json() == {"status": "ok", "run": run.name, "model": "mf-bpr",
                                            "fingerprint": run.dataset["fingerprint"]}
    model = client.get("/model").json()
    assert model["config"]["train"]["model"] == "mf-bpr" and model["config"]["train"]["dim"] == 4
    assert model["metrics"]["recall@10"] == pytest.approx(run.metrics["recall@10"])
    assert model["fingerprint"] == run.dataset["fingerprint"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/similar", "/recommend/profile", "/health", "/model"} <= set(paths)


@pytest.mark.parametrize("flags,words", [
    (["--port", "0"], "--port must be between 1 and 65535"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--log-keep", "-1"], "--log-keep at least 0"),
])
def test_serve_refuses_bad_flags_before_loading(runs, capsys, flags, words):
    assert cli.main(["serve", str(runs["mf-bpr"].run.path), *flags]) == 2
    assert words in capsys.readouterr().err


# ---------------------------------------------------------------------------- a real server
def grouplens_folder(folder: Path, n_users: int = 12, n_items: int = 10) -> Path:
    """A tiny ml-100k folder: each half of the users likes its half of the movies."""
    folder.mkdir(parents=True)
    ratings = [f"{u}\t{i}\t{5 if (u <= n_users // 2) == (i <= n_items // 2) else 1}\t"
               f"{880000000 + 1000 * u + i}"
               for u in range(1, n_users + 1) for i in range(1, n_items + 1)]
    flags = "|".join("1" if g == "Drama" else "0" for g in GENRES_100K)
    (folder / "u.data").write_text("\n".join(ratings) + "\n")
    (folder / "u.item").write_text("".join(f"{i}|Movie {i} (199{i % 10})|01-Jan-1990||x|"
                                           f"{flags}\n" for i in range(1, n_items + 1)))
    (folder / "u.user").write_text("".join(f"{u}|30|F|writer|00000\n"
                                           for u in range(1, n_users + 1)))
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_recsys_serve_as_a_process(tmp_path, monkeypatch, capsys):
    data = grouplens_folder(tmp_path / "ml-100k")
    train_run(read_grouplens_dir(data), SplitConfig(),
              TrainConfig(model="mf-als", dim=4, epochs=3), tmp_path / "runs" / "als")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "recsys.cli", "serve", str(tmp_path / "runs" / "als"), "--port",
         str(port), "--data-dir", str(data), "--no-download"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stdout.read()
            try:
                health = httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not answer in 90 s"
                time.sleep(0.2)
        assert health.json()["run"] == "als"
        response = httpx.get(f"{url}/recommend", params={"user": 1, "k": 3}, timeout=10)
        assert response.status_code == 200 and len(response.json()["items"]) == 3
        # 8 clients at once on the event loop (the benchmark's hand-written HTTP/1.1 client):
        # every request answered and logged under its own id
        log_dir = tmp_path / "runs" / cli_serving.SERVED_LOG_NAME
        params = [{"user": 1 + n % 12, "k": 3 + n % 4} for n in range(120)]  # 80 warm up
        row = asyncio.run(bench_api.load(port, server.pid, "/recommend", params, 8, log_dir))
        assert row["errors"] == 0 and row["requests"] == 40
        assert np.isfinite(row["server p95 ms"]) and row["p50 ms"] > 0
    finally:
        os.kill(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    assert "serving als (mf-als) at http://127.0.0.1:" in output
    assert "uvicorn on {} + {}".format(*cli_serving.http_stack()) in output
    logged = list(served_log.read_records(log_dir))
    assert logged[0]["request_id"] == response.json()["request_id"] and len(logged) == 121
    assert len({r["request_id"] for r in logged}) == 121
    # the lists served concurrently are the lists the CLI computes for the same inputs
    monkeypatch.setattr(cli_serving, "load_movielens",
                        lambda data_dir, download: read_grouplens_dir(data))
    assert cli.main(["replay-log", str(log_dir), "--run", str(tmp_path / "runs" / "als")]) == 0
    assert "replayed 121 records from 1 file(s): 121 matched" in capsys.readouterr().out


# ---------------------------------------------------------------------------- MovieLens 100K
@pytest.mark.movielens
def test_api_on_movielens_100k(tmp_path, monkeypatch, capsys):
    try:
        ml = load_movielens(download=False)
    except DataUnavailableError:
        pytest.skip("MovieLens 100K is not available offline")
    from recsys.serving.catalog import Catalog
    from recsys.storage.runs import load_run

    train_run(ml, SplitConfig(), TrainConfig(model="mf-als", dim=16, epochs=5), tmp_path / "als")
    catalog = Catalog.build(load_run(tmp_path / "als"), ml)
    monkeypatch.setattr(cli_serving, "load_movielens", lambda data_dir, download: ml)
    with TestClient(create_app(catalog)) as client:
        api = client.get("/recommend", params={"user": 1, "k": 10}).json()["items"]
        similar = client.get("/similar", params={"movie": "star wars 1977", "k": 5}).json()
    cli_items = cli_json(capsys, "recommend", tmp_path / "als", "--user", 1, "--json")
    assert ids_and_scores(api)[0] == ids_and_scores(cli_items)[0]
    assert as_records(recommend(catalog, 1, 10))[0]["item_id"] == api[0]["item_id"]
    assert similar["movie"]["item_id"] == 50
