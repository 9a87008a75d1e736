"""seqlab.core: the stage protocol, task-model interface, configs, device policy, safe files.

Imports nothing from the rest of seqlab.
"""
from .config import from_dict, to_dict
from .device import resolve_device
from .errors import (
    ConfigError,
    DataError,
    DeviceError,
    InputError,
    ModelFileError,
    NotFittedError,
    SeqlabError,
    TrainingError,
    WiringError,
)
from .stage import Stage, check_wiring
from .task import TaskModel

__all__ = [
    "ConfigError", "DataError", "DeviceError", "InputError", "ModelFileError", "NotFittedError",
    "SeqlabError", "Stage", "TaskModel", "TrainingError", "WiringError", "check_wiring",
    "from_dict", "resolve_device", "to_dict",
]
