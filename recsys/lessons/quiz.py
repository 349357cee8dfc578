"""Predict, then reveal: the tour's questions, answered by the live model, and a class's votes.

Each question is built from the active run, so its answer is whatever this model says, never a
script: which movie is Toy Story's nearest neighbour, where the model ranks Star Wars for user
14, whether the dot product or the cosine ranks a niche film higher. The choices come in a
fixed order (every browser in the room sees the same list), and the one-sentence reveal gives
the number behind the answer.

Votes are counted on the server, in one small JSON file per question under the runs folder,
read and replaced under a file lock: a class served by several Streamlit processes
(``scripts/classroom.sh``) shares one count, and a student who changes their mind replaces
their vote instead of adding one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsys.lessons.anatomy import score_scale
from recsys.serving import catalog as serving

RANK_BANDS = ((1, 10), (11, 100), (101, 500))  # the rank question's choices, then "below 500"
MAX_VOTERS = 5_000  # per question: a class, never a crowd; further new voters are not counted
NICHE_SHARE = 0.25  # a "niche" film: liked by at most this share of the median film's likers
VOTES_FOLDER = ".quiz"  # under the runs folder


@dataclass(frozen=True)
class Question:
    """One prediction to make before a figure is shown, and the live model's answer."""

    key: str  # names the question and its votes: kind, run and example
    prompt: str
    choices: tuple[str, ...]
    answer: int  # index into choices
    reveal: str  # the answer, with the number behind it, in one sentence (markdown)


def neighbour_question(ctx: serving.Catalog, movie_id: int, lens: str | None = None
                       ) -> Question:
    """"Which of these is {movie}'s nearest neighbour?": the model's first neighbour through
    ``lens`` (the run's default lens when None) among three instructive wrong answers: the
    movie most often liked together with it (what a co-occurrence count would say), the most
    liked movie overall (what a popularity-biased space pulls in) and the most liked movie
    sharing its first genre."""
    lens = lens or serving.default_lens(ctx)
    item = ctx.item_index(movie_id)
    ranked = serving.similar_movies(ctx, movie_id, k=30, lens=lens)
    if ranked.embedding is None:
        raise ValueError(ranked.note)
    neighbours = ranked.embedding["item_id"].to_numpy(np.int64)
    answer = int(neighbours[0])
    taken = {int(movie_id), *map(int, neighbours)}
    ids = np.asarray(ctx.run.item_ids, np.int64)
    by_popularity = ids[np.argsort(-ctx.item_counts, kind="stable")]
    genre = str(ctx.movies["genres"].iloc[item]).split("|")[0]
    same_genre = ctx.movies["genres"].astype(str).str.split("|").str[0].to_numpy() == genre
    genre_ids = ids[np.argsort(-np.where(same_genre, ctx.item_counts, -1), kind="stable")]
    together = ranked.cooccurrence["item_id"].to_numpy(np.int64)
    wrong: list[int] = []
    for pool in (together, by_popularity, genre_ids, by_popularity):
        pick = next((int(i) for i in pool if int(i) not in taken), None)
        if pick is not None and len(wrong) < 3:
            wrong.append(pick)
            taken.add(pick)
    options = sorted([answer, *wrong], key=lambda i: _title(ctx, i))  # the same order for all
    title = _title(ctx, movie_id)
    popular_rank = int(np.flatnonzero(by_popularity == answer)[0]) + 1
    popular_note = (f" It is also the {_ordinal(popular_rank)}most liked movie: plain cosine "
                    "pulls what everyone watched close to everything (the lenses of Similar "
                    "movies correct for it)." if popular_rank <= 10 and lens == "cosine"
                    else " The others are what co-likes, popularity or the genre alone would "
                         "suggest.")
    return Question(
        key=f"neighbour:{ctx.run.name}:{movie_id}:{lens}",
        prompt=f"Which of these is **{title}**'s nearest neighbour in this model's space?",
        choices=tuple(_title(ctx, i) for i in options),
        answer=options.index(answer),
        reveal=(f"**{_title(ctx, answer)}**: its vector points closest to {title}'s through the "
                f"{lens} lens (similarity {float(ranked.embedding['score'].iloc[0]):.2f})."
                + popular_note),
    )


def rank_question(ctx: serving.Catalog, user_id: int, movie_id: int) -> Question:
    """"Where does the model rank {movie} for user {user}?" in bands of the ranking of the
    movies they have not liked yet (:func:`~recsys.lessons.anatomy.score_scale`)."""
    scale = score_scale(ctx, user_id, movie_id)
    bands = [f"in the top {hi}" if lo == 1 else f"{lo}–{hi}" for lo, hi in RANK_BANDS]
    bands.append(f"below {RANK_BANDS[-1][1]}")
    answer = next((n for n, (lo, hi) in enumerate(RANK_BANDS) if lo <= scale.rank <= hi),
                  len(RANK_BANDS))
    title = _title(ctx, movie_id)
    return Question(
        key=f"rank:{ctx.run.name}:{user_id}:{movie_id}",
        prompt=(f"Of the {scale.candidates:,} movies user {user_id} has not liked yet, where "
                f"does the model rank **{title}**?"),
        choices=tuple(bands),
        answer=answer,
        reveal=(f"**Rank {scale.rank:,} of {scale.candidates:,}**: a score of {scale.score:.3f} "
                f"beats {scale.percentile:.1%} of the other movies' scores for this user."),
    )


