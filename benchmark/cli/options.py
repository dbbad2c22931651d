"""Option help texts and small value parsers shared by several ``bench`` commands."""

from __future__ import annotations

import json
from typing import Any

from benchmark.errors import ConfigError

DATA_DIR_HELP = "Data root (else $BENCH_DATA_DIR, else medmnist's ~/.medmnist)."
ZOO_HELP = "Model zoo folder (else $BENCH_ZOO_DIR, else ~/.cache/medrobustbench/zoo)."


def batch_size_option(text: str) -> int | str:
    """``--batch-size``: a positive integer or ``auto``."""
    text = text.strip().lower()
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"--batch-size must be a positive integer or auto, got '{text}'")
    return value


def parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param '{item}' must look like name=value")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
