"""The fusion forward against the reference implementation's own model, same shapes, same threads, one run.

    python benchmarks/reference.py --reference PATH/TO/MCULoRA-clone [--commit b5d07be] [--repeats 40]

PATH is a git clone of the reference code (gdace829/MCULoRA). The model files of ``--commit`` are read from it into
a scratch folder (`git archive`), whatever the clone has checked out, and its `build_model` builds its network from
there (IEMOCAP-4 settings: hidden 256, depth 4, 2 heads; wav2vec-large, DeBERTa-large and MANet dims 512, 1024,
1024); ours is built with the same sizes. Nothing of it is copied into this project. The commit matters: b5d07be,
the first published version, is a smaller and faster network than later ones (which add cross-modal attention over
the combination streams), so a ratio is only comparable with one measured against the same commit. Both networks
run in eval mode under `torch.inference_mode` on the same random features, complete inputs, at batch 1 and 32 for
one utterance and a 30-utterance dialogue; and one input under all 7 combinations (ours: `forward_conditions`, the
API for it; the reference: one call per combination, the only way its forward takes a combination). Each case times
the two in alternating blocks of calls, so that a slow spell of the machine falls on both sides.
Prints the commit, the threads, the parameter counts and a markdown table of medians and ratios.

Its training script's epoch time is compared separately (docs/reports/performance.md gives the commands): it reads
hard-coded data paths from its config.py, which a scratch copy points at a synthetic set.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mculora.modalities import MODALITIES, mask_table
from mculora.model import MCULoRA, MCULoRAConfig

DIMS = {"audio": 512, "text": 1024, "vision": 1024}


def checkout(clone: Path, commit: str, into: Path) -> str:
    """The clone's files at ``commit``, written into ``into``; returns the full commit id."""
    full = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "--verify", f"{commit}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if full.returncode:
        raise SystemExit(f"error: {clone} has no commit {commit!r} (is it a git clone of gdace829/MCULoRA?)")
    # The code only: the clone's data files may be absent (a partial clone) and are not needed.
    code = ["git", "-C", str(clone), "archive", commit, "--", "MCULoRA", "config.py"]
    archive = subprocess.run(code, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    if not (into / "MCULoRA" / "utils.py").is_file():
        raise SystemExit(f"error: commit {commit} of {clone} has no MCULoRA/utils.py")
    return full.stdout.strip()


def reference_model(path: Path):
    """The reference network from its files in ``path``, as its training script builds it for IEMOCAP-4."""
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


def paired_medians(ours: Callable, theirs: Callable, repeats: int, rounds: int = 5) -> tuple[float, float]:
    """Median milliseconds of each call over ``repeats`` calls, made in ``rounds`` alternating blocks (ours, theirs,
    ours, ...; each block after one warm-up call), so that a slow spell of the machine falls on both sides while
    each side runs with its own weights in the caches, as it would when called repeatedly."""
    times: tuple[list[float], list[float]] = ([], [])
    for block in range(rounds):
        for call, spent in zip((ours, theirs), times, strict=True):
            call()
            for _ in range(repeats // rounds + (block < repeats % rounds)):
                start = time.perf_counter()
                call()
                spent.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[0]), statistics.median(times[1])


def split(features: torch.Tensor) -> dict:
    """The reference's input [L, B, 2560] as ours: per modality [B, L, D]."""
    bounds = torch.tensor(list(DIMS.values())).cumsum(0).tolist()
    starts = [0, *bounds[:-1]]
    return {
        m: features[:, :, s:e].permute(1, 0, 2).contiguous() for m, s, e in zip(MODALITIES, starts, bounds, strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a git clone of gdace829/MCULoRA")
    parser.add_argument("--commit", default="b5d07be", help="the reference's commit to build (default: b5d07be)")
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mculora-reference-"))
    commit = checkout(args.reference, args.commit, scratch)
    reference = reference_model(scratch)
    shutil.rmtree(scratch)  # its modules are imported
    ours = MCULoRA(MCULoRAConfig(feature_dims=DIMS, num_outputs=4)).eval()
    generator = torch.Generator().manual_seed(0)
    rows = []
    with torch.inference_mode():
        for batch in (1, 32):
            for length in (1, 30):
                features = torch.randn(length, batch, sum(DIMS.values()), generator=generator)
                inputs = (
                    split(features),
                    torch.ones(batch, length, dtype=torch.bool),
                    torch.ones(batch, 3, dtype=torch.bool),
                )
                ours_ms, theirs_ms = paired_medians(
                    lambda i=inputs: ours(*i),
                    lambda f=features: reference(
                        f, torch.ones(*f.shape[:2], 3), torch.ones(f.shape[1], f.shape[0]), False, "0"
                    ),
                    args.repeats,
                )
                rows.append((f"forward, batch {batch}, {length} utterance(s)", ours_ms, theirs_ms))
        features = torch.randn(1, 1, sum(DIMS.values()), generator=generator)
        masks = mask_table()
        widths = torch.tensor(list(DIMS.values()))

        def seven_calls():
            for index, mask in enumerate(masks):
                kept = mask.float().view(1, 1, 3)
                zeroed = features * torch.repeat_interleave(kept, widths, dim=2)
                reference(zeroed, kept, torch.ones(1, 1), False, str(index))

        one = split(features)
        ours_ms, theirs_ms = paired_medians(
            lambda: ours.forward_conditions(one, torch.ones(1, 1, dtype=torch.bool), masks), seven_calls, args.repeats
        )
        rows.append(("one input under all 7 combinations (reference: 7 calls)", ours_ms, theirs_ms))
    ours_count, theirs_count = (sum(p.numel() for p in model.parameters()) for model in (ours, reference))
    print(
        f"reference commit {commit}; {torch.get_num_threads()} threads; parameters: ours {ours_count:,}, "
        f"reference {theirs_count:,}\n"
    )
    print("| case | ours (ms) | reference (ms) | ours / reference |\n|---|---|---|---|")
    for name, ours_ms, theirs_ms in rows:
        print(f"| {name} | {ours_ms:.2f} | {theirs_ms:.2f} | {ours_ms / theirs_ms:.2f} |")


if __name__ == "__main__":
    main()
