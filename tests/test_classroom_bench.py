"""The classroom load generator (bench/classroom.py): its reading of Streamlit's messages, and
two simulated students on a real server, every page complete and without exceptions."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import classroom

# Page -> (its title, element kinds it always draws besides the frame's headings and links).
PAGES = {
    "home": ("MovieLens embeddings", {"plotly_chart", "metric"}),
    "recommendations": ("Recommendations", {"dataframe", "selectbox", "slider"}),
    "similar movies": ("Similar movies", {"dataframe", "text_input", "radio"}),
    "embedding map": ("Embedding map", {"plotly_chart", "radio", "selectbox"}),
    "profile": ("Build your profile", {"multiselect", "dataframe", "plotly_chart"}),
}


def _element(path: list[int], kind: str, text: str = "", cacheable: bool = False,
             digest: str = "") -> ForwardMsg:
    msg = ForwardMsg(hash=digest)
    msg.metadata.delta_path.extend(path)
    msg.metadata.cacheable = cacheable
    element = msg.delta.new_element
    if kind == "heading":
        element.heading.body = text
    elif kind == "exception":
        element.exception.type, element.exception.message = "ValueError", text
    else:
        element.markdown.body = text
    return msg


def _finished() -> ForwardMsg:
    return ForwardMsg(script_finished=ForwardMsg.FINISHED_SUCCESSFULLY)


def test_decoder_keeps_what_stays_on_screen_and_resolves_cached_elements():
    cache = classroom.MessageCache()
    first = classroom.RunDecoder(cache)
    for msg in (_element([0, 0], "heading", "Title"),
                _element([0, 1], "exception", "boom"),  # a spinner-like placeholder, replaced
                _element([0, 1], "markdown", "big", cacheable=True, digest="h1"),
                _finished()):
        first.feed(msg, 0.1)
    assert first.done and first.first_heading == 0.1
    assert first.kinds() == Counter(heading=1, markdown=1)
    assert first.exceptions == ["ValueError: boom"]  # counted although replaced
    assert cache.hashes() == ["h1"]

    second = classroom.RunDecoder(cache)  # the next run refers to the cached element
    reference = ForwardMsg(ref_hash="h1")
    reference.metadata.delta_path.extend([0, 2])
    second.feed(reference, 0.0)
    second.feed(_finished(), 0.0)
    assert second.kinds() == Counter(markdown=1) and second.error is None
    for _ in range(cache.max_age + 1):  # unused for longer than the server's age: dropped
        cache.run_finished()
    assert cache.hashes() == []


@pytest.mark.movielens
def test_two_students_browse_every_page(tmp_path):
    from recsys.data.loading import load_movielens
    from recsys.errors import DataUnavailableError

    try:
        load_movielens(download=False, progress=False)
    except DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"MovieLens 100K unavailable: {err}")
    out = tmp_path / "views.json"
    assert classroom.main(["--runs-dir", str(tmp_path / "runs"), "--prepare", "default",
                           "--students", "2",
                           "--visits", "1", "--think", "0,0.1", "--ramp", "0",
                           "--json", str(out)]) == 0
    views = json.loads(out.read_text())
    students = [v for v in views if v["students"] == "2"]
    assert Counter(v["page"] for v in students) == {page: 2 for page in PAGES}
    assert sum(v["cpu"] for v in students) > 0  # the server's CPU was read and shared out
    for view in views:  # the cold first visit and the two students'
        where = f"{view['students']} / {view['page']}?{view['query']}"
        assert view["error"] is None and view["seconds"] is not None, where
        assert view["exceptions"] == [], where
        title, kinds = PAGES[view["page"]]
        assert title in view["headings"][0], where
        assert kinds <= set(view["kinds"]), where
        assert view["kinds"]["page_link"] >= 7, where  # the app's own sidebar navigation
