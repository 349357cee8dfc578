"""Showing untrusted text (URL values, folder names, data-file titles) as plain text.

Streamlit renders markdown in titles, captions, alerts and ``st.markdown``; a value such as
``[Session expired](https://…)`` or ``![x](http://…)`` would become a live link or make the
browser fetch a URL. Every such value goes through :func:`plain` first.
"""

from __future__ import annotations

import re

# Backslash-escapable markdown punctuation (CommonMark), plus ':' (emoji and icon shortcodes)
# and '$' (LaTeX). Line breaks become spaces: one value, one line.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&\"'=^])")
# GitHub-flavoured autolinks ("https://…", "www.…", "a@b.org") ignore backslash escapes; an
# invisible word joiner after the scheme (or before '@') stops them and changes nothing seen.
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|xmpp|www)(?=\\?[:.])|(?=@)")
_WORD_JOINER = "\u2060"


def plain(value: object) -> str:
    """``value`` as text that markdown renders literally (no links, images, formatting), on
    one line."""
    text = " ".join(str(value).split())
    text = _MARKDOWN.sub(r"\\\1", text)
    return _AUTOLINK.sub(lambda m: (m.group(1) or "") + _WORD_JOINER, text)


def short(value: object, limit: int = 80) -> str:
    """:func:`plain` of ``value`` cut to ``limit`` characters (long folder or URL values)."""
    text = " ".join(str(value).split())
    return plain(text if len(text) <= limit else text[: limit - 1] + "…")
