"""Device selection and reproducibility settings."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

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


CPU_ISAS = ("native", "avx2", "default")
"""Values of ``bench train --cpu-isa``: ``native`` (the kernels the CPU picks), ``avx2`` or
``default`` (ATen's portable kernels, oneDNN limited to SSE4.1)."""
ISA_ENV = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"},
    "default": {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_CBWR": "COMPATIBLE",
    },
}
"""The variables that pin each ``--cpu-isa`` other than ``native`` (set before the process
starts). MKL's branch is ``COMPATIBLE`` for both: MKL honours its other branches (``AVX2``,
``AVX512``) on Intel CPUs only and runs its ``AUTO`` branch, chosen per CPU, elsewhere
(oneMKL Developer Guide, "Getting Started with Conditional Numerical Reproducibility";
measured on an AMD EPYC: ``MKL_CBWR=AVX2`` gave the same gradients as no variable at all, and
``COMPATIBLE`` others, for every architecture of the zoo). Cards trained before this
(session 28) pinned ``MKL_CBWR=AVX2``; they record their variables, and a rebuild sets those."""
EARLIER_ISA_ENV: dict[str, tuple[dict[str, str], ...]] = {
    "avx2": ({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},),
}
"""Earlier variable sets of a ``--cpu-isa`` that a process started with them still runs (the
card records them), so the command a pinned card of session 26-27 names trains it again."""
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
"""The environment variables that choose the CPU kernels' instruction set."""


def pin_cpu_isa(isa: str, variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """Check that this process runs the CPU kernels of instruction set ``isa``, and set the
    variables that pin oneDNN and MKL to it for what starts later; returns them.

    Float results on the CPU are bit-identical only between runs of the same torch build,
    thread count and kernels: ATen and oneDNN pick AVX-512, AVX2 or portable kernels from the
    CPU, and a checkpoint trained with one differs from the first epoch from one trained with
    another. ATen reads its variable when it starts, so a process that already chose other
    kernels is refused with the command prefix that pins them.

    Args:
        isa: a :data:`CPU_ISAS` value.
        variables: the pinning variables to require instead of ``ISA_ENV[isa]`` (a rebuild
            passes the ones its card recorded, which an older card may have set otherwise);
            without them, a process started with an :data:`EARLIER_ISA_ENV` set runs that.

    Raises:
        ConfigError: an unknown ``isa``, variables that do not pin it, or kernels already
            chosen differently.
    """
    if isa not in CPU_ISAS:
        raise ConfigError(f"--cpu-isa '{isa}' is not one of {', '.join(CPU_ISAS)}")
    if isa == "native":
        return {}
    started = {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ}
    if variables:
        wanted = dict(variables)
    else:  # today's pin, or an earlier one the process was started with in full
        earlier = [dict(e) for e in EARLIER_ISA_ENV.get(isa, ()) if e == started]
        wanted = earlier[0] if earlier else dict(ISA_ENV[isa])
    if wanted.get("ATEN_CPU_CAPABILITY") != isa or set(wanted) - set(ISA_VARIABLES):
        raise ConfigError(
            f"kernel variables {wanted} do not pin --cpu-isa {isa}: they need "
            f"ATEN_CPU_CAPABILITY={isa} and only {', '.join(ISA_VARIABLES)}"
        )
    running = torch.backends.cpu.get_cpu_capability().lower()
    # ATen's kernels are the pinned ones either because the CPU has nothing better (then
    # oneDNN has nothing better either) or because the variables were set at the start, all
    # of them: ATen's alone would leave oneDNN on the CPU's best.
    partial = "ATEN_CPU_CAPABILITY" in os.environ and any(
        os.environ.get(k) != v for k, v in wanted.items()
    )
    if running != isa or partial:
        prefix = " ".join(f"{k}={v}" for k, v in wanted.items())
        raise ConfigError(
            f"this process does not run the {isa} CPU kernels throughout (ATen's are {running}; "
            f"started with {started or 'no kernel variables'}): start it as `{prefix} bench ...` "
            "(the kernels are chosen when it starts)"
        )
    os.environ.update(wanted)
    return wanted


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with torch's generators seeded by ``seed`` and put them back afterwards:
    the CPU's and, on CUDA, ``device``'s (``torch.manual_seed`` reseeds every CUDA generator,
    so forking only the CPU's would leave the device's reset for whatever runs next)."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


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
