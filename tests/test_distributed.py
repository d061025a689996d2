"""Data-parallel training (torchrun, gloo on CPU) matches single-process training."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import distributed_step  # noqa: E402

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.mark.slow
def test_two_process_step_matches_single_process_step(tmp_path):
    out = tmp_path / "ddp_state.pt"
    subprocess.run([*TORCHRUN, str(Path(distributed_step.__file__)), str(out)], check=True, timeout=300)
    ddp_state = torch.load(out, weights_only=True)

    model, method = distributed_step.model_and_method()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # torchrun runs each process with one thread; so does the reference, so that kernels sum in the same way.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        distributed_step.step(model, method, distributed_step.global_batch(), distributed_step.COMBINATIONS)
    finally:
        torch.set_num_threads(threads)
    single_state = model.state_dict()

    moved, largest_update = 0, 0.0
    for name, value in single_state.items():
        # Float sums run in a different order in two processes (and with other thread counts): allow 1e-5.
        torch.testing.assert_close(ddp_state[name], value, rtol=1e-4, atol=1e-5, msg=name)
        moved += int(not torch.equal(value, before[name]))
        largest_update = max(largest_update, float((value - before[name]).abs().max()))
    assert largest_update > 1e-2  # the step is large next to the tolerance
    # "a" is used only on rank 0 and "t" only on rank 1: both must move (their gradients are averaged).
    assert moved > len(single_state) // 2
    assert not torch.equal(single_state["head.lora_B.a.weight"], before["head.lora_B.a.weight"])
    assert not torch.equal(single_state["head.lora_B.t.weight"], before["head.lora_B.t.weight"])
    assert torch.equal(single_state["head.lora_B.tv.weight"], before["head.lora_B.tv.weight"])  # not in the batch


@pytest.mark.slow
def test_trainer_runs_under_torchrun(trainer_args, tmp_path):
    """Two processes train together and learn about what one process learns: both above chance (4 classes) on
    average over the 7 conditions, and within a few points of each other (their batches and draws differ, so the
    runs are not equal; the exact equivalence of one step is the test above)."""
    args = trainer_args("--model-hidden", "32", "--model-depth", "1", epochs=8)
    subprocess.run([*TORCHRUN, "-m", "mculora.training.train", *args], check=True, timeout=300)
    distributed = json.loads((tmp_path / "run" / "results.json").read_text())
    subprocess.run([sys.executable, "-m", "mculora.training.train", *args], check=True, timeout=300)
    single = json.loads((tmp_path / "run" / "results.json").read_text())
    assert (distributed["world_size"], single["world_size"]) == (2, 1)
    assert distributed["splits"] == single["splits"] == ["fold1"]
    means = [sum(r["conditions"][c]["accuracy"] for c in r["conditions"]) / 7 for r in (distributed, single)]
    assert min(means) > 0.3 and abs(means[0] - means[1]) < 0.08, means
