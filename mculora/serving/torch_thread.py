"""One thread on which Predictors load and run their networks, whichever thread calls them.

torch runs its CPU kernels on an OpenMP team, and every thread that calls into torch gets a team of its own. libgomp
lets a team's workers spin between parallel regions, ready at once, only while it manages no more threads than the
machine has CPUs; a second team puts it over, and from then on every region wakes its workers from sleep. A web
server is exactly that case: the model loads on the main thread and each request runs on one of the server's worker
threads. On 2 cores `Predictor.predict` took 34-36 ms when one thread loaded and ran it, and 46-51 ms on a worker
thread once the main thread had loaded it (docs/performance.md). Running both on one thread keeps one team; calls
from several threads queue there, which on a CPU is what their kernels would do anyway.

That is a server's choice, not the library's: a `TorchThread` is made by the server (the app makes one at start-up)
and given to every Predictor it loads (``Predictor.from_pretrained(..., torch_thread=...)``). A Predictor without one
runs on whichever thread calls it and starts no thread.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

THREAD_NAME = "mculora-torch"


class TorchThread:
    """A single worker thread, started on first use; `run` executes a call there and returns its result."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        _live.add(self)

    def _forget_parent_thread(self) -> None:
        # A forked child (ZeroGPU runs each GPU call in one) inherits the executor but not its thread.
        self._executor, self._lock = None, threading.Lock()

    @staticmethod
    def is_current() -> bool:
        """Whether the calling thread is a torch thread (a call from there runs in place: it would wait on itself)."""
        return threading.current_thread().name.startswith(THREAD_NAME)

    def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)`` on this thread: its result, or its exception raised here."""
        if self.is_current():
            return fn(*args, **kwargs)
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        return self._executor.submit(fn, *args, **kwargs).result()


_live: weakref.WeakSet[TorchThread] = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: [thread._forget_parent_thread() for thread in list(_live)])


def on_torch_thread(method: Callable[..., T]) -> Callable[..., T]:
    """Decorator of a method: it runs on its object's ``torch_thread`` when that is set, else in place."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        thread = self.torch_thread
        return method(self, *args, **kwargs) if thread is None else thread.run(method, self, *args, **kwargs)

    return wrapper
