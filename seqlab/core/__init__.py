"""seqlab.core: the stage protocol, task-model interface, configs, device policy, safe files.

Imports nothing from the rest of seqlab. Names are loaded on first use, so importing
``seqlab.core.errors`` (as the metric scripts do) does not pull in torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "from_dict": "config", "to_dict": "config",
    "resolve_device": "device",
    "ConfigError": "errors", "DataError": "errors", "DeviceError": "errors", "InputError": "errors",
    "ModelFileError": "errors", "NotFittedError": "errors", "SeqlabError": "errors",
    "TrainingError": "errors", "WiringError": "errors",
    "OutputDirError": "errors", "FolderLockedError": "errors",
    "Stage": "stage", "check_wiring": "stage",
    "TaskModel": "task",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'seqlab.core' has no attribute {name!r}")
