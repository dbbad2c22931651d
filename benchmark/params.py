"""``name=value`` parameter overrides as the command line gives them (``--defense-param``,
``--param``): one parser for every command that takes them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from benchmark.errors import ConfigError


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``["n=100", "noise=gaussian"]`` -> ``{"n": 100, "noise": "gaussian"}``.

    A value is read as JSON when it parses (numbers, booleans, lists), else kept as text.

    Args:
        items: ``name=value`` strings; a later name overrides an earlier one.

    Returns:
        The overrides by name.

    Raises:
        ConfigError: an item without ``=`` or without a name.
    """
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


__all__ = ["parse_params"]
