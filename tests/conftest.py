import os
from pathlib import Path

import pytest

from mculora.data.synthetic import write_synthetic


@pytest.fixture(scope="session")
def synthetic_iemocap(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("syn_iemocap4"), dataset="iemocap4", seed=0)


@pytest.fixture(scope="session")
def synthetic_mosi(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("syn_mosi"), dataset="mosi", seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets beside the project (../shared/data, or MCULORA_DATA_ROOT); skip when absent."""
    root = Path(os.environ.get("MCULORA_DATA_ROOT", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set MCULORA_DATA_ROOT to the shared data folder)")
    return root


@pytest.fixture(scope="session")
def demo_checkpoint() -> Path:
    """The checkpoint the demo serves: MCULORA_CHECKPOINT, else the shipped checkpoints/default."""
    path = Path(os.environ.get("MCULORA_CHECKPOINT", Path(__file__).resolve().parents[1] / "checkpoints" / "default"))
    if not (path / "config.json").is_file():
        pytest.skip(f"no checkpoint at {path} (set MCULORA_CHECKPOINT)")
    return path
