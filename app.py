"""mculora demo entry point.

The Gradio page (webcam, microphone and text in; emotion and adapter plots out) is not wired up yet: this
placeholder says so instead of serving an empty page. The library (`mculora/`) and the benchmark trainer work.
"""

import sys


def main() -> int:
    print(
        "The mculora demo page is not available in this version yet.\n"
        "Train and evaluate on the benchmarks with: python -m mculora.train --help",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
