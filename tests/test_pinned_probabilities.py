"""The shipped checkpoints' probabilities on a few fixed inputs, pinned: a refactoring that changes what the
shipped model computes fails here. Regenerate the pins only when the checkpoints themselves are re-made:

    python tests/test_pinned_probabilities.py      # rewrites tests/pinned_probabilities.json
"""

import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PINS = Path(__file__).with_name("pinned_probabilities.json")
EXAMPLES = ROOT / "assets" / "examples"
# Every modality mix the examples allow, through MCULoRA and the MPLMM checkpoint beside it.
INPUTS = {
    "text": {"text": "I can't believe you did this to me!"},
    "face+text": {"image": EXAMPLES / "astronaut.jpg", "text": "what a lovely day"},
    "speech": {"audio": EXAMPLES / "happy_speech.wav"},
    "face+speech+text": {"image": EXAMPLES / "astronaut.jpg", "audio": EXAMPLES / "sad_speech.wav", "text": "go away"},
}


def shipped_probabilities() -> dict[str, dict[str, list[float]]]:
    from mculora.serving.predictor import Predictor

    checkpoints = ROOT / "checkpoints"
    predictor = Predictor.from_pretrained(checkpoints / "default", device="cpu", compare_with=[checkpoints / "mplmm"])
    return {
        method: {
            name: [predictor.predict(method=method, **inputs).probabilities[label] for label in predictor.labels]
            for name, inputs in INPUTS.items()
        }
        for method in predictor.methods
    }


def machine() -> str:
    """What decides the float kernels torch picks: its version and the CPU's vector instructions."""
    return f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}"


def test_the_shipped_checkpoints_give_their_pinned_probabilities() -> None:
    pinned = json.loads(PINS.read_text())
    now = shipped_probabilities()
    assert now.keys() == pinned["probabilities"].keys()
    # Float kernels move the last bits between hosts, even with the same torch and vector instructions (another
    # host of the same `machine()` moved them by up to 2.4e-7), so 1e-6: far below any change of what is computed.
    tolerance = 1e-6
    for method, rows in pinned["probabilities"].items():
        for name, expected in rows.items():
            torch.testing.assert_close(torch.tensor(now[method][name]), torch.tensor(expected), rtol=0, atol=tolerance)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(ROOT))
    PINS.write_text(json.dumps({"machine": machine(), "probabilities": shipped_probabilities()}, indent=1) + "\n")
    print(f"wrote {PINS}")
