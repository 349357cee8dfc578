"""What the compiled kernels (:mod:`recsys.models.compiled_sgd`, :mod:`recsys.models.compiled_cg`)
share: numba's math flags and the decorator that compiles them.

A kernel compiles on its first call in a process without a cache (1.5-3 CPU s per kernel and
argument types) and is cached on disk per CPU kind: beside the sources (``__pycache__``), else
in ``~/.cache/numba``, or in ``NUMBA_CACHE_DIR`` where that is set
(:func:`recsys.lessons.projection.use_numba_cache` sets it once the maps are drawn); a later
process loads it in about 0.4 CPU s on its first call. Where none of those folders can be
written (a read-only install and home), numba refuses ``cache=True`` when the module is
imported; :func:`kernel` then compiles without a cache, in every process, instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit

# Reassociation lets LLVM vectorise the dot products (their sums in another order, as BLAS
# does); no "nnan"/"ninf", so a diverging fit still yields NaN/inf for the checks to catch.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def kernel(function: Callable[..., Any]) -> Any:
    """``function`` compiled by numba (nopython, GIL released, :data:`FASTMATH`), cached on
    disk where a cache folder can be written, else compiled anew in each process."""
    try:
        return njit(cache=True, nogil=True, fastmath=FASTMATH)(function)
    except RuntimeError as err:  # "cannot cache function ...: no locator available"
        if "cannot cache" not in str(err):
            raise
        return njit(nogil=True, fastmath=FASTMATH)(function)
