"""The guided tour's examples on data other than ML-100K: found by title, else replaced by
films and a user the data has, so no step refers to a missing id."""

from dataclasses import replace

import numpy as np

from tests.synthetic import fit, make_world
from ui import tour


def test_films_missing_from_the_data_become_its_most_liked(tmp_path):
    ctx = fit(make_world(), tmp_path, "mf-bpr")
    ex = tour.examples(ctx)
    counts = ctx.split.train_pos.item_counts()
    assert counts[ctx.item_index(ex.movie)] == counts.max()  # no Star Wars here
    assert len(set(ex.likes)) == len(ex.likes) == 3
    for item in (ex.movie, ex.first, *ex.likes):
        ctx.item_index(item)  # raises for an id the run does not have
    assert ex.user == tour.USER  # user 14 exists in this data
    names = ex.names(ctx)
    assert names["movie"] == tour._title(ctx, ex.movie).rsplit(" (", 1)[0]
    for step in tour.STEPS:
        assert "{" not in tour.step_text(step, ctx)


def test_without_user_14_the_user_liked_the_movie_in_the_test_period(tmp_path):
    world = make_world()
    world = replace(world, ratings=world.ratings[world.ratings["user_id"] != tour.USER],
                    users=world.users[world.users["user_id"] != tour.USER])
    ctx = fit(world, tmp_path, "mf-bpr")
    ex = tour.examples(ctx)
    assert ex.user != tour.USER
    test = ctx.split.test_pos
    liked_later = test.user_index[test.item_index == ctx.item_index(ex.movie)]
    assert ctx.user_index(ex.user) in set(np.asarray(liked_later).tolist())


def test_ml_100k_titles_give_the_lecture_examples(tmp_path):
    world = make_world()
    titles = {1: "Toy Story (1995)", 2: "Star Wars (1977)", 3: "Lion King, The (1994)",
              4: "Aladdin (1992)"}
    movies = world.movies.assign(title=[titles.get(i, t) for i, t in
                                        zip(world.movies["item_id"], world.movies["title"],
                                            strict=True)])
    ctx = fit(replace(world, movies=movies), tmp_path, "mf-bpr")
    ex = tour.examples(ctx)
    assert (ex.movie, ex.first, ex.likes) == (2, 1, (1, 3, 4))
    assert ex.names(ctx)["movie"] == "Star Wars" and ex.names(ctx)["first"] == "Toy Story"


def test_a_title_listed_twice_is_still_found(tmp_path):
    """movies_for tells twice-listed titles apart with " · id N"; the tour still finds the
    film (the more liked copy) and names it without the suffix."""
    world = make_world()
    movies = world.movies.assign(title=[("Star Wars (1977)" if i in (3, 21) else t) for i, t in
                                        zip(world.movies["item_id"], world.movies["title"],
                                            strict=True)])
    ctx = fit(replace(world, movies=movies), tmp_path, "mf-bpr")
    ex = tour.examples(ctx)
    assert ex.movie == 3  # item 21 is liked by nobody
    assert ex.names(ctx)["movie"] == "Star Wars"
