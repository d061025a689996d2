"""The C allocator's thresholds for serving: memory a prediction frees is kept for the next one, not handed back.

glibc's malloc serves every block above its mmap threshold (128 KiB at first, then rising to the largest block freed
so far) with a fresh mapping, whose pages the kernel faults in and zeroes on first touch, and gives heap memory above
its trim threshold back to the system on every free. A prediction allocates and frees blocks of a few MiB (the pitch
tracker's autocorrelation of a 5 s clip alone is 7 MiB), and with the default thresholds each call pays for them
again; thresholds of 32 and 64 MiB keep them (docs/reports/performance.md measures both).

The trim threshold holds per arena, and glibc gives threads up to 8 arenas per CPU: a server's request threads (16
events at once, each decoding an upload) grow the served process as their arenas each keep what they freed. One arena
per CPU bounds what a process keeps unused at 64 MiB per CPU.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on a 64-bit machine
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc's own ratio when it raises the thresholds itself


def keep_freed_memory() -> bool:
    """Set glibc's thresholds and arena count as above, for the whole process (call it before starting threads).
    False where the C library has no such setting (not Linux, or not glibc); nothing changes there."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_ARENA_MAX, os.cpu_count() or 1),
    )
    return all(bool(mallopt(parameter, value)) for parameter, value in settings)
