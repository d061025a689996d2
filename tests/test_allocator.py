"""`mculora.serving.allocator.keep_freed_memory`: blocks of a few MiB come from the heap instead of a fresh mapping
each."""

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import ctypes, sys
import numpy as np
from mculora.serving.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mapped_blocks_while_holding(mib):
    block = np.ones(mib * 2**20, dtype=np.uint8)
    held = libc.mallinfo2().hblks
    del block
    return held

if sys.argv[1] == "tuned":
    assert keep_freed_memory()
before = libc.mallinfo2().hblks
print(mapped_blocks_while_holding(8) - before)
"""


def mapped_blocks(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60)
    if result.returncode and "mallinfo2" in result.stderr:
        pytest.skip("the C library is not glibc >= 2.33 (no mallinfo2 to observe the allocator)")
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_block_of_a_few_mib_comes_from_the_heap_once_tuned() -> None:
    assert mapped_blocks("default") == 1  # glibc as it starts: a mapping of its own
    assert mapped_blocks("tuned") == 0


POLICY_PROBE = """
import sys
import mculora.serving.allocator as allocator

calls = []
allocator.keep_freed_memory = lambda: calls.append("set") or True  # before anything imports it

from mculora.serving.predictor import Predictor

Predictor.from_pretrained(sys.argv[1], device="cpu")
loaded = len(calls)
sys.path.insert(0, sys.argv[2])
import app
from mculora.serving import page

page.launch = lambda *args, **kwargs: None  # no server: only what main() sets up
sys.argv = ["app.py", "--checkpoint", sys.argv[1], "--compare-with"]
app.main()
print(loaded, len(calls))
"""


def test_the_app_sets_the_allocator_and_loading_the_library_does_not(demo_checkpoint) -> None:
    """A process-wide setting is the server's choice: `python app.py` makes it, `Predictor.from_pretrained` does not."""
    root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", POLICY_PROBE, str(demo_checkpoint), root], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["0", "1"]
