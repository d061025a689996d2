"""One thread on which Predictors load and run their networks, whichever thread calls them.

torch runs its CPU kernels on an OpenMP team, and every thread that calls into torch gets a team of its own. libgomp
lets a team's workers spin between parallel regions, ready at once, only while it manages no more threads than the
machine has CPUs; a second team puts it over, and from then on every region wakes its workers from sleep. A web
server is exactly that case: the model loads on the main thread and each request runs on one of the server's worker
threads, and each prediction then pays for waking its team (docs/reports/performance.md measures it). Running both on
one thread keeps one team; calls from several threads queue there, which on a CPU is what their kernels would do
anyway.

Calls that queue can also be served together (`TorchThread.gather`): whatever piled up while the thread was busy runs
as one batch, so concurrent requests share the encoders' and the network's weight reads and per-call overhead. None
waits for a batch to form: a call that finds the thread idle runs at once, alone.

That is a server's choice, not the library's: a `TorchThread` is made by the server (the app makes one at start-up)
and given to every Predictor it loads (``Predictor.from_pretrained(..., torch_thread=...)``). A Predictor without one
runs on whichever thread calls it and starts no thread.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

THREAD_NAME = "mculora-torch"


class TorchThread:
    """A single worker thread, started on first use; `run` executes a call there and returns its result."""

    def __init__(self, max_batch: int = 16) -> None:
        self.max_batch = max_batch  # the most calls `gather` serves as one batch
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._waiting: dict[Callable, list[tuple[object, Future]]] = {}  # `gather`'s calls not yet started, per fn
        _live.add(self)

    def _forget_parent_thread(self) -> None:
        # A forked child (ZeroGPU runs each GPU call in one) inherits the executor but not its thread.
        self._executor, self._lock, self._waiting = None, threading.Lock(), {}

    def _submit(self, fn: Callable[..., T], *args) -> Future:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
            return self._executor.submit(fn, *args)

    @staticmethod
    def is_current() -> bool:
        """Whether the calling thread is a torch thread (a call from there runs in place: it would wait on itself)."""
        return threading.current_thread().name.startswith(THREAD_NAME)

    def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)`` on this thread: its result, or its exception raised here."""
        if self.is_current():
            return fn(*args, **kwargs)
        return self._submit(functools.partial(fn, *args, **kwargs)).result()

    def gather(self, fn: Callable[[Sequence[T]], Sequence[R]], item: T) -> R:
        """``fn([item])[0]``, computed on this thread together with the other calls of the same ``fn`` that are
        waiting there: one ``fn(items)`` over up to `max_batch` of them, each caller getting its own result. ``fn``
        returns one result per item, in order. If the batch raises, each of its items is retried alone, so a bad
        input fails only its own caller."""
        if self.is_current():
            return fn([item])[0]
        future: Future = Future()
        with self._lock:
            waiting = self._waiting.setdefault(fn, [])
            waiting.append((item, future))
            first = len(waiting) == 1
        if first:  # the others find a batch already due to start
            self._submit(self._run_waiting, fn)
        return future.result()

    def _run_waiting(self, fn: Callable[[Sequence[T]], Sequence[R]]) -> None:
        with self._lock:
            waiting = self._waiting.pop(fn)
            batch, rest = waiting[: self.max_batch], waiting[self.max_batch :]
            if rest:
                self._waiting[fn] = rest
        if rest:
            self._submit(self._run_waiting, fn)
        try:
            results = list(fn([item for item, _ in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"{fn!r} gave {len(results)} results for {len(batch)} items")
        except Exception as error:
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            for item, future in batch:
                try:
                    future.set_result(fn([item])[0])
                except Exception as alone:
                    future.set_exception(alone)
            return
        except BaseException as error:  # an interrupt: no caller may wait forever
            for _, future in batch:
                future.set_exception(error)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)


_live: weakref.WeakSet[TorchThread] = weakref.WeakSet()
os.register_at_fork(after_in_child=lambda: [thread._forget_parent_thread() for thread in list(_live)])


def on_torch_thread(method: Callable[..., T]) -> Callable[..., T]:
    """Decorator of a method: it runs on its object's ``torch_thread`` when that is set, else in place."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        thread = self.torch_thread
        return method(self, *args, **kwargs) if thread is None else thread.run(method, self, *args, **kwargs)

    return wrapper
