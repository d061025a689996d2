"""A Predictor given a `TorchThread` loads and runs on it whichever thread calls (`mculora.serving.torch_thread`): the
property that keeps a served process at one OpenMP team. Without one it starts no thread (the server's choice)."""

import os
import select
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mculora.checkpoint import CheckpointError
from mculora.serving.predictor import NothingToPredict, Predictor
from mculora.serving.torch_thread import THREAD_NAME, TorchThread, on_torch_thread

FACE = Path(__file__).resolve().parents[1] / "assets" / "examples" / "astronaut.jpg"


def test_calls_from_any_thread_run_on_one_thread_and_return_its_result() -> None:
    thread = TorchThread()
    callers = [threading.main_thread().ident]
    with ThreadPoolExecutor(4) as pool:
        ran_on = [thread.run(threading.get_ident)] + list(pool.map(lambda _: thread.run(threading.get_ident), range(8)))
        callers += list(pool.map(lambda _: threading.get_ident(), range(8)))
    assert len(set(ran_on)) == 1
    assert ran_on[0] not in callers
    assert thread.run(lambda a, b=0: a + b, 2, b=3) == 5


def test_exceptions_reach_the_caller_with_their_type_and_message() -> None:
    thread = TorchThread()

    def fail() -> None:
        raise ValueError("audio contains NaN samples")

    with pytest.raises(ValueError, match="NaN samples"):
        thread.run(fail)
    assert thread.run(lambda: "still serving") == "still serving"


def test_a_call_made_on_the_torch_thread_runs_in_place() -> None:
    """A decorated method calling another must not wait for the thread it is running on."""

    class Worker:
        torch_thread = TorchThread()

        @on_torch_thread
        def inner(self) -> int:
            return threading.get_ident()

        @on_torch_thread
        def outer(self) -> tuple[int, int]:
            return threading.get_ident(), self.inner()

    here, nested = Worker().outer()
    assert here == nested != threading.get_ident()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_thread_of_its_own() -> None:
    """ZeroGPU runs calls in a forked process, which inherits the executor but not its thread."""
    thread = TorchThread()
    thread.run(lambda: None)  # the parent's thread exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, str(thread.run(lambda: 6 * 7)).encode())
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


def test_the_predictor_decodes_on_its_caller_and_encodes_on_the_torch_thread(predictor, monkeypatch) -> None:
    """Decoding and the face mesh run on the request's own thread, so that they overlap another request's encoders
    and model; every torch kernel runs on the torch thread."""
    threads = {"prepare": [], "encode_many": []}
    for step in threads:
        original = getattr(predictor.featurizer, step)

        def recording(*args, step=step, original=original, **kwargs):
            threads[step].append(threading.current_thread().name)
            return original(*args, **kwargs)

        monkeypatch.setattr(predictor.featurizer, step, recording)
    predictor.predict(image=FACE, text="what a lovely surprise")
    predictor.predict_combinations(text="what a lovely surprise")
    with pytest.raises(NothingToPredict):
        predictor.predict(text="   ")
    assert threads["prepare"] == [threading.current_thread().name] * 3
    assert len(threads["encode_many"]) == 2 and all(name.startswith(THREAD_NAME) for name in threads["encode_many"])


def test_the_predictor_loads_on_the_torch_thread(demo_checkpoint, monkeypatch) -> None:
    loaded_on = []

    def recording(*args, **kwargs):
        loaded_on.append(threading.current_thread().name)
        raise CheckpointError("stop after recording the thread")

    monkeypatch.setattr("mculora.serving.predictor.load_checkpoint", recording)
    with pytest.raises(CheckpointError, match="stop after"):
        Predictor.from_pretrained(demo_checkpoint, device="cpu", torch_thread=TorchThread())
    with pytest.raises(CheckpointError, match="stop after"):
        Predictor.from_pretrained(demo_checkpoint, device="cpu")
    assert loaded_on[0].startswith(THREAD_NAME)
    assert loaded_on[1] == threading.current_thread().name


