"""The package's layering: serving (the Predictor, the demo, the app) and hosting load nothing from training, serving
nothing from hosting, and the core (the model, the networks, encoders, checkpoints, Hub downloads) imports no side, at
any depth.

    mculora/            core: modalities, dropout, lora, model, dpft, checkpoint, device, person, hub_download,
                        networks/, encoders/, preprocess/
    mculora/data/       benchmark data, batching and feature extraction (training side)
    mculora/training/   trainer, its config, the methods' training hooks (methods/), evaluation, metrics, calibration,
                        comparison, adaptation, adapter health
    mculora/recipes/    the shipped checkpoints' recipes (training side)
    mculora/serving/    Predictor, clips, plots, the demo's callbacks, server settings
    mculora/hosting/    publishing on the Hub, Space bundle
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mculora"
TRAINING_SIDE = ("mculora.training", "mculora.recipes", "mculora.data")
SIDE_FOLDERS = ("data", "training", "recipes", "serving", "hosting")


def imported_modules(path: Path) -> set[str]:
    """Every ``mculora…`` name a file imports, at any depth (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("mculora")}


def offending(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name.startswith(prefixes))


@pytest.mark.parametrize(
    "side, banned",
    [("serving", (*TRAINING_SIDE, "mculora.hosting")), ("hosting", TRAINING_SIDE)],
)
def test_serving_and_hosting_code_never_imports_training(side: str, banned: tuple[str, ...]) -> None:
    """Serving runs without the training side; publishing (hosting) builds on serving, never the other way."""
    found = {
        str(path.relative_to(ROOT)): offending(imported_modules(path), banned)
        for path in sorted((PACKAGE / side).rglob("*.py"))
    }
    assert {path: names for path, names in found.items() if names} == {}


def test_the_core_imports_no_side() -> None:
    """The model, the networks, encoders, preprocessing and checkpoints are what every side builds on: no import of
    theirs, at any depth (inside functions too), reaches the training side, serving or hosting."""
    sides = (*TRAINING_SIDE, "mculora.serving", "mculora.hosting")
    core = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in SIDE_FOLDERS]
    found = {str(p.relative_to(ROOT)): offending(imported_modules(p), sides) for p in core}
    assert {path: names for path, names in found.items() if names} == {}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, at any depth (``from package import name`` counts as the module
    ``package.name`` when there is one, else the package)."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in paths else base)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = {edge for edge in edges if edge in paths and edge != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for neighbour in graph[node]:
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_round_a_circle() -> None:
    """Drawn from every import (inside functions and type-checking blocks too), the package's modules form no
    circle: each depends on the ones below it only."""
    graph = import_graph()
    assert "mculora.serving.clip_result" in graph["mculora.serving.annotate"]  # the graph sees the imports
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_serving_a_prediction_loads_no_training_module(demo_checkpoint) -> None:
    """At run time, not only in the source: the app's module, the Predictor with a peer beside it, and a prediction
    through every modality's encoder leave nothing from the training side in ``sys.modules``."""
    script = f"""
import json, sys
import numpy as np
import app  # the served page's wiring
from mculora.checkpoint import sibling_checkpoints
from mculora.serving.predictor import Predictor
checkpoint = {str(demo_checkpoint)!r}
predictor = Predictor.from_pretrained(checkpoint, device="cpu", compare_with=sibling_checkpoints(checkpoint))
face = np.full((96, 96, 3), 128, dtype=np.uint8)
speech = (0.1 * np.sin(np.arange(32000) * 0.05)).astype(np.float32)
prediction = predictor.predict(image=face, audio=(16000, speech), text="what a lovely surprise")
print(json.dumps({{"modules": sorted(sys.modules), "methods": predictor.methods, "label": prediction.label}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["label"] and len(report["methods"]) >= 1
    assert offending(set(report["modules"]), TRAINING_SIDE) == []
    assert "mculora.serving.predictor" in report["modules"]  # the check looked at the right process
