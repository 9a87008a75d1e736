"""seqlab.train: the Trainer, its config, schedules, penalties, checkpoints, DDP helpers, plots."""
from .checkpoint import CheckpointManager, load_checkpoint, load_latest_checkpoint, save_checkpoint
from .config import TrainConfig
from .optimizers import build_optimizer
from .plots import plot_history
from .regularization import penalized_parameters, weight_penalty
from .schedules import LRSchedule
from .trainer import Trainer, TrainResult

__all__ = [
    "CheckpointManager", "LRSchedule", "TrainConfig", "TrainResult", "Trainer", "build_optimizer",
    "load_checkpoint", "load_latest_checkpoint", "penalized_parameters", "plot_history", "save_checkpoint",
    "weight_penalty",
]
