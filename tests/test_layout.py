"""The package's layering: serving (the Predictor, the demo, the app) and hosting load nothing from training, and the
core (the model, its adapters, methods, encoders, checkpoints) imports neither at module level.

    mculora/            core: modalities, dropout, lora, model, dpft, config, checkpoint, device, methods/, encoders/,
                        preprocess/
    mculora/data/       benchmark data, batching and feature extraction (training side)
    mculora/training/   trainer, evaluation, metrics, calibration, comparison, adaptation, adapter health
    mculora/recipes/    the shipped checkpoints' recipes (training side)
    mculora/serving/    Predictor, clips, plots, the demo's callbacks, server settings
    mculora/hosting/    Hub round trip, Space bundle
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


def imported_modules(path: Path, module_level_only: bool) -> set[str]:
    """Every ``mculora…`` module a file imports (only its top-level statements with ``module_level_only``)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("mculora")}


def offending(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name.startswith(prefixes))


@pytest.mark.parametrize("side", ["serving", "hosting"])
def test_serving_and_hosting_code_never_imports_training(side: str) -> None:
    found = {
        str(path.relative_to(ROOT)): offending(imported_modules(path, module_level_only=False), TRAINING_SIDE)
        for path in sorted((PACKAGE / side).rglob("*.py"))
    }
    assert {path: names for path, names in found.items() if names} == {}


def test_the_core_imports_no_side_at_module_level() -> None:
    """The model, its methods and encoders are what every side builds on; a training hook of a method may import
    training code inside its body (it runs only while training)."""
    core = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in ("data", "training", "recipes")]
    core = [p for p in core if p.relative_to(PACKAGE).parts[0] not in ("serving", "hosting")]
    sides = (*TRAINING_SIDE, "mculora.serving")
    found = {str(p.relative_to(ROOT)): offending(imported_modules(p, module_level_only=True), sides) for p in core}
    assert {path: names for path, names in found.items() if names} == {}


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