def dot_or_cosine_question(ctx: serving.Catalog, user_id: int) -> Question:
    """"Will the dot product or the cosine rank {niche film} higher for user {user}?": the
    niche film (few likes) that the cosine ranks highest among the user's unseen movies, its
    rank under both. The dot product rewards long vectors, which popular movies get."""
    user = ctx.user_index(user_id)
    u = ctx.user_factors("dot or cosine")[user].astype(np.float64)
    v = ctx.item_factors("dot or cosine").astype(np.float64)
    dot = ctx.model.score(np.array([user], np.int64))[0].astype(np.float64)
    cosine = (v @ u) / np.maximum(np.linalg.norm(v, axis=1) * np.linalg.norm(u), 1e-12)
    candidates = np.ones(len(v), bool)
    candidates[ctx.seen[user].indices] = False
    counts = ctx.item_counts
    niche = candidates & (counts >= 1) & (counts <= NICHE_SHARE * np.median(counts[counts > 0]))
    if not niche.any():
        raise ValueError("no niche film among this user's unseen movies")
    pick = int(np.flatnonzero(niche)[np.argmax(cosine[niche])])
    rank_dot = _rank_among(dot, candidates, pick)
    rank_cosine = _rank_among(cosine, candidates, pick)
    choices = ("the dot product (the model's score)", "the cosine", "the same rank")
    answer = 0 if rank_dot < rank_cosine else 1 if rank_cosine < rank_dot else 2
    movie_id = int(ctx.run.item_ids[pick])
    title = _title(ctx, movie_id)
    return Question(
        key=f"dot-cosine:{ctx.run.name}:{user_id}:{movie_id}",
        prompt=(f"**{title}** was liked by only {int(counts[pick])} people. For user "
                f"{user_id}, will the dot product or the cosine rank it higher?"),
        choices=choices,
        answer=answer,
        reveal=(f"**{title}: rank {rank_dot:,} by the dot product, {rank_cosine:,} by the "
                f"cosine** of {int(candidates.sum()):,}. Its vector is "
                f"{_length_note(v, pick)}: the cosine ignores length, the dot product rewards "
                "it."),
    )


def _rank_among(scores: np.ndarray, candidates: np.ndarray, item: int) -> int:
    """1-based rank of ``item`` among the ``candidates`` by ``scores`` (ties count against)."""
    return int((scores[candidates] > scores[item]).sum()) + 1


def _ordinal(n: int) -> str:
    """"" for 1, "2nd " for 2, ...: "the {ordinal}most liked"."""
    return "" if n == 1 else {2: "2nd ", 3: "3rd "}.get(n, f"{n}th ")


def _length_note(v: np.ndarray, item: int) -> str:
    lengths = np.linalg.norm(v, axis=1)
    share = float((lengths < lengths[item]).mean())
    return f"longer than {share:.0%} of the movies' vectors"


def _title(ctx: serving.Catalog, movie_id: int) -> str:
    return str(ctx.movies["title"].iloc[ctx.item_index(movie_id)])


# ---------------------------------------------------------------------- the class's votes
class Votes:
    """A class's answers, one file per question in ``folder`` (the runs folder's ``.quiz``):
    ``{"votes": {voter: choice}}``. Safe across threads and processes: every change takes an
    exclusive lock and replaces the file atomically; readers never see half a file."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def cast(self, key: str, voter: str, choice: int) -> None:
        """Records ``voter``'s ``choice`` for question ``key`` (replacing an earlier one)."""
        with self._locked(key) as path:
            votes = _read(path)
            if voter not in votes and len(votes) >= MAX_VOTERS:
                return
            votes[str(voter)] = int(choice)
            _write(path, votes)

    def tally(self, key: str, n_choices: int) -> np.ndarray:
        """Votes per choice (int64, ``n_choices``); votes outside the range are ignored."""
        counts = np.zeros(n_choices, np.int64)
        for choice in _read(self._path(key)).values():
            if isinstance(choice, int) and 0 <= choice < n_choices:
                counts[choice] += 1
        return counts

    def choice_of(self, key: str, voter: str) -> int | None:
        """``voter``'s recorded choice, or None."""
        choice = _read(self._path(key)).get(str(voter))
        return choice if isinstance(choice, int) else None

    def clear(self, key: str) -> None:
        """Forgets every vote on ``key`` (the lecturer, before the next class)."""
        with self._locked(key) as path:
            path.unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        # the key names runs and titles: a hash makes a safe, fixed-length file name
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, int]:
    try:
        votes = json.loads(path.read_text()).get("votes", {})
    except (OSError, ValueError, AttributeError):  # none yet, or a damaged file: no votes
        return {}
    return votes if isinstance(votes, dict) else {}


def _write(path: Path, votes: dict[str, int]) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".votes-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump({"votes": votes}, out)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
