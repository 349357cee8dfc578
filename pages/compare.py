"""Compare runs: an offline A/B test and team-draft interleaving of two runs on the test users,
and how many users each method needs to tell them apart (recsys.evaluation.online)."""

import streamlit as st

from ui import frame

frame.page("Compare runs", ":material/compare_arrows:")

from recsys.errors import RecsysError  # noqa: E402  (heavy imports after the heading)
from recsys.lessons import comparison  # noqa: E402
from ui import compare as data  # noqa: E402
from ui import shared  # noqa: E402
from ui.text import plain  # noqa: E402

KEY_PREFIX = "compare_"  # widget key prefix of this page
OWN_PAIR = "Your own pair…"

ml, run = shared.context()
st.caption(
    "Before a new model replaces the old one, it is tried on users. An **A/B test** splits the "
    "users in two and serves each half one model; **interleaving** shows every user one list "
    "that merges both and counts whose picks they click. Here the users are the test users, "
    "and a click is a movie they rated highly later, in the test period.")

book = shared.run_book()
by_name = book.by_name()
if not by_name:
    st.info("No trained runs yet: train one on the Train & evaluate page, or run "
            "`recsys prepare-class`.")
    st.stop()
pairs = {p.label: p for p in comparison.suggested_pairs(book.usable, shared.pinned_name())}


def pick_arm(column, side: str, default_run: str, default_variant: str):
    names = list(by_name)
    name = column.selectbox(f"Run {side}", names, index=names.index(default_run),
                            key=f"{KEY_PREFIX}run_{side.lower()}")
    variants = list(comparison.VARIANTS)
    variant = column.selectbox(f"Lists of {side}", variants,
                               index=variants.index(default_variant),
                               key=f"{KEY_PREFIX}variant_{side.lower()}",
                               help="; ".join(f"{v}: {d}" for v, d in comparison.VARIANTS.items()))
    return name, variant


def arms_text(name_a: str, variant_a: str, name_b: str, variant_b: str) -> str:
    """Which run and which lists each arm serves, the variants described once."""
    if variant_a == variant_b:
        return (f"A = {plain(name_a)}, B = {plain(name_b)}, both serving "
                f"{comparison.VARIANTS[variant_a]}.")
    return (f"A = {plain(name_a)} ({variant_a}): {comparison.VARIANTS[variant_a]}.  \n"
            f"B = {plain(name_b)} ({variant_b}): {comparison.VARIANTS[variant_b]}.")


left, middle, right = st.columns([4, 1, 1])
choice = left.selectbox("Pair", [*pairs, OWN_PAIR], key=KEY_PREFIX + "pair",
                        help="Pairs worth comparing among the runs here; or choose your own.")
k = middle.select_slider("List length k", [5, 10, 20], value=10, key=KEY_PREFIX + "k")
seed = right.number_input("Seed", 0, 2**31 - 1, 0, key=KEY_PREFIX + "seed",
                          help="Seeds the arm split, the coins, the bootstraps and the "
                               "simulation: the same seed gives the same numbers.")
if choice == OWN_PAIR:
    first = next(iter(pairs.values()), None)
    c1, c2 = st.columns(2)
    name_a, variant_a = pick_arm(c1, "A", first.run_a if first else run.name, "dot")
    name_b, variant_b = pick_arm(c2, "B", first.run_b if first else run.name, "dot")
    st.caption(arms_text(name_a, variant_a, name_b, variant_b))
else:
    pair = pairs[choice]
    name_a, variant_a, name_b, variant_b = (pair.run_a, pair.variant_a, pair.run_b,
                                            pair.variant_b)
    why = pair.why[0].upper() + pair.why[1:]
    st.caption(f"{plain(why if why.endswith(('.', '?')) else why + '.')}  \n"
               + arms_text(name_a, variant_a, name_b, variant_b))
run_a, run_b = by_name[name_a], by_name[name_b]

