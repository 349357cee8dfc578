"""Predict-then-reveal (recsys.lessons.quiz), the score's scale (anatomy.score_scale) and the
code view (recsys.lessons.code_view): answers agree with plain re-computations from the
model's scores, votes add up across processes, and the code shown is the code on disk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys.lessons import anatomy, code_view, quiz
from recsys.models.registry import MODEL_NAMES
from recsys.serving import catalog as serving
from tests.synthetic import fit, make_world


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return fit(make_world(), tmp_path_factory.mktemp("runs"), "mf-bpr")


@pytest.fixture(scope="module")
def movielens_ctx(tmp_path_factory):
    """An mf-als run on MovieLens 100K (its niche films make the dot-or-cosine question)."""
    from recsys.data.loading import load_movielens
    from recsys.data.protocol import SplitConfig
    from recsys.errors import DataUnavailableError
    from recsys.models.config import TrainConfig
    from recsys.storage.runs import train_run

    try:
        ml = load_movielens(download=False, progress=False)
    except DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"MovieLens 100K unavailable: {err}")
    path = tmp_path_factory.mktemp("ml-runs") / "als"
    run = train_run(ml, SplitConfig(), TrainConfig(model="mf-als", threads=1), path)
    return serving.Catalog.build(run, ml)


def plain_rank(scores: np.ndarray, candidates: np.ndarray, item: int) -> int:
    """The reference: the item's position in a full sort of the candidates, best first."""
    pool = np.flatnonzero(candidates)
    order = pool[np.argsort(-scores[pool], kind="stable")]
    better = scores[order] > scores[item]  # ties count against the movie
    return int(better.sum()) + 1


# ---------------------------------------------------------------------- the score's scale
def test_the_top_recommendation_ranks_first_and_the_scale_counts_the_unseen(ctx):
    for user_id in (3, 27):
        top = serving.recommend(ctx, user_id, k=5)
        scale = anatomy.score_scale(ctx, user_id, int(top["item_id"].iloc[0]))
        seen = len(ctx.seen[ctx.user_index(user_id)].indices)
        assert scale.rank == 1 and scale.percentile == pytest.approx(1.0)
        assert scale.candidates == ctx.model.n_items - seen == len(scale.scores)
        last = anatomy.score_scale(ctx, user_id, int(top["item_id"].iloc[-1]))
        assert last.rank == 5 and last.score == pytest.approx(top["score"].iloc[-1], abs=1e-5)


def test_a_seen_movie_is_ranked_among_the_unseen_ones(ctx):
    user = ctx.user_index(3)
    liked = int(ctx.run.item_ids[ctx.seen[user].indices[0]])
    scale = anatomy.score_scale(ctx, 3, liked)
    scores = ctx.model.score(np.array([user]))[0]
    candidates = np.ones(ctx.model.n_items, bool)
    candidates[ctx.seen[user].indices] = False
    candidates[ctx.item_index(liked)] = True
    assert scale.candidates == candidates.sum()
    assert scale.rank == plain_rank(scores, candidates, ctx.item_index(liked))


# ---------------------------------------------------------------------- questions
def test_the_rank_question_answers_with_the_band_of_the_real_rank(ctx):
    for position in (1, 5):
        movie = int(serving.recommend(ctx, 3, k=position)["item_id"].iloc[-1])
        question = quiz.rank_question(ctx, 3, movie)
        assert question.choices[question.answer] == "in the top 10"
        assert f"Rank {position} of" in question.reveal


def test_the_neighbour_question_hides_the_models_first_neighbour_among_others(ctx):
    question = quiz.neighbour_question(ctx, 1, lens="cosine")
    first = serving.similar_movies(ctx, 1, k=1, lens="cosine").embedding["title"].iloc[0]
    assert question.choices[question.answer] == first
    assert len(set(question.choices)) == len(question.choices) >= 3
    assert list(question.choices) == sorted(question.choices)  # one order for every browser
    assert "Alpha Space 1 " not in " ".join(question.choices)  # never the movie itself
    assert quiz.neighbour_question(ctx, 1, lens="cosine") == question


