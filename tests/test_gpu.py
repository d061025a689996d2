"""CPU/GPU parity: the same code on both devices gives the same predictions and the same training step.

Runs wherever CUDA is available (whatever MCULORA_DEVICE says: the devices are named here); skipped elsewhere with
the reason. `make test` leaves the rest of the suite on the CPU.
"""

import copy
from pathlib import Path

import distributed_step
import pytest
import torch

from mculora.serving.predictor import Predictor
from mculora.serving.server import gpu_fallback_warning

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason=f"no usable CUDA device (torch {torch.__version__}; {gpu_fallback_warning() or 'no NVIDIA driver'})",
)
CPU, GPU = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def predictors(demo_checkpoint):
    return Predictor.from_pretrained(demo_checkpoint, device=CPU), Predictor.from_pretrained(
        demo_checkpoint, device=GPU
    )


def test_predictions_match(predictors, speech_and_face):
    audio, image = speech_and_face
    cpu, gpu = (p.predict(image=image, audio=audio, text="What a lovely surprise!") for p in predictors)
    assert gpu.used == cpu.used and gpu.label == cpu.label
    for label, p in cpu.probabilities.items():
        assert gpu.probabilities[label] == pytest.approx(p, abs=1e-4)
    for part in ("base", "shared", "adapter"):
        for label, value in getattr(cpu.contributions, part).items():
            assert getattr(gpu.contributions, part)[label] == pytest.approx(value, abs=1e-3)


def test_a_mixed_combination_batch_matches(predictors, speech_and_face):
    """All 7 combinations in one batch: each row is routed to its own adapters on both devices."""
    audio, image = speech_and_face
    cpu, gpu = (p.predict_combinations(image=image, audio=audio, text="What a lovely surprise!") for p in predictors)
    assert [r.combination for r in gpu] == [r.combination for r in cpu] and len(cpu) == 7
    for a, b in zip(cpu, gpu, strict=True):
        for label, p in a.probabilities.items():
            assert b.probabilities[label] == pytest.approx(p, abs=1e-4), a.combination


def test_a_training_step_matches():
    model, method = distributed_step.model_and_method()
    twin = copy.deepcopy(model).to(GPU)
    dialogues, combinations = distributed_step.global_batch(), distributed_step.COMBINATIONS
    loss_cpu = distributed_step.step(model, method, dialogues, combinations)
    loss_gpu = distributed_step.step(twin, method, dialogues, combinations, device=GPU)
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-4)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def speech_and_face():
    examples = Path(__file__).resolve().parents[1] / "assets" / "examples"
    return str(examples / "happy_speech.wav"), str(examples / "astronaut.jpg")
