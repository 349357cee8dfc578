"""Similar movies: embedding neighbours (FAISS) beside co-occurrence neighbours."""

import streamlit as st

from ui import frame

frame.page("Similar movies")

from recsys.errors import RecsysError  # noqa: E402
from recsys.evaluation import neighbours  # noqa: E402
from recsys.evaluation.lenses import lens as lens_named  # noqa: E402
from recsys.lessons import leaderboard  # noqa: E402
from recsys.serving import catalog as serving  # noqa: E402
from ui import display, links, shared, state  # noqa: E402
from ui.text import plain  # noqa: E402

KEY_PREFIX = "sim_"  # widget key prefix of this page
state.carry(*(KEY_PREFIX + name for name in ("query", "movie", "k", "lens", "nlist", "nprobe")))

ml, run = shared.context()
ctx = shared.catalog(run)

st.caption("Two ideas of *similar*: close in the model's embedding space, or liked by the same "
           "people (co-occurrence, no model at all). Where they agree, the embedding has "
           "learned taste; where they differ, it generalises — or errs.")

names = shared.movie_names(run)
titles = names.titles
linked = links.new_value(KEY_PREFIX, "movie", int, lambda m: m in titles)
if linked is not None:  # also a link followed in-session (e.g. from the tour)
    st.session_state[KEY_PREFIX + "movie"] = linked
    st.session_state[KEY_PREFIX + "query"] = ""  # a search could hide the linked movie

c1, c2 = st.columns([2, 3])
query = c1.text_input("Search a title", key=KEY_PREFIX + "query", placeholder="e.g. the godfather, "
                      "star wars 1977")
if query.strip():
    found = serving.find_movies(ctx, query, limit=50)
    if found.empty:
        st.info(f"No title contains “{plain(query)}”. Try fewer words or another spelling.")
        st.stop()
    options = found["item_id"].tolist()
else:
    options = list(names.by_popularity)
if st.session_state.get(KEY_PREFIX + "movie") not in options:
    st.session_state[KEY_PREFIX + "movie"] = options[0]
label = (f"Movie ({len(options)} match{'es' if len(options) != 1 else ''})" if query.strip()
         else f"Movie (all {len(options):,}, most rated first)")
movie_id = c2.selectbox(label, options, format_func=lambda i: titles.get(i, str(i)),
                        key=KEY_PREFIX + "movie")
links.write(KEY_PREFIX, "movie", movie_id)

c1, c2, _ = st.columns([1, 2, 1])
k = c1.slider("Neighbours", 5, 30, 10, key=KEY_PREFIX + "k")
lenses = list(serving.EMBEDDING_LENSES)
if st.session_state.get(KEY_PREFIX + "lens") not in lenses:
    st.session_state[KEY_PREFIX + "lens"] = serving.default_lens(ctx)
lens = c2.radio("Embedding similarity (lens)", lenses, horizontal=True, key=KEY_PREFIX + "lens",
                help="  \n".join(f"**{n}**: {serving.LENS_DESCRIPTIONS[n]}" for n in lenses)
                + f"  \nThe default for {run.train_config.model} is the lens measured best "
                  "for it (bench/NEIGHBOURS.md).")

try:
    result = serving.similar_movies(ctx, int(movie_id), k=k, lens=lens)
except RecsysError as err:
    st.error(plain(err))
    st.stop()

movie = result.movie
st.markdown(f"### {plain(movie['title'])}\n{plain(str(movie['genres']).replace('|', ', '))} · "
            f"{int(movie['popularity']):,} ratings")
if result.note:
    st.info(plain(result.note))
shared.metric_row({"Shared by both lists": f"{len(result.overlap)} of {k}",
                   "Overlap": f"{result.overlap_share:.0%}",
                   "Model": run.train_config.model})

# The two lists one above the other, each across the page: side by side at 1,280-1,366 px
# the genres were cut off entirely; the "in both" ticks carry the comparison.
ORDER = ["rank", "title", "also_cooccurrence", "also_embedding", "score", "popularity",
         "genres"]
config = {"score": st.column_config.NumberColumn(format="%.3f", width=56),
          "rank": st.column_config.NumberColumn("#", width=32),
          "title": st.column_config.TextColumn(width=300),
          "genres": st.column_config.TextColumn(help="click a cut cell to read all of it"),
          "popularity": st.column_config.NumberColumn("ratings", width=64,
                                                      help="popularity: number of ratings"),
          "also_cooccurrence": st.column_config.CheckboxColumn("in both", width=56),
          "also_embedding": st.column_config.CheckboxColumn("in both", width=56)}
