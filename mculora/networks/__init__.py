"""The networks: MCULoRA (`mculora.model`) and the peers' (`mculora.networks.late_fusion` and the networks built on
it), each with its ``architecture`` name and config class, as checkpoints save and load them. Serving needs only this
package; how each network is trained lives with its method in `mculora.training.methods`. Adding a network is adding
a module here that registers it."""

import importlib
import pkgutil

from mculora.model import MCULoRA
from mculora.networks.registry import ARCHITECTURES, register_network

register_network(MCULoRA)
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ARCHITECTURES", "register_network"]
