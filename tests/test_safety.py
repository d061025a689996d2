"""Nothing unsafe is loaded and nothing leaves the machine: no unpickling of user input, and the whole app flow (load,
serve, predict, ablate) with every connection beyond loopback refused."""

from __future__ import annotations

import ast
import ipaddress
import socket
import traceback
from pathlib import Path

import pytest
from bad_inputs import FACE, SPEECH, TEXT
from gradio_client import handle_file
from served import served_demo

from mculora.serving.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
# The one documented exception: the benchmark label pickles, read only from a data root the user names.
PICKLE_READERS = {"mculora/data/gcnet.py"}
UNSAFE_LOADS = {("pickle", "load"), ("pickle", "loads"), ("torch", "load"), ("joblib", "load"), ("pd", "read_pickle")}


def _unsafe_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            if (owner, node.func.attr) in UNSAFE_LOADS:
                found.append(f"{owner}.{node.func.attr} (line {node.lineno})")
            pickles = any(k.arg == "allow_pickle" and getattr(k.value, "value", False) for k in node.keywords)
            if node.func.attr == "load" and pickles:
                found.append(f"load(allow_pickle=True) (line {node.lineno})")
    return found


def test_nothing_is_unpickled_outside_the_benchmark_label_reader():
    sources = [*ROOT.glob("mculora/**/*.py"), ROOT / "app.py", *ROOT.glob("benchmarks/*.py")]
    offenders = {
        str(path.relative_to(ROOT)): calls
        for path in sources
        if (calls := _unsafe_calls(path)) and str(path.relative_to(ROOT)) not in PICKLE_READERS
    }
    assert not offenders
    assert _unsafe_calls(ROOT / "mculora/data/gcnet.py"), "the documented exception moved: update PICKLE_READERS"


def _is_loopback(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like stay on the machine
        return True
    host = address[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _record(attempts: list[str], what: str) -> None:
    """Note an attempt made by the app; the test's own gradio_client (which looks up its user-agent registry on the
    Hub) is refused all the same but is not the app."""
    if not any("gradio_client" in frame.filename for frame in traceback.extract_stack()):
        attempts.append(what)


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse (and record) every connection and name lookup that would leave the machine."""
    attempts: list[str] = []
    connect, connect_ex, lookup = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def guarded(original):
        def call(self, address):
            if not _is_loopback(address):
                _record(attempts, f"connect {address}")
                raise ConnectionRefusedError(f"test: no connections beyond loopback ({address})")
            return original(self, address)

        return call

    def guarded_lookup(host, *args, **kwargs):
        if host not in (None, "localhost") and not _is_loopback((host,)):
            _record(attempts, f"lookup {host}")
            raise socket.gaierror(f"test: no name lookups beyond loopback ({host})")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)
    return attempts


@pytest.mark.slow
def test_the_whole_app_flow_runs_with_only_loopback(loopback_only, demo_checkpoint):
    with pytest.raises(OSError):  # the guard works: a connection to a documentation address is refused and noted
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    with socket.socket() as raw, pytest.raises(ConnectionRefusedError):
        raw.connect(("192.0.2.1", 80))
    assert loopback_only == ["lookup 192.0.2.1", "connect ('192.0.2.1', 80)"]
    loopback_only.clear()
    predictor = Predictor.from_pretrained(demo_checkpoint, device="cpu")
    with served_demo(predictor, demo_checkpoint) as (_, client):
        inputs = [handle_file(str(FACE)), handle_file(str(SPEECH)), TEXT, True, True, True, None]
        result = client.predict(*inputs, api_name="/predict")
        ablation = client.predict(*inputs, api_name="/ablate")
    assert result["used"] == ["audio", "text", "vision"]
    assert len(ablation["rows"]) == 7
    assert loopback_only == []
