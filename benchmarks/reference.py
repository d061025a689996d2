"""The fusion forward against the reference implementation's own model, same shapes, same threads, one run.

    python benchmarks/reference.py --reference PATH/TO/MCULoRA-clone [--repeats 20]

PATH is a clone of the reference code (gdace829/MCULoRA), used from where it lies: its `build_model` builds its
network (IEMOCAP-4 settings: hidden 256, depth 4, 2 heads; wav2vec-large, DeBERTa-large and MANet dims 512, 1024,
1024), and ours is built with the same sizes. Nothing of it is copied here. Both run in eval mode without gradients
on the same random features, complete inputs, at batch 1 and 32 for one utterance and a 30-utterance dialogue; and
one input under all 7 combinations (ours: one batched pass; the reference: one call per combination, the only way
its forward takes a combination). Prints a markdown table of medians and ratios.

Its training script's epoch time is compared separately (docs/performance.md gives the commands): it reads
hard-coded data paths from its config.py, which a scratch copy points at a synthetic set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from suite import median_ms  # benchmarks/suite.py, beside this file

from mculora.modalities import MODALITIES, mask_table
from mculora.model import MCULoRA, MCULoRAConfig

DIMS = {"audio": 512, "text": 1024, "vision": 1024}


def reference_model(path: Path):
    """The reference network from its clone, as its training script builds it for IEMOCAP-4."""
    sys.path[:0] = [str(path), str(path / "MCULoRA")]
    from utils import build_model  # the clone's MCULoRA/utils.py

    settings = argparse.Namespace(
        hidden=256,
        n_classes=4,
        depth=4,
        num_heads=2,
        drop_rate=0.5,
        attn_drop_rate=0.0,
        no_cuda=True,
        device=torch.device("cpu"),
    )
    return build_model(settings, DIMS["audio"], DIMS["text"], DIMS["vision"]).eval()


def split(features: torch.Tensor) -> dict:
    """The reference's input [L, B, 2560] as ours: per modality [B, L, D]."""
    bounds = torch.tensor(list(DIMS.values())).cumsum(0).tolist()
    starts = [0, *bounds[:-1]]
    return {
        m: features[:, :, s:e].permute(1, 0, 2).contiguous() for m, s, e in zip(MODALITIES, starts, bounds, strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a clone of gdace829/MCULoRA")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not (args.reference / "MCULoRA" / "utils.py").is_file():
        raise SystemExit(f"error: {args.reference} is not a clone of the reference code (no MCULoRA/utils.py)")
    reference = reference_model(args.reference)
    ours = MCULoRA(MCULoRAConfig(feature_dims=DIMS, num_outputs=4)).eval()
    generator = torch.Generator().manual_seed(0)
    rows = []
    with torch.inference_mode():
        for batch in (1, 32):
            for length in (1, 30):
                features = torch.randn(length, batch, sum(DIMS.values()), generator=generator)
                theirs_ms = median_ms(
                    lambda f=features: reference(
                        f, torch.ones(*f.shape[:2], 3), torch.ones(f.shape[1], f.shape[0]), False, "0"
                    ),
                    args.repeats,
                )
                inputs = (
                    split(features),
                    torch.ones(batch, length, dtype=torch.bool),
                    torch.ones(batch, 3, dtype=torch.bool),
                )
                ours_ms = median_ms(lambda i=inputs: ours(*i), args.repeats)
                rows.append((f"forward, batch {batch}, {length} utterance(s)", ours_ms, theirs_ms))
        features = torch.randn(1, 1, sum(DIMS.values()), generator=generator)
        masks = mask_table()
        widths = torch.tensor(list(DIMS.values()))

        def seven_calls():
            for index, mask in enumerate(masks):
                kept = mask.float().view(1, 1, 3)
                zeroed = features * torch.repeat_interleave(kept, widths, dim=2)
                reference(zeroed, kept, torch.ones(1, 1), False, str(index))

        batched = (
            {m: f.expand(len(masks), -1, -1) for m, f in split(features).items()},
            torch.ones(7, 1, dtype=torch.bool),
            masks,
        )
        rows.append(
            (
                "one input under all 7 combinations (reference: 7 calls)",
                median_ms(lambda: ours(*batched), args.repeats),
                median_ms(seven_calls, args.repeats),
            )
        )
    ours_count, theirs_count = (sum(p.numel() for p in model.parameters()) for model in (ours, reference))
    print(f"{torch.get_num_threads()} threads; parameters: ours {ours_count:,}, reference {theirs_count:,}\n")
    print("| case | ours (ms) | reference (ms) | ours / reference |\n|---|---|---|---|")
    for name, ours_ms, theirs_ms in rows:
        print(f"| {name} | {ours_ms:.2f} | {theirs_ms:.2f} | {ours_ms / theirs_ms:.2f} |")


if __name__ == "__main__":
    main()
