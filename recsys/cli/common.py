"""What both command modules of the CLI share: the data and run loaders (imported on first
call, so that start-up stays light), the ``--k`` check, the stderr line naming the data, and
output files that are checked before any work and written in one step."""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from recsys.errors import BadInputError

if TYPE_CHECKING:
    from recsys.data.loading import MovieLens
    from recsys.storage.runs import Run


# Loaders behind module-level names, imported on first call (tests replace these names).
def load_movielens(*args: Any, **kwargs: Any) -> MovieLens:
    """:func:`recsys.data.loading.load_movielens`."""
    from recsys.data.loading import load_movielens

    return load_movielens(*args, **kwargs)


def load_run(*args: Any, **kwargs: Any) -> Run:
    """:func:`recsys.storage.runs.load_run`."""
    from recsys.storage.runs import load_run

    return load_run(*args, **kwargs)


def print_source(ml: MovieLens) -> None:
    """One stderr line naming the data a command uses (and one per loading note)."""
    source = ml.source.replace(str(Path.home()) + os.sep, "~" + os.sep)  # shorter, still true
    print(f"data: {ml.name} from {source}", file=sys.stderr)
    for note in ml.notes:
        print(f"data: note: {note}", file=sys.stderr)


def check_k(k: int, available: int | None = None, what: str = "items") -> int:
    """``--k`` checked (at least 1) and capped at the ``available`` items it ranks: asking
    for more than exist returns them all, and never allocates room for a trillion."""
    if k < 1:
        raise BadInputError(f"--k must be at least 1, got {k}")
    if available is not None and k > available:
        print(f"note: --k {k} is more than the {available:,} {what}: showing all of them",
              file=sys.stderr)
        return available
    return k


# ---------------------------------------------------------------------------- output files
def check_new_output(path: Path, force: bool = False, flag: str = "--out") -> None:
    """Refuses, before any work, an output file that would replace a run's file, an existing
    file (unless ``force``), or could not be created (under a file, in a read-only folder)."""
    from recsys.storage.runs import FILES as RUN_FILES

    if path.name in RUN_FILES and all((path.parent / n).exists() for n in RUN_FILES):
        raise BadInputError(f"{flag} {path} is a file of the run in {path.parent}, which is "
                         "never overwritten: choose another file name")
    if os.path.lexists(path):
        if os.path.isdir(path):
            raise BadInputError(f"{flag} {path} is a folder: give a file name")
        if not force:
            raise BadInputError(f"{flag} {path} already exists: choose another name, or add "
                             "--force to replace it")
    check_writable_folder(path, flag)


def check_writable_folder(path: Path, flag: str) -> None:
    """Raises unless ``path`` could be created: its nearest existing ancestor is a folder we
    may write in."""
    parent = Path(os.path.abspath(path)).parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BadInputError(f"{flag} {path}: {parent} is a file, not a folder: choose a path in "
                         "a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInputError(f"{flag} {path}: no permission to write in {parent}: choose a folder "
                         "you can write to")


def write_new_file(path: Path, write: Callable[[BinaryIO], Any], force: bool = False) -> None:
    """Writes ``path`` through ``write(binary_file)`` in a temporary sibling, then puts it in
    place in one step: without ``force`` only if nothing has that name by then (of two
    writers one wins, the other gets a clear error); a failed write leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{time.time_ns()}")
    try:
        with open(tmp, "xb") as f:
            write(f)
        if force:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, path: Path) -> None:
    """Gives ``tmp``'s content the name ``path`` unless that name exists (a hard link never
    replaces; where links are not supported, a checked rename)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise BadInputError(f"--out {path} already exists (just created by another process): "
                         "choose another name, or add --force to replace it") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise BadInputError(f"--out {path} already exists: choose another name, or add "
                             "--force to replace it") from None
        os.replace(tmp, path)


def os_message(err: OSError) -> str:
    """A failed read or write in one line: which file, what happened, what to do."""
    where = f"{err.filename}: " if err.filename else ""
    what = err.strerror or str(err)
    hint = {errno.ENOSPC: "free some disk space or write elsewhere",
            errno.EDQUOT: "free some disk space or write elsewhere",
            errno.EACCES: "choose a file or folder you may use",
            errno.EPERM: "choose a file or folder you may use",
            errno.EROFS: "choose a folder on a writable disk"}.get(err.errno, "check the path")
    return f"{where}{what}: {hint}"
