"""One data-parallel training step, run by tests/test_distributed.py under torchrun (2 CPU processes, gloo).

Each process takes its share of the same global batch; rank 0 saves the parameters after the step.
"""

import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mculora.data import Dialogue, collate_dialogues
from mculora.dpft import ModalityDraw
from mculora.modalities import MODALITIES
from mculora.training.config import TrainConfig
from mculora.training.methods import build_method
from mculora.training.train import train_step

DIMS = {"audio": 6, "text": 8, "vision": 7}
COMBINATIONS = torch.tensor([0, 4, 5, 2])  # one per dialogue of the global batch


def global_batch() -> list[Dialogue]:
    rng = np.random.default_rng(0)
    length = 5  # equal lengths: every process averages its loss over the same number of utterances
    return [
        Dialogue(
            name=f"d{i}",
            utterances=[f"d{i}_{j}" for j in range(length)],
            features={m: rng.normal(size=(length, DIMS[m.value])).astype(np.float32) for m in MODALITIES},
            available={m: np.ones(length, dtype=bool) for m in MODALITIES},
            labels=rng.integers(0, 4, size=length),
            speakers=np.zeros(length, dtype=np.int64),
        )
        for i in range(len(COMBINATIONS))
    ]


def model_and_method():
    config = TrainConfig()
    config.model.hidden, config.model.depth = 16, 1
    config.model.dropout = config.model.lora_dropout = 0.0  # no randomness: the step must be reproducible exactly
    method = build_method("mcu-lora", config)
    torch.manual_seed(0)
    model = method.build_model(DIMS, 4)
    for name, p in model.named_parameters():
        if ".lora_B." in name:
            torch.nn.init.normal_(p, std=0.1)
    return model, method


def step(model, method, dialogues, combination, device="cpu"):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    routing = ModalityDraw.of(torch.as_tensor(combination))
    batch = collate_dialogues(dialogues).to(device)
    return train_step(model, method, optimizer, batch, routing, "classification")


if __name__ == "__main__":
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model, method = model_and_method()
    dialogues = global_batch()
    share = len(dialogues) // world
    mine = slice(rank * share, (rank + 1) * share)
    step(DistributedDataParallel(model, find_unused_parameters=True), method, dialogues[mine], COMBINATIONS[mine])
    if rank == 0:
        torch.save(model.state_dict(), sys.argv[1])
    dist.barrier()  # tear gloo down together: one process leaving early can abort the other
    dist.destroy_process_group()
