"""Training methods. Each is a `Method`: the network it trains, how it draws the training samples' modality
combinations, its loss and its between-epoch logic. ``--method NAME`` picks one from `METHODS`."""

from mculora.methods.base import Method, task_loss
from mculora.methods.baseline import BaselineMethod
from mculora.methods.cggm import CGGMMethod
from mculora.methods.mcu_lora import MCULoRAMethod
from mculora.methods.mplmm import MPLMMMethod
from mculora.methods.wander import WanderMethod

METHODS: dict[str, type[Method]] = {
    cls.name: cls for cls in (MCULoRAMethod, BaselineMethod, MPLMMMethod, WanderMethod, CGGMMethod)
}


def build_method(name: str, config) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name](config)


__all__ = ["METHODS", "Method", "build_method", "task_loss"]