def test_the_dot_or_cosine_question_agrees_with_a_full_sort(movielens_ctx):
    ctx = movielens_ctx
    question = quiz.dot_or_cosine_question(ctx, 14)
    movie_id = int(question.key.rsplit(":", 1)[1])
    item, user = ctx.item_index(movie_id), ctx.user_index(14)
    u, v = ctx.model.user_factors()[user], ctx.model.item_factors()
    candidates = np.ones(len(v), bool)
    candidates[ctx.seen[user].indices] = False
    dot = ctx.model.score(np.array([user]))[0]
    cosine = v @ u / np.maximum(np.linalg.norm(v, axis=1) * np.linalg.norm(u), 1e-12)
    by_dot, by_cosine = plain_rank(dot, candidates, item), plain_rank(cosine, candidates, item)
    expected = 0 if by_dot < by_cosine else 1 if by_cosine < by_dot else 2
    assert question.answer == expected
    assert f"rank {by_dot:,} by the dot product, {by_cosine:,} by the cosine" in question.reveal
    liked = ctx.item_counts[ctx.item_counts > 0]
    assert ctx.item_counts[item] <= quiz.NICHE_SHARE * np.median(liked)
    # on this model a niche film's short vector ranks it higher by the cosine: the lesson
    assert question.answer == 1


# ---------------------------------------------------------------------- votes
def test_votes_replace_a_voters_earlier_choice_and_clear(tmp_path):
    votes = quiz.Votes(tmp_path / ".quiz")
    assert votes.tally("q", 3).tolist() == [0, 0, 0]
    votes.cast("q", "ann", 0)
    votes.cast("q", "bob", 2)
    votes.cast("q", "ann", 1)  # changed her mind
    assert votes.tally("q", 3).tolist() == [0, 1, 1]
    assert votes.choice_of("q", "ann") == 1 and votes.choice_of("q", "eve") is None
    assert votes.tally("other question", 3).sum() == 0
    votes.clear("q")
    assert votes.tally("q", 3).sum() == 0


def test_votes_from_several_processes_all_count(tmp_path):
    """Four processes (as the classroom's server processes) casting 40 votes each at once."""
    folder = tmp_path / ".quiz"
    code = ("import sys; from recsys.lessons.quiz import Votes; votes = Votes(sys.argv[1]); "
            "[votes.cast('q', f'{sys.argv[2]}-{i}', i % 3) for i in range(40)]")
    root = Path(__file__).resolve().parents[1]
    workers = [subprocess.Popen([sys.executable, "-c", code, str(folder), f"p{n}"], cwd=root)
               for n in range(4)]
    assert [worker.wait(60) for worker in workers] == [0, 0, 0, 0]
    assert quiz.Votes(folder).tally("q", 3).sum() == 160


def test_damaged_or_odd_vote_files_count_nothing_and_heal(tmp_path, monkeypatch):
    votes = quiz.Votes(tmp_path)
    votes.cast("q", "ann", 0)
    path = votes._path("q")
    path.write_text("{not json")
    assert votes.tally("q", 2).sum() == 0
    votes.cast("q", "bob", 1)
    assert votes.tally("q", 2).tolist() == [0, 1]
    votes.cast("q", "eve", 7)  # out of range for this question: not counted
    assert votes.tally("q", 2).sum() == 1
    monkeypatch.setattr(quiz, "MAX_VOTERS", 2)  # bob and eve are in
    votes.cast("q", "zed", 0)  # a third voter: over the cap
    assert votes.choice_of("q", "zed") is None
    votes.cast("q", "bob", 0)  # a known voter may still change their mind
    assert votes.choice_of("q", "bob") == 0


# ---------------------------------------------------------------------- the code that ran
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_shows_its_code_as_it_is_on_disk(model):
    view = code_view.training_code(model)
    assert view.maths and view.parts
    root = Path(code_view.__file__).resolve().parents[2]
    for part in view.parts:
        assert part.source.startswith(("def ", "@kernel\n"))  # a compiled kernel: decorated
        lines = (root / part.path).read_text().splitlines()
        on_disk = lines[part.first_line - 1 : part.first_line - 1 + part.source.count("\n")]
        assert [line.strip() for line in on_disk] == [
            line.strip() for line in part.source.splitlines()]


@pytest.mark.parametrize("model", ["mf-bpr", "mf-bce"])
def test_the_compiled_engine_shows_its_kernel(model):
    view = code_view.training_code(model, engine="compiled")
    assert "compiled_sgd.py" in view.parts[0].path and "_sgd_epoch(" in view.parts[0].source
    assert code_view.training_code(model, engine="torch") == code_view.training_code(model)


def test_an_unknown_model_has_no_code_view():
    with pytest.raises(KeyError):
        code_view.training_code("word2vec")