mixed = lens_named(lens).co_likes > 0  # the hybrid lens: embedding plus co-likes
st.subheader(f"Embedding {'+ co-likes ' if mixed else ''}neighbours ({lens})")
if result.embedding is None:
    st.info("This model has no movie embeddings.")
else:
    st.caption(serving.LENS_DESCRIPTIONS[lens] + (
        " So it shares more with the co-occurrence list below by construction: pick *cosine* or "
        "*debiased* to compare a pure embedding list with the co-likes." if mixed else ""))
    st.dataframe(display.readable(result.embedding), hide_index=True,
                 key=KEY_PREFIX + "embedding",
                 column_config=config, column_order=ORDER)
st.subheader("Co-occurrence neighbours")
st.caption(serving.LENS_DESCRIPTIONS[serving.COOCCURRENCE_LENS])
st.dataframe(display.readable(result.cooccurrence), hide_index=True, key=KEY_PREFIX + "cooc",
             column_config=config, column_order=ORDER)
st.caption(f"Neighbours are movies with at least {neighbours.MIN_POSITIVES} known likes: rarer "
           "ones have vectors too noisy to show.")

st.subheader("How good are these lists, over the whole catalogue?")
# Short headers (the long ones were cut at 1,280-1,366 px); each says the rest in its help.
QUALITY_COLUMNS = {
    "list": st.column_config.TextColumn(width=200),
    "genre agreement ×random": st.column_config.NumberColumn(
        "genres ×random", help="genre agreement of each movie's top 10, weighted by rarity, "
                               "as a multiple of chance (1 = no better than random)"),
    "genre agreement, 100 most popular": st.column_config.NumberColumn(
        "genres ×random, top 100", help="the same for the 100 most popular movies, where "
                                         "popularity-driven lists show"),
    "popularity percentile": st.column_config.NumberColumn(
        "popularity pct", help="50 = neighbours as popular as a typical movie, 99 = only "
                               "blockbusters"),
    "co-watch lift": st.column_config.NumberColumn(
        "co-watch ×", help="how many times more often than chance the pairs were liked by "
                           "the same held-out users"),
    "co-watch lift, 100 most popular": st.column_config.NumberColumn(
        "co-watch ×, top 100", help="the same for the 100 most popular movies"),
}
measured = {}
if result.embedding is not None:
    measured[f"embedding · {lens}"] = shared.lens_quality(run, lens)
measured["co-occurrence · damped"] = shared.lens_quality(run, serving.COOCCURRENCE_LENS)
st.dataframe(leaderboard.neighbour_quality_table(measured), hide_index=True,
             key=KEY_PREFIX + "quality", column_config=QUALITY_COLUMNS)
st.caption("Every movie's top 10, never hand-picked. Genre agreement counts shared genres "
           "weighted by rarity (×random: 1 = no better than chance; \"100 most popular\" is "
           "where popularity lists show). Popularity percentile: 50 = neighbours as popular as "
           "a typical movie, 99 = only blockbusters. Co-watch lift: how much more often than "
           "chance the pairs were liked by the same held-out users.")

st.divider()
st.subheader("Exact vs approximate search (FAISS IVF)")
if shared.has_item_embeddings(run, "to index"):
    n = len(run.model.item_factors())
    c1, c2, c3 = st.columns([1, 1, 2])
    nlist = c1.slider("nlist (k-means cells)", 4, 128, 41, key=KEY_PREFIX + "nlist")
    nprobe = c2.slider("nprobe (cells searched)", 1, nlist, min(4, nlist),
                       key=KEY_PREFIX + "nprobe")
    with st.spinner("Timing exact and IVF search…"):
        report = shared.ann_report(run, nlist, nprobe)
    with c3:
        shared.metric_row({
            "IVF Recall@10": f"{report['recall@10']:.1%}",
            "Exact ms/query": f"{report['exact_ms']:.3f}",
            "IVF ms/query": f"{report['ivf_ms']:.3f}",
        })
    st.caption(f"{report['n_queries']} movies queried against all {n:,}; IVF searches "
               f"{nprobe} of {nlist} cells (≈{nprobe / nlist:.0%} of the catalogue). With only "
               f"{n:,} movies exact search is already fast — IVF pays off at millions.")
