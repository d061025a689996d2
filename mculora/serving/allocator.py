"""The C allocator's thresholds for serving: memory a prediction frees is kept for the next one, not handed back.

glibc's malloc serves every block above its mmap threshold (128 KiB at first, then rising to the largest block freed
so far) with a fresh mapping, whose pages the kernel faults in and zeroes on first touch, and gives heap memory above
its trim threshold back to the system on every free. A prediction allocates and frees blocks of a few MiB (the pitch
tracker's autocorrelation of a 5 s clip alone is 7 MiB), and in a fresh process each call paid for them again: the
speech encoder took 12.5 ms there, and 8.3 ms with the thresholds at 32 and 64 MiB (docs/performance.md). A process
then keeps at most 64 MiB it no longer uses.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on a 64-bit machine
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # glibc's own ratio when it raises the thresholds itself


def keep_freed_memory() -> bool:
    """Set glibc's thresholds as above, for the whole process. False where the C library has no such setting
    (not Linux, or not glibc); nothing changes there."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
