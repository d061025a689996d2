"""What a test does when the real data it needs is missing: skip on a developer's machine, fail under CI (the `CI`
environment variable set, as CI services do), where a missing ``../shared/data`` must not pass as green."""

import os

import pytest


def data_missing(reason: str):
    """Skip the calling test with ``reason``, or fail it when running under CI."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}; under CI the real data must be there", pytrace=False)
    pytest.skip(reason)
