"""Compare ways of making MCLA's combination adapters learn, on identical data and seeds.

    python -m mculora.data.synthetic --out /tmp/syn
    python benchmarks/mcla_remedies.py --data-root /tmp/syn --seeds 1 2 3 --epochs 20 --out runs/remedies

Every variant is a set of `mculora.training.train` flags on top of the same run (IEMOCAP-4 layout, 5 folds). For each
one the table gives the 7-condition accuracy (mean ± std over seeds), the number of dead adapters of the selected models
(the most in one fold; see `mculora.training.adapter_health`), the smallest routed / shared gradient ratio per layer
kind, and the decoupling figures averaged over combinations. Results go to ``--out``/<variant>/results.json and
``--out``/table.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mculora.training.config import parse_args
from mculora.training.evaluate import CONDITIONS
from mculora.training.train import run

PAPER = ["--model-combination-stream", "chain", "--lora-plus-ratio", "1"]
VARIANTS: dict[str, list[str]] = {
    "default (residual + LoRA+ x16)": [],
    "paper (chain)": PAPER,
    "chain + B init N(0, 0.01)": [*PAPER, "--model-combination-init-std", "0.01"],
    "chain + LoRA+ x16": ["--model-combination-stream", "chain", "--lora-plus-ratio", "16"],
    "residual": ["--lora-plus-ratio", "1"],
    "residual + LoRA+ x4": ["--lora-plus-ratio", "4"],
    "residual + LoRA+ x4, DPFT off": ["--lora-plus-ratio", "4", "--dpft-mode", "off"],
    "reference protocol (LoRA+ x4)": ["--lora-plus-ratio", "4", "--protocol", "reference"],
    "baseline (no adapters)": ["--method", "baseline"],
}


def row(name: str, results: dict) -> str:
    cells = [
        f"{results['conditions'][c]['accuracy'] * 100:.1f} ± {results['conditions'][c]['accuracy_std'] * 100:.1f}"
        for c in CONDITIONS
    ]
    average = results["average"]
    cells.append(f"**{average['accuracy'] * 100:.2f} ± {average['accuracy_std'] * 100:.2f}**")
    ratios = results.get("gradient_ratio_min") or {}
    figures = results.get("decoupling") or {}
    if figures:
        separability = np.mean([v["separability"] for v in figures.values()])
        distinctness = np.mean([v["distinctness"] for v in figures.values()])
        cells += [
            str(results["dead_adapters_max"]),
            " / ".join(f"{ratios[k]:.0e}" for k in ("in_proj", "layers", "fusion", "head")),
            f"{separability:.3g}",
            f"{distinctness:.3g}",
        ]
    else:
        cells += ["—"] * 4
    return f"| {name} | " + " | ".join(cells) + " |"


def keep_trajectory(folder: Path, epochs: tuple[int, ...] = (1, 2, 5, 10, 15, 20)) -> str | None:
    """DPFT's keep probabilities (audio / text / vision) at some epochs, averaged over every seed and fold."""
    log = folder / "training_log.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    entries = [e for e in entries if "keep_probability" in e]
    if not entries:
        return None
    cells = []
    for epoch in epochs:
        at = [e["keep_probability"] for e in entries if e["epoch"] == epoch]
        if at:
            means = [np.mean([p[m] for p in at]) for m in ("audio", "text", "vision")]
            cells.append(f"{epoch}: " + " / ".join(f"{v:.3f}" for v in means))
    return " · ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="the synthetic IEMOCAP-4 set (not needed with --report-only)")
    parser.add_argument("--seeds", nargs="+", default=["1", "2", "3"])
    parser.add_argument("--epochs", default="20")
    parser.add_argument("--folds", nargs="+", help="1-based folds (default: all 5)")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), help="default: all")
    parser.add_argument("--out", default="runs/remedies")
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild the tables from the variants already in --out"
    )
    args = parser.parse_args()
    if not args.report_only and not args.data_root:
        parser.error("--data-root is required unless --report-only")
    out = Path(args.out)
    common = [
        "--dataset",
        "iemocap4",
        "--data-root",
        str(args.data_root),
        "--epochs",
        args.epochs,
        "--seeds",
        *args.seeds,
    ]
    if args.folds:
        common += ["--folds", *args.folds]
    header = (
        "| variant | " + " | ".join(CONDITIONS) + " | average | dead | min grad ratio in_proj / MLP / fusion / head "
        "| separability | distinctness |\n|" + "---|" * (len(CONDITIONS) + 6)
    )
    rows, trajectories = [], []
    for name in args.variants or VARIANTS:
        folder = out / "".join(c if c.isalnum() else "-" for c in name).strip("-")
        if args.report_only:
            if not (folder / "results.json").is_file():
                continue
            results = json.loads((folder / "results.json").read_text())
        else:
            results = run(parse_args([*common, *VARIANTS[name], "--out", str(folder)]))
        rows.append(row(name, results))
        trajectory = keep_trajectory(folder)
        if trajectory:
            trajectories.append(f"| {name} | {trajectory} |")
        table = header + "\n" + "\n".join(rows) + "\n"
        if trajectories:
            table += "\nDPFT keep probability, audio / text / vision, by epoch (mean over seeds and folds)\n\n"
            table += "| variant | trajectory |\n|---|---|\n" + "\n".join(trajectories) + "\n"
        (out / "table.md").write_text(table)
        (out / "flags.json").write_text(json.dumps(VARIANTS, indent=2) + "\n")
    print("\n" + table)


if __name__ == "__main__":
    main()
