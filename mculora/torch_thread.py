"""The one thread on which the Predictor loads and runs its networks, whichever thread calls it.

torch runs its CPU kernels on an OpenMP team, and every thread that calls into torch gets a team of its own. libgomp
lets a team's workers spin between parallel regions, ready at once, only while it manages no more threads than the
machine has CPUs; a second team puts it over, and from then on every region wakes its workers from sleep. A web
server is exactly that case: the model loads on the main thread and each request runs on one of the server's worker
threads. On 2 cores `Predictor.predict` took 34-36 ms when one thread loaded and ran it, and 46-51 ms on a worker
thread once the main thread had loaded it (docs/performance.md). Running both on this thread keeps one team; calls
from several threads queue here, which on a CPU is what their kernels would do anyway.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

THREAD_NAME = "mculora-torch"

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _forget_parent_thread() -> None:
    # A forked child (ZeroGPU runs each GPU call in one) inherits the executor but not its thread.
    global _executor, _lock
    _executor, _lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_parent_thread)


def run(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` on the torch thread: its result, or its exception raised here."""
    global _executor
    if threading.current_thread().name.startswith(THREAD_NAME):
        return fn(*args, **kwargs)
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
    return _executor.submit(fn, *args, **kwargs).result()


def on_torch_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: every call of ``fn`` runs on the torch thread (`run`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return run(fn, *args, **kwargs)

    return wrapper
