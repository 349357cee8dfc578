"""The ``recsys`` command: data, train, evaluate, export and pin (``main``), the serving
commands recommend, similar, similar-users and project (``serving``), and the argument checks
and safe file writes both share (``common``)."""
