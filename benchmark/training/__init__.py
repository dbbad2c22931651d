"""Training: the MedMNIST v2 recipe trainer that fills the model zoo."""

from benchmark.training.trainer import TrainConfig, train_model

__all__ = ["TrainConfig", "train_model"]
