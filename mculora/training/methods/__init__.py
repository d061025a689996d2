"""Training methods. Each is a `Method` in one module of this package: the network it trains (from
`mculora.networks`), its own settings, how it draws the training samples' modality combinations, its loss and its
between-epoch logic. A module registers its method with `register`; importing the package imports every module in
it, so ``--method NAME`` finds each one, and adding a method is adding a module (and its network's, if new)."""

import importlib
import pkgutil

from mculora.training.methods.base import METHODS, Method, register, task_loss

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def build_method(name: str, config) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name](config)


__all__ = ["METHODS", "Method", "build_method", "register", "task_loss"]
