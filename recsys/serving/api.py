"""The serving API: one run behind HTTP (FastAPI), every served list logged.

``recsys serve RUN`` builds a :class:`~recsys.serving.catalog.Catalog` once and serves it with
:func:`create_app`; OpenAPI docs are at ``/docs``. Endpoints:

- ``GET /recommend?user=&k=&lens=&exclude_seen=``: a known user's top-k (lens ``dot``, the
  model's score, or ``cosine``: as ``recsys recommend --scoring`` and the Recommendations page).
- ``GET /similar?movie=&k=&lens=``: neighbours of a movie (id or title words) through an
  embedding lens, and by co-occurrence (as ``recsys similar`` and the Similar movies page).
- ``POST /recommend/profile``: ``{"likes": [...], "dislikes": [...], "k": 10}`` -> a new
  user's list by fold-in and content (as the Profile page).
- ``GET /health``, ``GET /model``: liveness; the run, its config, data fingerprint, metrics.

Each list comes from :data:`recsys.serving.served_log.LISTS`, which calls the same functions
as the CLI and the pages, and is appended to the served-list log with its request id (also in
the response body and the ``X-Request-Id`` header). Bad input gets a 4xx JSON error
``{"status", "field", "message"}`` naming the field: 404 for an unknown user or movie, 422 for
a value out of range or of the wrong type, 400 for malformed JSON, 413 for an oversized body.

Where each request runs: ``/recommend`` (about 0.4 ms of CPU for a list), ``/health`` and
``/model`` are ``async`` endpoints computed on the event loop itself; ``/similar`` (about
10 ms: two neighbour lists and their tables) and ``/recommend/profile`` (a fold-in) are plain
functions that FastAPI runs in its thread pool, so that they never hold up the loop. Handing a
sub-millisecond list to a thread costs more than the list: computing it on the loop took the
server from about 1.4 to 1.0 ms of CPU per request, and the p95 latency at 8 concurrent clients
on 2 cores from about 25 to 11 ms (bench/API.md). The catalogue is read-only once
:func:`warm_up` has built its caches, and :class:`~recsys.serving.served_log.ServedLog` locks
its appends, so both kinds can run at once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from recsys.errors import BadInputError
from recsys.evaluation.lenses import EMBEDDING_LENSES
from recsys.serving.catalog import (
    SCORINGS,
    AmbiguousMovieError,
    Catalog,
    default_lens,
    json_value,
    resolve_movie,
)
from recsys.serving.served_log import LISTS, ServedLog, make_record, new_request_id
from recsys.settings import to_dict

MAX_K = 100  # longest list served: the app's sliders stop at 30, the CLI at the catalogue
MAX_LIKES = 500  # movies per likes / dislikes list: far more than a person enters by hand
MAX_BODY_BYTES = 64 * 2**10  # a profile of 2 x 500 ids is ~6 KiB; anything larger is refused
MAX_QUERY_CHARS = 200  # a title query longer than any title
SETTINGS_VARIABLE = "RECSYS_SERVE_SETTINGS"  # what `recsys serve --workers N` tells its workers
Lens = Literal[SCORINGS]  # type: ignore[valid-type]
SimilarLens = Literal[EMBEDDING_LENSES]  # type: ignore[valid-type]


class ApiError(Exception):
    """A request the API refuses: HTTP ``status``, the ``field`` at fault, a message."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


class Profile(BaseModel):
    """A new user: the movies they liked and did not like (raw MovieLens ids)."""

    model_config = ConfigDict(extra="forbid")

    likes: list[StrictInt] = Field(default_factory=list, max_length=MAX_LIKES,
                                   description="raw ids of movies the user liked")
    dislikes: list[StrictInt] = Field(default_factory=list, max_length=MAX_LIKES,
                                      description="raw ids of movies the user did not like")
    k: StrictInt = Field(10, ge=1, le=MAX_K, description="list length")
    blend: float | None = Field(None, ge=0.0, le=1.0,
                                description="collaborative weight 0..1; null: the weight "
                                            "measured best for this many likes")


