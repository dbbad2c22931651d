"""Memory of an attack pass, estimated before any work, and the batch size that fits.

An attack that differentiates through a defense keeps the autograd graph of the whole pipeline:
MDDA's unrolled TV iterations times the EOT draws hold tens of megabytes per image, and a batch
of 100 RGB images was killed at 19 GiB resident after 40 minutes of work. This module measures
the graph of one forward pass on a probe batch (the bytes of every tensor autograd saves for
the backward pass, each storage counted once, the weights and the input left out), scales it
to the batch, and compares it with the memory the device has free.

What is resident is more than the graph. On this machine (peak RSS growth of one forward and
backward pass on the CPU) it was 1.5x the graph for the bare ResNet-18, 1.15x for MedRDF's
smoothed classifier, and 2.8x for the adaptive MDDA pipeline with EOT-4: glibc's dynamic mmap
threshold rises as large blocks are freed, later blocks come from the heap, and the heap
fragments. With the threshold fixed at 64 KiB (large blocks mmap'd and returned on free) the
MDDA pass needs 1.1x its graph, at some speed cost (fresh pages; 5-50 % slower in a run under
load). So a batch is planned at ``FRAGMENTED`` times its graph; where that does not fit but
``COMPACT`` times does, the allocator is switched to the fixed threshold for the rest of the
process (the numbers do not change); where neither fits, the evaluation refuses before any
work, naming the largest batch that fits. ``--batch-size auto`` takes the largest batch that
fits without the switch. :func:`plan_batch_size` applies this to an evaluation plan.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from benchmark.errors import ConfigError

if TYPE_CHECKING:
    from benchmark.evaluation.cache import AdversarialCache
    from benchmark.evaluation.plan import EvaluationPlan

logger = logging.getLogger(__name__)

HEADROOM = 0.85
"""Share of the free memory an attack pass may plan to use."""

FRAGMENTED = 3.0
"""Planned resident memory over the graph with glibc's default (dynamic) mmap threshold."""

COMPACT = 1.5
"""Planned resident memory over the graph with the mmap threshold fixed (and on CUDA)."""

MMAP_THRESHOLD = 64 * 1024
"""The fixed glibc mmap threshold of the compact mode, in bytes."""

_compact = False

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


def plan_bytes(per_image: int, batch_size: int, factor: float = FRAGMENTED) -> int:
    """Planned peak of an attack pass at ``batch_size``: ``factor`` times its graph."""
    return int(factor * per_image * batch_size)


def fitting_batch(
    per_image: int,
    free: int,
    candidates: tuple[int, ...] = AUTO_BATCHES,
    factor: float = FRAGMENTED,
) -> int:
    """The largest candidate batch whose plan fits in ``HEADROOM`` of ``free`` (at least 1)."""
    for b in candidates:
        if plan_bytes(per_image, b, factor) <= HEADROOM * free:
            return b
    return 1


def _libc() -> Any:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


def compact_available() -> bool:
    """Whether the allocator can be switched (glibc)."""
    return _libc() is not None


def compact_allocator() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD`` for the rest of the process (large
    blocks are then mmap'd and returned to the system on free). False where it cannot be done
    (not glibc); idempotent."""
    global _compact
    if _compact:
        return True
    libc = _libc()
    if libc is None:
        return False
    _compact = bool(libc.mallopt(-3, MMAP_THRESHOLD))  # M_MMAP_THRESHOLD
    return _compact


def check_batch_fits(batch: int, n: int, per_image: int, free: int, factor: float) -> None:
    """Refuse ``batch`` (of ``n`` images) when its attack graph of ``per_image`` bytes does
    not fit in ``free`` bytes at ``factor``; switch glibc's allocator when that makes it fit.

    Raises:
        ConfigError: it does not fit; the message names a batch size that does.
    """
    need = plan_bytes(per_image, min(batch, n), factor)
    if need <= HEADROOM * free:
        return
    compactable = factor == FRAGMENTED and compact_available()
    if compactable and plan_bytes(per_image, min(batch, n), COMPACT) <= HEADROOM * free:
        compact_allocator()
        logger.info(
            "memory is tight (attack graph %s per image at batch %d, %s free): large blocks "
            "are now mmap'd and returned on free (glibc mmap threshold fixed)",
            gib(per_image),
            min(batch, n),
            gib(free),
        )
        return
    best = COMPACT if compactable else factor
    halvings = tuple(b for b in AUTO_BATCHES if b < min(batch, n))
    fit = fitting_batch(per_image, free, halvings or (1,), best)
    raise ConfigError(
        f"the attack passes need about {gib(need)} at --batch-size {batch} (the autograd "
        f"graph of {gib(per_image)} per image) and {gib(free)} of memory is free; pass "
        f"--batch-size {fit} or --batch-size auto"
    )


def gib(n: float) -> str:
    """``n`` bytes in GiB, one decimal."""
    return f"{n / 2**30:.1f} GiB"


def plan_batch_size(plan: EvaluationPlan, cache: AdversarialCache) -> EvaluationPlan:
    """``plan`` with its batch size checked against the memory its attack passes need.

    The autograd graph per image of every distinct attacked module of a pass still to craft is
    measured on a probe batch of two test images (:mod:`benchmark.evaluation.memory`). "auto"
    resolves to the largest batch that fits; a number that fits only with glibc's mmap
    threshold fixed switches the allocator; one that does not fit raises
    :class:`ConfigError` naming one that does. Passes already in the cache need no memory."""
    config = plan.config
    auto = config.batch_size == "auto"
    free = available_bytes(plan.device)
    modules: dict[int, torch.nn.Module] = {}
    for p in plan.passes:
        if not auto and cache.has(plan.pass_key(p)):
            continue
        modules.setdefault(id(p.target), p.target)
    if not modules or free is None:
        return _with_batch_size(plan, AUTO_BATCHES[0]) if auto else plan
    x, _ = next(iter(plan.split.batches(2, device=plan.device)))
    per_image = max(graph_bytes_per_image(m, x) for m in modules.values())
    factor = FRAGMENTED if plan.device.type == "cpu" else COMPACT
    if auto:
        batch = fitting_batch(per_image, free, factor=factor)
        logger.info(
            "--batch-size auto: %d (attack graph %s per image, %s free)",
            batch,
            gib(per_image),
            gib(free),
        )
        return _with_batch_size(plan, batch)
    check_batch_fits(int(config.batch_size), len(plan.split), per_image, free, factor)
    return plan


def _with_batch_size(plan: EvaluationPlan, batch: int) -> EvaluationPlan:
    return replace(plan, config=replace(plan.config, batch_size=batch))
