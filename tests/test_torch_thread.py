"""The Predictor loads and runs on one thread whichever thread calls it (`mculora.torch_thread`): the property that
keeps a served process at one OpenMP team."""

import os
import select
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mculora import torch_thread
from mculora.checkpoint import CheckpointError
from mculora.predictor import NothingToPredict, Predictor


def test_calls_from_any_thread_run_on_one_thread_and_return_its_result() -> None:
    callers = [threading.main_thread().ident]
    with ThreadPoolExecutor(4) as pool:
        ran_on = [torch_thread.run(threading.get_ident)] + list(
            pool.map(lambda _: torch_thread.run(threading.get_ident), range(8))
        )
        callers += list(pool.map(lambda _: threading.get_ident(), range(8)))
    assert len(set(ran_on)) == 1
    assert ran_on[0] not in callers
    assert torch_thread.run(lambda a, b=0: a + b, 2, b=3) == 5


def test_exceptions_reach_the_caller_with_their_type_and_message() -> None:
    def fail() -> None:
        raise ValueError("audio contains NaN samples")

    with pytest.raises(ValueError, match="NaN samples"):
        torch_thread.run(fail)
    assert torch_thread.run(lambda: "still serving") == "still serving"


def test_a_call_made_on_the_torch_thread_runs_in_place() -> None:
    """A decorated function calling another must not wait for the thread it is running on."""

    @torch_thread.on_torch_thread
    def inner() -> int:
        return threading.get_ident()

    @torch_thread.on_torch_thread
    def outer() -> tuple[int, int]:
        return threading.get_ident(), inner()

    here, nested = outer()
    assert here == nested


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_thread_of_its_own() -> None:
    """ZeroGPU runs calls in a forked process, which inherits the executor but not its thread."""
    torch_thread.run(lambda: None)  # the parent's thread exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, str(torch_thread.run(lambda: 6 * 7)).encode())
        os._exit(0)
    os.close(write)
    ready = []
    try:
        ready, _, _ = select.select([read], [], [], 30)
        assert ready, "the forked child's call never ran (it waited for the parent's thread)"
        assert os.read(read, 16) == b"42"
    finally:
        os.close(read)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_the_predictor_predicts_on_the_torch_thread(predictor, monkeypatch) -> None:
    threads = []
    featurize = predictor.featurizer.featurize

    def recording(**inputs):
        threads.append(threading.current_thread().name)
        return featurize(**inputs)

    monkeypatch.setattr(predictor.featurizer, "featurize", recording)
    predictor.predict(text="what a lovely surprise")
    predictor.predict_combinations(text="what a lovely surprise")
    with pytest.raises(NothingToPredict):
        predictor.predict(text="   ")
    assert threads and all(name.startswith(torch_thread.THREAD_NAME) for name in threads)


def test_the_predictor_loads_on_the_torch_thread(demo_checkpoint, monkeypatch) -> None:
    loaded_on = []

    def recording(*args, **kwargs):
        loaded_on.append(threading.current_thread().name)
        raise CheckpointError("stop after recording the thread")

    monkeypatch.setattr("mculora.predictor.load_checkpoint", recording)
    with pytest.raises(CheckpointError, match="stop after"):
        Predictor.from_pretrained(demo_checkpoint, device="cpu")
    assert loaded_on and loaded_on[0].startswith(torch_thread.THREAD_NAME)
