"""The networks checkpoints save and load, by their ``architecture`` name (timm's registry pattern): each network
module registers its class with `register_network`; `mculora.networks` imports every module of the package."""

from __future__ import annotations

ARCHITECTURES: dict[str, type] = {}


def register_network(network: type) -> type:
    """Class decorator: ``network`` (with ``architecture`` and ``config_class``) becomes loadable by its name."""
    if ARCHITECTURES.get(network.architecture, network) is not network:
        raise ValueError(f"two networks are named {network.architecture!r}")
    ARCHITECTURES[network.architecture] = network
    return network
