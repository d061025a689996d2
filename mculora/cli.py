"""The ``mculora`` command: one entry point, a subcommand per job, each with its own ``--help``.

    mculora serve [--checkpoint DIR | owner/name@rev] ...      the page (needs the demo extra)
    mculora clip PATH... [--out DIR] [--annotate] [--shard K/N]   clips and folders of clips
    mculora hub pull|push ...                                    checkpoints on the Hugging Face Hub
    mculora train | compare | ...                                training and evaluation

Each subcommand is a module's ``main(argv)``, imported only when it runs, so ``mculora clip`` never loads the page and
``mculora serve`` never loads training code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> (module whose main(argv) runs it, what it does)
COMMANDS = {
    "serve": ("mculora.serving.page", "the page on a checkpoint (what `make demo` and a Space run)"),
    "clip": ("mculora.serving.clip_command", "score clips, folders of clips or globs; CSV/JSON, summary.csv, MP4"),
    "hub": ("mculora.hosting.hub", "pull a checkpoint from the Hugging Face Hub, or push one with its model card"),
    "space": ("mculora.hosting.space", "a self-contained Hugging Face Space folder, validated"),
    "train": ("mculora.training.train", "train and evaluate one method on a benchmark"),
    "compare": ("mculora.training.compare", "several methods under one protocol, one table"),
    "adapt": ("mculora.training.adapt", "adapt a trained checkpoint to a dataset's new conditions"),
    "adapter-health": ("mculora.training.adapter_health", "every adapter's size and gradient, the dead ones"),
    "checkpoint": ("mculora.recipes.default", "re-make a shipped checkpoint from the shared data"),
    "person-report": ("mculora.recipes.person_adaptation", "a checkpoint's person reference and unseen-people report"),
    "extract": ("mculora.data.extract", "features from raw media for the trainer"),
    "synthetic": ("mculora.data.synthetic", "a small synthetic benchmark set in the trainer's layout"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    return "usage: mculora COMMAND [--help | options]\n\ncommands:\n" + "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), end="")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"mculora: unknown command {name!r}\n\n{usage()}", end="", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as error:
        if name == "serve" and error.name == "gradio":
            print('mculora serve needs the demo extra: pip install "mculora[demo]"', file=sys.stderr)
            return 1
        raise
    sys.argv[0] = f"mculora {name}"  # each subcommand's --help and errors name the command as typed
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
