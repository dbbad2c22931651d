"""Training: the MedMNIST v2 recipe trainer that fills the model zoo.

:func:`train_model` orchestrates a run; its parts are :mod:`~benchmark.training.config` (the
settings), :mod:`~benchmark.training.defense` (a training-time defense),
:mod:`~benchmark.training.loop` (one epoch), :mod:`~benchmark.training.selection` (which epoch
is kept), :mod:`~benchmark.training.resume` (interrupted runs) and
:mod:`~benchmark.training.card` (the model card).
"""

from benchmark.training.config import TrainConfig
from benchmark.training.defense import defense_seed, defense_tag
from benchmark.training.resume import PARTIAL_DIR, partial_path
from benchmark.training.selection import SELECTION_VERSION, selection_key
from benchmark.training.trainer import train_model

__all__ = [
    "PARTIAL_DIR",
    "SELECTION_VERSION",
    "TrainConfig",
    "defense_seed",
    "defense_tag",
    "partial_path",
    "selection_key",
    "train_model",
]
