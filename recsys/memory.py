"""Memory checks before large dense allocations: refuse up front, with the numbers, rather
than be killed by the kernel half-way through a fit."""

from __future__ import annotations

import os

from recsys.errors import BadInputError


def available_bytes() -> int:
    """Memory the system can give this process now (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(what: str, needed: int, advice: str) -> None:
    """Raises ``ValueError`` naming ``needed`` and the available bytes when ``needed`` does
    not fit in 80% of the memory available now (the rest is headroom for everything else)."""
    available = available_bytes()
    if needed > 0.8 * available:
        raise BadInputError(
            f"{what} needs about {needed / 1e9:,.1f} GB ({needed:,} bytes) but only "
            f"{available / 1e9:,.1f} GB ({available:,} bytes) is available; {advice}"
        )
