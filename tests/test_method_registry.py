"""Adding a method is adding two modules: its network in `mculora/networks/` and its training in
`mculora/training/methods/`. Registered there, they reach the trainer's flags and YAML, `build_method` and
checkpoints, with no other file edited."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from mculora.networks import ARCHITECTURES
from mculora.training.config import parse_args
from mculora.training.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]

TOY_NETWORK = """
from dataclasses import dataclass

import torch
from torch import nn

from mculora.model import BackboneConfig
from mculora.networks.late_fusion import LateFusionBackbone
from mculora.networks.registry import register_network


@dataclass
class ToyGate:
    width: int = 2


@dataclass
class ToyConfig(BackboneConfig, ToyGate):
    pass


@register_network
class ToyNet(LateFusionBackbone):
    architecture = "toy"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.gate = nn.Parameter(torch.linspace(0.5, 1.5, config.width))

    def fusion_input(self, encoded, keep):
        return super().fusion_input(encoded, keep) * self.gate.mean()
"""

TOY_METHOD = """
from dataclasses import dataclass

from mculora.networks.toy import ToyGate, ToyNet
from mculora.training.methods.base import register
from mculora.training.methods.late_fusion import LateFusionMethod


@dataclass
class ToySettings(ToyGate):
    pass


@register
class ToyMethod(LateFusionMethod):
    name = "toy"
    network = ToyNet
    settings_class = ToySettings
"""

USE_IT = """
import sys
import torch
import mculora
from mculora.checkpoint import CheckpointConfig, load_checkpoint, save_checkpoint
from mculora.training.config import load_yaml, parse_args
from mculora.training.methods import build_method
from mculora.modalities import MODALITIES

assert mculora.__file__.startswith(sys.argv[3]), mculora.__file__  # the copy with the toy module
config = parse_args(["--method", "toy", "--toy-width", "3", "--model-hidden", "16", "--model-depth", "1"])
assert load_yaml(sys.argv[2]).toy.width == 5
net = build_method(config.method, config).build_model({"audio": 5, "text": 6, "vision": 7}, 3).eval()
assert (net.config.width, net.config.hidden, net.gate.numel()) == (3, 16, 3), net.config
settings = CheckpointConfig(
    model=net.config, task="classification", label_names=["a", "b", "c"], method="toy",
    encoders={"profile": "none"}, architecture="toy",
)
save_checkpoint(sys.argv[1], net, settings)
loaded, loaded_settings = load_checkpoint(sys.argv[1])
assert type(loaded).__name__ == "ToyNet" and loaded_settings.model == net.config
features = {m: torch.randn(2, 1, {"audio": 5, "text": 6, "vision": 7}[m.value]) for m in MODALITIES}
masks = (torch.ones(2, 1, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool))
with torch.no_grad():
    assert torch.equal(net(features, *masks).logits, loaded(features, *masks).logits)
print("the toy method trains, saves and loads")
"""


def test_a_network_and_a_method_module_dropped_into_the_package_are_everywhere(tmp_path: Path) -> None:
    package = tmp_path / "src" / "mculora"
    shutil.copytree(ROOT / "mculora", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "networks" / "toy.py").write_text(TOY_NETWORK)
    (package / "training" / "methods" / "toy.py").write_text(TOY_METHOD)
    (tmp_path / "toy.yaml").write_text("method: toy\ntoy:\n  width: 5\n")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(USE_IT),
            str(tmp_path / "checkpoint"),
            str(tmp_path / "toy.yaml"),
            str(tmp_path / "src"),
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "saves and loads" in done.stdout


def test_the_shipped_methods_are_registered_with_their_networks_and_settings() -> None:
    assert set(METHODS) == {"mcu-lora", "baseline", "mplmm", "wander", "cggm"}
    assert set(ARCHITECTURES) == {"mculora", "late-fusion", "mplmm", "wander"}
    config = parse_args(["--mplmm-prompt-length", "4", "--wander-cp-rank", "2", "--cggm-rho", "2.0"])
    assert (config.mplmm.prompt_length, config.wander.cp_rank, config.cggm.rho) == (4, 2, 2.0)
