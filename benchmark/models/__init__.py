"""Models: the ``MODELS`` registry of architectures, the normalising wrapper and the zoo."""

from benchmark.models import tiny, torchvision_models  # noqa: F401  (registers entries)
from benchmark.models.base import MODELS, ImageClassifier, ModelMeta, build_model

__all__ = ["MODELS", "ImageClassifier", "ModelMeta", "build_model"]