progress = st.progress(0.0, text=f"Serving A's top {k} to every test user…")
try:
    data.served(run_a, variant_a, k)
    progress.progress(0.3, text=f"Serving B's top {k} to every test user…")
    data.served(run_b, variant_b, k)
    progress.progress(0.6, text="A/B test, interleaving and the simulated experiments…")
    result = data.comparison(run_a, variant_a, run_b, variant_b, k, int(seed))
except RecsysError as err:
    progress.empty()
    st.error(f"These two cannot be compared: {plain(err)}", icon=":material/error:")
    st.stop()
progress.empty()
words = comparison.explain(result)  # numbers and metric names only: no untrusted text in them
n_users = len(result.user_ids)

# ---------------------------------------------------------------------- A/B
st.subheader("Offline A/B test")
st.caption(f"The {n_users:,} test users are split into two arms by a hash of their id; arm A "
           "is served A's list, arm B B's, and each list is scored on the movies that user "
           "liked later.")
st.dataframe(data.ab_table(result), hide_index=True, key=KEY_PREFIX + "ab",
             column_config={
                 "arm A": st.column_config.NumberColumn(format="%.4f"),
                 "arm B": st.column_config.NumberColumn(format="%.4f"),
                 "A − B": st.column_config.NumberColumn(format="%+.4f"),
                 "p (Welch)": st.column_config.NumberColumn(format="%.2g"),
                 "users needed": st.column_config.NumberColumn(
                     format="%,d", help="both arms, to find this difference 80 % of the time "
                                         "(from the per-user variance)"),
             })
left, right = st.columns([2, 3], gap="large")
left.plotly_chart(frame.presenter_figure(data.difference_chart(result)),
                  key=KEY_PREFIX + "differences",
                  config={"displayModeBar": False})
with right:
    for row in result.ab:
        st.caption(words[row.metric])

# ---------------------------------------------------------------------- interleaving
st.subheader("Team-draft interleaving")
il = result.interleaving
c1, c2, c3, c4 = st.columns(4)
c1.metric("Prefer A", f"{il.wins_a:,}", help="users who clicked more of A's picks")
c2.metric("Prefer B", f"{il.wins_b:,}", help="users who clicked more of B's picks")
c3.metric("Ties", f"{il.ties:,}", help=f"{il.no_clicks:,} of them clicked nothing")
c4.metric("A's share", f"{il.share_a:.1%}" if il.wins_a + il.wins_b else "n/a",
          help="of the users with a preference; 50 % = none")
st.caption(words["interleaving"])
st.caption(words["clicks"])

# ---------------------------------------------------------------------- the lesson
st.subheader("How many users does each method need?")
curve = result.curve
c1, c2, c3 = st.columns(3)
c1.metric(f"A/B on {curve.metric}", data.needed_text(curve.ab_users, result),
          help="users in both arms together for 80 % detection (simulated)")
c2.metric("Interleaving", data.needed_text(curve.interleaving_users, result),
          help="users for 80 % detection (simulated)")
if curve.ab_users and curve.interleaving_users:
    c3.metric("Interleaving needs", f"{curve.ab_users / curve.interleaving_users:.1f}× fewer")
st.plotly_chart(frame.presenter_figure(data.detection_chart(result)),
                key=KEY_PREFIX + "detection",
                config={"displayModeBar": False})
st.caption(words["lesson"])
st.caption("The table's \"users needed\" rests on the difference this one split of the users "
           "happened to show; the simulation on the difference over all test users (offline, "
           "every user has both lists), so the two can disagree when the difference is small.")
st.caption("Each simulated experiment draws that many users from the test users (with "
           "replacement), gives each a fresh coin for their A/B arm and a fresh interleaving, "
           "and counts a detection when the test's p-value is under 0.05 with the sign seen "
           "on all test users. Interleaving wins because every user judges both lists: the "
           "differences between users, which an A/B test has to average away, cancel out.")
