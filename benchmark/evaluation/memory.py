"""Memory of an attack pass, estimated before any work, and the batch size that fits.

An attack that differentiates through a defense keeps the autograd graph of the whole pipeline:
MDDA's unrolled TV iterations times the EOT draws hold tens of megabytes per image, and a batch
of 256 exhausted 24 GiB (the process was killed after 40 minutes of work). This module measures
the graph of one forward pass on a probe batch (the bytes of every tensor autograd saves for the
backward pass, each storage counted once), scales it to the batch, and compares it with the
memory the device has free. The evaluation refuses a batch that would not fit before any work,
naming the largest one that does; ``--batch-size auto`` takes that one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

HEADROOM = 0.85
"""Share of the free memory an attack pass may plan to use."""

GRAPH_FACTOR = 3.0
"""Peak resident memory of a forward and backward pass over the saved-tensor bytes: the
backward pass's gradients, intermediates alive beside the saved ones and the allocator's
slack. Measured on this machine (peak RSS growth of one forward + backward, CPU): 1.5x for the
bare ResNet-18 at batch 256, 2.8x for the adaptive MDDA pipeline with EOT-4 at batches 16 and
48; the MDDA pass at batch 256, planned at 20.7 GiB this way, was killed at 19 GiB resident."""

AUTO_BATCHES = (256, 128, 64, 32, 16, 8, 4, 2, 1)
"""Batch sizes ``--batch-size auto`` chooses from: the default first, then halving."""


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes: CUDA's free memory, or the kernel's MemAvailable
    on Linux; None where neither is known (no check is made then)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if device.type == "cpu" and meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


def graph_bytes_per_image(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps per image for one forward pass of ``module`` on ``x`` (the saved
    tensors and the output, each storage once), measured on that probe batch.

    The global and the module's defense random streams are left as they were."""
    seen: dict[int, int] = {}
    weights = {t.untyped_storage().data_ptr() for t in [*module.parameters(), *module.buffers()]}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in weights:  # the model's weights are there already, at any batch
                seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        except (RuntimeError, NotImplementedError):  # e.g. a tensor without storage
            pass
        return t

    defense = getattr(module, "defense", None)
    if defense is None and hasattr(module, "defended"):
        defense = getattr(module.defended, "defense", None)
    streams = defense.rng_state() if defense is not None else None
    x = x.detach().clone().requires_grad_(True)
    devices = [x.device] if x.device.type == "cuda" else []
    with (
        torch.random.fork_rng(devices=devices),
        torch.enable_grad(),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
    ):
        out = module(x)
    if defense is not None:
        defense.reseed()
        defense.set_rng_state(streams)
    seen[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()
    seen.pop(x.untyped_storage().data_ptr(), None)  # the input is the attack's, not the graph's
    return -(-sum(seen.values()) // len(x))  # ceil


def plan_bytes(per_image: int, batch_size: int) -> int:
    """Planned peak of an attack pass at ``batch_size``: ``GRAPH_FACTOR`` times its graph."""
    return int(GRAPH_FACTOR * per_image * batch_size)


def fitting_batch(per_image: int, free: int, candidates: tuple[int, ...] = AUTO_BATCHES) -> int:
    """The largest candidate batch whose plan fits in ``HEADROOM`` of ``free`` (at least 1)."""
    for b in candidates:
        if plan_bytes(per_image, b) <= HEADROOM * free:
            return b
    return 1


def gib(n: float) -> str:
    """``n`` bytes in GiB, one decimal."""
    return f"{n / 2**30:.1f} GiB"