def test_a_predictor_without_a_torch_thread_runs_on_its_caller_and_starts_no_thread(demo_checkpoint) -> None:
    """The library changes nothing process-wide unless the server asks: no thread appears, the caller does the work."""
    before = {thread.ident for thread in threading.enumerate()}
    plain = Predictor.from_pretrained(demo_checkpoint, device="cpu")
    ran_on = []
    encode = plain.featurizer.encode_many
    plain.featurizer.encode_many = lambda prepared: ran_on.append(threading.get_ident()) or encode(prepared)
    assert plain.predict(text="what a lovely surprise").label in plain.labels
    assert ran_on == [threading.get_ident()]
    assert plain.torch_thread is None
    started = [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith(THREAD_NAME)]
    assert started == []


def hold(thread: TorchThread) -> threading.Event:
    """Keep ``thread`` busy until the returned event is set, so that calls queue behind it."""
    release, started = threading.Event(), threading.Event()
    threading.Thread(target=thread.run, args=(lambda: started.set() or release.wait(30),), daemon=True).start()
    assert started.wait(30)
    return release


def wait_until_queued(thread: TorchThread, count: int) -> None:
    for _ in range(3000):
        if sum(len(waiting) for waiting in thread._waiting.values()) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} calls never queued")


def test_calls_that_queue_are_gathered_into_one_batch_and_each_gets_its_own_result() -> None:
    thread, batches = TorchThread(max_batch=4), []

    def square_all(items):
        batches.append(list(items))
        return [item * item for item in items]

    assert thread.gather(square_all, 3) == 9  # an idle thread: alone, at once
    release = hold(thread)
    with ThreadPoolExecutor(6) as pool:
        results = [pool.submit(thread.gather, square_all, n) for n in range(6)]
        wait_until_queued(thread, 6)
        release.set()
        assert [result.result(timeout=30) for result in results] == [n * n for n in range(6)]
    assert batches[0] == [3]
    assert sorted(len(batch) for batch in batches[1:]) == [2, 4]  # six queued, at most max_batch=4 at a time
    assert sorted(item for batch in batches[1:] for item in batch) == list(range(6))


def test_a_bad_item_fails_only_its_own_caller() -> None:
    thread = TorchThread()

    def invert_all(items):
        return [1 / item for item in items]

    release = hold(thread)
    with ThreadPoolExecutor(3) as pool:
        results = [pool.submit(thread.gather, invert_all, n) for n in (2, 0, 4)]
        wait_until_queued(thread, 3)
        release.set()
        assert results[0].result(timeout=30) == 0.5 and results[2].result(timeout=30) == 0.25
        with pytest.raises(ZeroDivisionError):
            results[1].result(timeout=30)
    assert thread.gather(invert_all, 8) == 0.125  # still serving


def test_concurrent_predictions_run_as_one_batch_and_match_predictions_made_alone(predictor, monkeypatch) -> None:
    """Requests that queue behind a busy torch thread are encoded and run through the network together; each gets
    what it would get alone (up to float rounding: batched kernels sum in another order), its own reasons included."""
    requests = [
        {"image": FACE, "text": "what a lovely surprise"},
        {"audio": FACE.with_name("sad_speech.wav"), "text": "go away"},
        {"text": "I can't believe you did this to me!"},
        {"image": FACE, "audio": FACE.with_name("happy_speech.wav"), "text": "   "},
        {"text": "we won the final", "method": "mplmm"} if "mplmm" in predictor.methods else {"text": "we won"},
    ]
    alone = [predictor.predict(**request) for request in requests]
    sizes = []
    encode_many = predictor.featurizer.encode_many
    monkeypatch.setattr(predictor.featurizer, "encode_many", lambda all: sizes.append(len(all)) or encode_many(all))
    release = hold(predictor.torch_thread)
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(lambda r=request: predictor.predict(**r)) for request in requests]
        wait_until_queued(predictor.torch_thread, len(requests))
        release.set()
        together = [future.result(timeout=120) for future in futures]
    assert sizes == [len(requests)]
    for one, batched in zip(alone, together, strict=True):
        assert (batched.used, batched.missing, batched.method) == (one.used, one.missing, one.method)
        assert batched.label == one.label
        for label, p in one.probabilities.items():
            assert abs(batched.probabilities[label] - p) < 1e-5
        for part in ("base", "shared", "adapter"):
            for label, value in getattr(one.contributions, part).items():
                assert abs(getattr(batched.contributions, part)[label] - value) < 1e-4
        assert batched.contributions.combination == one.contributions.combination
