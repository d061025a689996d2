"""mculora demo: emotion from a face, a voice and a sentence, with any of them left out.

    python app.py [--checkpoint checkpoints/default | owner/name@revision] [--compare-with checkpoints/mplmm ...]
                  [--host 127.0.0.1] [--port 7860] [--share]

The file a Space runs (``app_file: app.py``) and what ``make demo`` starts; ``mculora serve`` is the same page. The page
is `mculora.serving.page`.
"""

import contextlib

# ZeroGPU's package must be imported before anything touches CUDA. It exists only on Spaces.
with contextlib.suppress(ImportError):
    import spaces  # noqa: F401

from mculora.serving.page import build_demo, launch, main  # noqa: E402

__all__ = ["build_demo", "launch", "main"]

if __name__ == "__main__":
    main()
