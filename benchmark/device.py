"""Device selection and reproducibility settings."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from benchmark.errors import ConfigError


def pick_device(requested: str | None = None) -> torch.device:
    """Return the requested device, or CUDA when available, else CPU.

    Args:
        requested: "auto"/None, "cpu", "cuda" or "cuda:N".

    Raises:
        ConfigError: CUDA was requested but is not available, or the name is invalid.
    """
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device '{requested}'; use auto, cpu or cuda[:N]") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{requested}' requested but CUDA is not available; use cpu")
    return dev


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; make torch's algorithms deterministic if asked.

    On CPU this makes training and evaluation bit-for-bit repeatable for a fixed thread
    count. On CUDA, cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` which is set here too.
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
