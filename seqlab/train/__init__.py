"""seqlab.train: the Trainer and its config."""
from .config import TrainConfig
from .plots import plot_history
from .trainer import Trainer, TrainResult, build_optimizer

__all__ = ["TrainConfig", "TrainResult", "Trainer", "build_optimizer", "plot_history"]