def create_app(catalog: Catalog, log: ServedLog | None = None,
               max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The API serving ``catalog`` (read-only, shared by every request), appending each
    served list to ``log`` (None: not logged)."""
    run = catalog.run
    app = FastAPI(title=f"recsys: {run.name} ({run.train_config.model})",
                  description=__doc__.split("\n\n")[1], version="1")
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    _add_error_handlers(app)

    rows = _Rows(catalog)

    def profile_body(frame, items: list[dict]) -> dict[str, Any]:
        parts = {name: frame[name].to_numpy().tolist() for name in ("collaborative", "content")}
        weight = float(frame["weight_collaborative"].iloc[0]) if len(frame) else 0.0
        return {"weight_collaborative": weight, "items": rows(items, parts)}

    def serve(endpoint: str, inputs: dict[str, Any], start: float, shape,
              field: str | None = None) -> JSONResponse:
        """Computes, logs and returns the list; a refusal from the list's own checks is a 422
        on ``field``."""
        request_id = new_request_id()
        with _field_errors(field, 422):
            served, items = LISTS[endpoint](catalog, inputs)
        latency_ms = (time.perf_counter() - start) * 1e3
        if log is not None:
            log.append(make_record(catalog, endpoint, inputs, items, latency_ms, request_id))
        body = {"request_id": request_id, "run": run.name, "model": run.train_config.model,
                "inputs": inputs, **shape(served, items)}
        return JSONResponse(body, headers={"X-Request-Id": request_id})

    @app.get("/recommend", summary="Top-k movies for a known user")
    async def get_recommend(  # on the event loop: the list is cheaper than a thread hop
        user: Annotated[int, Query(description="raw MovieLens user id")],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="list length")] = 10,
        lens: Annotated[Lens, Query(description="dot: the model's own score; cosine: the "
                                                "cosine of user and item vectors")] = "dot",
        exclude_seen: Annotated[bool, Query(description="leave out the user's known "
                                                        "positives")] = True,
    ) -> JSONResponse:
        start = time.perf_counter()
        with _field_errors("user", 404):
            catalog.user_index(user)
        if lens == "cosine":
            with _field_errors("lens", 422):
                catalog.user_factors("cosine scoring")
        inputs = {"user": user, "k": min(k, len(run.item_ids)), "lens": lens,
                  "exclude_seen": exclude_seen}
        return serve("recommend", inputs, start, lambda frame, items: {"items": rows(items)})

    @app.get("/similar", summary="Movies nearest to a movie (embedding and co-occurrence)")
    def get_similar(
        movie: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="raw movie id, "
                                    "or title words such as 'star wars' or 'toy story 1995'")],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="neighbours per list")] = 10,
        lens: Annotated[SimilarLens | None, Query(description="embedding lens; default: the "
                                                  "one measured best for the run's model")] = None,
    ) -> JSONResponse:
        start = time.perf_counter()
        with _field_errors("movie", 404):
            try:
                item = resolve_movie(catalog, movie)
            except AmbiguousMovieError as err:
                raise ApiError(422, "movie", str(err)) from None
        inputs = {"movie": int(run.item_ids[item]), "k": min(k, len(run.item_ids) - 1),
                  "lens": lens or default_lens(catalog)}
        if not movie.strip().isdigit():
            inputs["query"] = movie  # what the client typed (escaped in the log like all else)
        return serve("similar", inputs, start, lambda result, items: result.to_dict())

    @app.post("/recommend/profile", summary="Top-k movies for a new user from likes")
    def post_profile(profile: Profile) -> JSONResponse:
        start = time.perf_counter()
        for name in ("likes", "dislikes"):
            unknown = [i for i in getattr(profile, name) if not _known_movie(catalog, i)]
            if unknown:
                raise ApiError(404, name, f"unknown movie ids {unknown[:10]}: this run knows "
                                          f"{len(run.item_ids)} movies")
        both = sorted(set(profile.likes) & set(profile.dislikes))
        if both:
            raise ApiError(422, "dislikes", f"movies {both[:10]} are both liked and disliked: "
                                            "keep each in one list")
        inputs = {"likes": sorted(set(profile.likes)), "dislikes": sorted(set(profile.dislikes)),
                  "k": profile.k, "blend": profile.blend}
        # what cold_start may still refuse: every movie liked or disliked, likes on a model
        # that cannot score a new user from them (popularity)
        return serve("recommend/profile", inputs, start, profile_body, field="likes")

    @app.get("/health", summary="Liveness: the server is up and serving its run")
    async def get_health() -> dict[str, Any]:
        return {"status": "ok", "run": run.name, "model": run.train_config.model,
                "fingerprint": run.dataset.get("fingerprint")}

    @app.get("/model", summary="The run: config, data fingerprint, test metrics")
    async def get_model() -> dict[str, Any]:
        return {"run": run.name, "model": run.train_config.model,
                "config": {"split": to_dict(run.split_config),
                           "train": to_dict(run.train_config)},
                "fingerprint": run.dataset.get("fingerprint"), "dataset": run.dataset,
                "metrics": run.metrics, "n_users": len(run.user_ids),
                "n_movies": len(run.item_ids)}

    return app


def app_from_environment() -> FastAPI:
    """The app of one worker of ``recsys serve --workers N`` (uvicorn's factory): the run and
    data named in ``$RECSYS_SERVE_SETTINGS`` (JSON, written by ``recsys serve``), warmed up,
    logging to the shared log folder."""
    from recsys.data.loading import load_movielens
    from recsys.storage.runs import load_run

    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    ml = load_movielens(settings["data_dir"], download=settings["download"])
    catalog = Catalog.build(load_run(settings["run_dir"]), ml)
    log = (ServedLog(Path(settings["log_dir"]), settings["log_max_bytes"], settings["log_keep"])
           if settings["log_dir"] else None)
    warm_up(catalog)
    return create_app(catalog, log)


def warm_up(catalog: Catalog) -> None:
    """Serves one list of each kind (every lens the run can serve), so that the catalogue's
    lazy caches (known positives, FAISS indexes, the TF-IDF matrix) are built once before the
    first request, not by several concurrent ones; about a second on MovieLens 100K."""
    user, movie = int(catalog.run.user_ids[0]), int(catalog.run.item_ids[0])
    has_users = catalog.model.user_factors() is not None
    for lens in SCORINGS if has_users else ("dot",):
        LISTS["recommend"](catalog, {"user": user, "k": 10, "lens": lens, "exclude_seen": True})
    has_items = catalog.model.item_factors() is not None
    for lens in EMBEDDING_LENSES if has_items else (default_lens(catalog),):
        LISTS["similar"](catalog, {"movie": movie, "k": 10, "lens": lens})
    LISTS["recommend/profile"](catalog, {"likes": [], "dislikes": [], "k": 10, "blend": None})
    if catalog.model.folds_in or catalog.model.score_kind == "item-item":
        LISTS["recommend/profile"](catalog, {"likes": [movie], "dislikes": [], "k": 10,
                                             "blend": None})


# ---------------------------------------------------------------------------- response shapes
class _Rows:
    """The response rows of served lists, built from the logged items (movie id, score,
    source) and the movie columns held as plain lists: the values
    :func:`recsys.serving.catalog.as_records` gives for the list's frame (the CLI's ``--json``),
    at a small part of the cost of reading them back out of the frame."""

    def __init__(self, catalog: Catalog) -> None:
        self.item_ids = catalog.run.item_ids
        movies = catalog.movies
        self.columns = {name: [json_value(v) for v in movies[name].astype(object).tolist()]
                        for name in ("title", "year", "genres")}

    def __call__(self, items: list[dict], extra: Mapping[str, list] | None = None) -> list[dict]:
        ids = [item["movie_id"] for item in items]
        rows = np.searchsorted(self.item_ids, ids).tolist()
        out = [{"rank": rank, "item_id": movie, "title": self.columns["title"][row],
                "year": self.columns["year"][row], "genres": self.columns["genres"][row],
                "score": item["score"]}
               for rank, (movie, row, item) in enumerate(zip(ids, rows, items, strict=True), 1)]
        for name, values in (extra or {}).items():
            for record, value in zip(out, values, strict=True):
                record[name] = json_value(value)
        for record, item in zip(out, items, strict=True):
            record["source"] = item["source"]
        return out


# ---------------------------------------------------------------------------- errors
@contextmanager
def _field_errors(field: str | None, status: int) -> Iterator[None]:
    """Turns a :class:`BadInputError` (whose message a person can act on) into an
    :class:`ApiError` on ``field``."""
    try:
        yield
    except BadInputError as err:
        raise ApiError(status, field, str(err)) from None


def _known_movie(catalog: Catalog, movie_id: int) -> bool:
    try:
        catalog.item_index(movie_id)
    except BadInputError:
        return False
    return True


def _error(status: int, field: str | None, message: str,
           errors: list[dict] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "field": field, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request, err: ApiError) -> JSONResponse:
        return _error(err.status, err.field, err.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, err: RequestValidationError) -> JSONResponse:
        errors = [_validation_error(e) for e in err.errors()]
        malformed = any(e.get("type") == "json_invalid" for e in err.errors())
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        if malformed:
            return _error(400, "body", "malformed JSON: " + first["message"], errors)
        return _error(422, first["field"], first["message"], errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, None, str(err.detail))


def _validation_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """``{"field", "message"}`` of one pydantic error; the client's value is left out (it is
    theirs already, and may be large)."""
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":  # loc is ("body", character position)
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return {"field": "body", "message": f"{error.get('msg', 'invalid JSON')}{where}"}
    if loc and loc[0] in ("query", "body", "path", "header"):
        loc = loc[1:] or loc[:1]
    field = ".".join(loc) or None
    return {"field": field, "message": f"{field}: {error.get('msg', 'invalid value')}"}


# ---------------------------------------------------------------------------- body size
class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with a 413 JSON error,
    whether the client declares the length or streams the body in chunks."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send) -> None:
        response = _error(413, "body", f"request body over {self.max_bytes:,} bytes: send "
                                       f"at most {MAX_LIKES} likes and dislikes each")
        await response(scope, receive, send)
