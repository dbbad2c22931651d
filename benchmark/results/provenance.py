"""Provenance recorded in every model card and results file: versions, environment, git."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchmark

if TYPE_CHECKING:
    import torch

_PACKAGES = (
    "torch",
    "torchvision",
    "torchattacks",
    "medmnist",
    "datasets",
    "numpy",
    "scipy",
    "scikit-image",
    "imagecorruptions-imaug",
)


def utc_now() -> str:
    """Current UTC time as ISO-8601 with a ``Z`` suffix, second precision."""
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0)
    return now.isoformat().replace("+00:00", "Z")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages results depend on ("not installed" if absent)."""
    out = {"medrobustbench": benchmark.__version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> dict[str, object]:
    """The git commit of the benchmark source tree and whether it has local changes.

    Call it when a run starts: the code that runs is the code imported then, and a long run
    may outlive the commit that was checked out when it began.
    """
    root = Path(benchmark.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        )
        return {"commit": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": False}


def _git_lines(folder: Path, *args: str) -> list[str] | None:
    """The NUL-separated output of ``git -C folder args`` (None when git or the repository is
    not there)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line for line in out.split("\0") if line]


def git_tracked_files(folder: str | Path) -> dict[str, bool]:
    """The files under ``folder`` that git tracks, each with whether it differs from the
    checked-out commit (an edit, staged or not): relative POSIX path -> modified.

    Files git does not track (untracked or ignored) are absent; so is everything when
    ``folder`` is not inside a git work tree or git is not installed.
    """
    folder = Path(folder)
    tracked = _git_lines(folder, "ls-files", "-z", "--", ".")
    if tracked is None:
        return {}
    modified = set(_git_lines(folder, "diff", "--name-only", "--relative", "-z", "HEAD") or [])
    return {path: path in modified for path in tracked}


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _host_isa() -> str:
    """The widest kernel level this CPU offers whatever the process pins (``AVX512``, ``AVX2``,
    ``DEFAULT``; ``unknown`` where ``/proc/cpuinfo`` lists no x86 flags): the machine, where
    ``cpu_capability`` is what ATen runs (a pinned process on an AVX-512 CPU runs ``AVX2``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
                    return "AVX512"
                return "AVX2" if {"avx2", "fma"} <= flags else "DEFAULT"
    except OSError:
        pass
    return "unknown"


def cpu_vendor(model: Any) -> str | None:
    """The vendor of a CPU model name (``intel``, ``amd``), None where it is not known."""
    words = str(model or "").lower().replace("(r)", " ").replace("(tm)", " ").split()
    if {"intel", "xeon", "genuineintel"} & set(words):
        return "intel"
    # Not "amd64" (the platform's name for any x86-64 CPU where /proc/cpuinfo is missing).
    if {"amd", "epyc", "ryzen", "authenticamd"} & set(words):
        return "amd"
    return None


def mkl_branch(env: dict[str, Any]) -> str | None:
    """The MKL code branch a pinned run's ``environment`` ran: its ``MKL_CBWR`` where MKL
    honours it (``COMPATIBLE`` everywhere, the others on Intel CPUs only), else ``AUTO for
    AMD`` or ``AUTO for Intel`` (the branch MKL picks for the CPU); None where the vendor that
    decides it is not known. oneMKL Developer Guide, "Getting Started with Conditional Numerical
    Reproducibility": settings other than AUTO or COMPATIBLE are available only for Intel
    processors, and elsewhere the AUTO branch is used without a warning."""
    value = str((env.get("cpu_isa_env") or {}).get("MKL_CBWR") or "AUTO").upper()
    branch = value.split(",")[0].removeprefix("BRANCH=")
    if branch == "COMPATIBLE":
        return branch
    vendor = cpu_vendor(env.get("cpu"))
    if vendor is None:
        return None
    if branch != "AUTO" and vendor == "intel":
        return branch
    return f"AUTO for {'AMD' if vendor == 'amd' else 'Intel'}"


def environment(device: torch.device | str | None = None) -> dict[str, object]:
    """Python, platform, torch build, device and thread count of this run."""
    import torch  # here, not at the top: reading results must not load torch

    from benchmark.device import ISA_VARIABLES

    dev = torch.device(device) if device is not None else torch.device("cpu")
    env: dict[str, object] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "device": str(dev),
        "num_threads": torch.get_num_threads(),
        # The CPU kernels' instruction set (ATen's dispatch: default, avx2, avx512...) and the
        # CPU: float results on the CPU are bit-identical only between runs that share them.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": _cpu_model(),
        "cpu_host_isa": _host_isa(),
        "cpu_isa_env": {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ},
    }
    if dev.type == "cuda" and torch.cuda.is_available():
        env["device_name"] = torch.cuda.get_device_name(dev)
    return env
