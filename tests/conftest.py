import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Gradio reads these when it is imported (some as module constants), so they are set before any test imports it:
# uploads and cached examples go to a temporary folder, not into the repository; no analytics.
_GRADIO_TMP = Path(tempfile.mkdtemp(prefix="mculora-tests-gradio-"))
atexit.register(shutil.rmtree, _GRADIO_TMP, ignore_errors=True)
os.environ["GRADIO_TEMP_DIR"] = str(_GRADIO_TMP / "uploads")
os.environ["GRADIO_EXAMPLES_CACHE"] = str(_GRADIO_TMP / "cached_examples")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"  # gradio_client would report each test client to the Hub

from real_data import data_missing  # noqa: E402

from mculora.data.synthetic import write_synthetic  # noqa: E402  (after the environment above)


@pytest.fixture(scope="session")
def synthetic_iemocap(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("syn_iemocap4"), dataset="iemocap4", seed=0)


@pytest.fixture
def trainer_args(synthetic_iemocap, tmp_path):
    """Command-line arguments of a short trainer run on the synthetic IEMOCAP-4 set, writing to tmp_path/run."""

    def build(*extra: str, epochs: int = 2, folds: str = "1") -> list[str]:
        return [
            "--dataset",
            "iemocap4",
            "--data-root",
            str(synthetic_iemocap),
            "--epochs",
            str(epochs),
            "--folds",
            folds,
            "--out",
            str(tmp_path / "run"),
            *extra,
        ]

    return build


@pytest.fixture(scope="session")
def synthetic_mosi(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("syn_mosi"), dataset="mosi", seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets beside the project (../shared/data, or MCULORA_DATA_ROOT); skip when absent (fail under
    CI: `real_data.data_missing`)."""
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    root = Path(os.environ.get("MCULORA_DATA_ROOT", default)).resolve()
    if not root.is_dir():
        data_missing(f"real data not found at {root} (set MCULORA_DATA_ROOT to the shared data folder)")
    return root


@pytest.fixture(scope="session")
def demo_checkpoint() -> Path:
    """The checkpoint the demo serves: MCULORA_CHECKPOINT, else the shipped checkpoints/default."""
    path = Path(os.environ.get("MCULORA_CHECKPOINT", Path(__file__).resolve().parents[1] / "checkpoints" / "default"))
    if not (path / "config.json").is_file():
        pytest.skip(f"no checkpoint at {path} (set MCULORA_CHECKPOINT)")
    return path


@pytest.fixture(scope="session")
def predictor(demo_checkpoint):
    """The shipped (or MCULORA_CHECKPOINT) model on the CPU, shared by the modules that test it; test_predictor.py
    overrides it with an untrained one. It runs on a torch thread of its own, as the app's Predictors do."""
    from mculora.serving.predictor import Predictor
    from mculora.serving.torch_thread import TorchThread

    return Predictor.from_pretrained(demo_checkpoint, device="cpu", torch_thread=TorchThread())


@pytest.fixture(scope="module")
def served_app(predictor, demo_checkpoint):
    """``(demo, client)``: the app serving `predictor` on 127.0.0.1, and a gradio_client connected to it."""
    from served import served_demo

    with served_demo(predictor, demo_checkpoint) as pair:
        yield pair
