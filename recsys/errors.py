"""The errors recsys raises on purpose: one small hierarchy that the CLI and the pages catch.

A :class:`RecsysError` is an expected failure whose message a person can act on: a value they
gave is not allowed (:class:`BadInputError`), a run folder cannot be used
(:class:`RunError`), no MovieLens source worked (:class:`DataUnavailableError`), training
diverged (:class:`TrainingDivergedError`). Anything else, a TypeError, AttributeError,
KeyError or a numpy ValueError from a bug, is a programming error: it stays a traceback in
the tests and the CLI, and an error box with its traceback in the app, and is never shown as
a friendly message or taken for a damaged run.

Each class also derives from the builtin its callers caught before the hierarchy existed
(ValueError, RuntimeError), so code written against those keeps working.
"""

from __future__ import annotations


class RecsysError(Exception):
    """An expected failure, with a message that says what happened and what to do."""


class BadInputError(RecsysError, ValueError):
    """A value given by a person (a flag, a form field, a URL, a config file) is not allowed:
    the message names it and what would be."""


class RunError(RecsysError, ValueError):
    """A run folder is missing, incomplete, damaged, or belongs to other data."""


class DataUnavailableError(RecsysError, RuntimeError):
    """No MovieLens source worked; the message says what to do, ``attempts`` why each source
    failed."""

    def __init__(self, message: str, attempts: list[str] | None = None) -> None:
        super().__init__(message)
        self.attempts = list(attempts or [])


class TrainingDivergedError(RecsysError, RuntimeError):
    """The loss or the parameters became NaN/inf: the run cannot be trusted."""
