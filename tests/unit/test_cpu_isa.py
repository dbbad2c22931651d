"""Pinning the CPU kernels' instruction set for bit-reproducible training on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from benchmark.device import ISA_ENV, pin_cpu_isa
from benchmark.errors import ConfigError
from benchmark.results.provenance import environment


def test_the_running_kernels_are_checked_and_recorded(monkeypatch):
    for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR"):
        monkeypatch.delenv(k, raising=False)
    assert pin_cpu_isa("native") == {}
    running = torch.backends.cpu.get_cpu_capability().lower()
    other = "default" if running != "default" else "avx2"
    with pytest.raises(ConfigError, match=f"does not run the {other} CPU kernels throughout"):
        pin_cpu_isa(other)
    with pytest.raises(ConfigError, match="--cpu-isa 'sse' is not one of native, avx2, default"):
        pin_cpu_isa("sse")
    env = environment("cpu")
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu"] and env["cpu_isa_env"] == {}
    # Unpinned, ATen runs the widest kernels the machine offers: the machine's own level.
    assert env["cpu_host_isa"] in (env["cpu_capability"], "unknown")


def test_a_process_started_pinned_runs_and_records_those_kernels():
    """Started with the variables (as the refusal says), the process runs the portable kernels
    whatever the CPU, and its provenance says so."""
    code = (
        "from benchmark.device import pin_cpu_isa\n"
        "from benchmark.results.provenance import environment\n"
        "pin_cpu_isa('default')\n"
        "e = environment('cpu')\n"
        "print(e['cpu_capability'], e['cpu_host_isa'], sorted(e['cpu_isa_env'].items()))"
    )
    env = {
        **os.environ,
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_CBWR": "COMPATIBLE",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[0] == "DEFAULT"
    # The machine is still recorded as what it is: a pin does not hide which CPU ran it.
    assert out.stdout.split()[1] in (torch.backends.cpu.get_cpu_capability(), "unknown")
    assert "('ATEN_CPU_CAPABILITY', 'default')" in out.stdout
    partial = {k: v for k, v in env.items() if k != "ONEDNN_MAX_CPU_ISA"}
    out = subprocess.run([sys.executable, "-c", code], env=partial, capture_output=True, text=True)
    assert out.returncode != 0 and "does not run the default CPU kernels throughout" in out.stderr


def test_a_rebuild_pins_the_variables_its_card_recorded():
    """A card pinned before MKL's branch became COMPATIBLE recorded MKL_CBWR=AVX2: a process
    started with those runs its rebuild, one started with today's pin is refused with the
    card's prefix, and variables that do not pin the kernels are refused before any work."""
    code = (
        "from benchmark.device import pin_cpu_isa\n"
        "old = {'ATEN_CPU_CAPABILITY': 'default', 'ONEDNN_MAX_CPU_ISA': 'SSE41', "
        "'MKL_CBWR': 'AVX2'}\n"
        "print(sorted(pin_cpu_isa('default', old).items()))"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    old = {**base, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**old, "MKL_CBWR": "AVX2"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "('MKL_CBWR', 'AVX2')" in out.stdout
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**old, "MKL_CBWR": "COMPATIBLE"},
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "ONEDNN_MAX_CPU_ISA=SSE41 MKL_CBWR=AVX2 bench" in out.stderr
    with pytest.raises(ConfigError, match="do not pin --cpu-isa avx2"):
        pin_cpu_isa("avx2", {"ATEN_CPU_CAPABILITY": "default"})
    with pytest.raises(ConfigError, match="do not pin --cpu-isa avx2"):
        pin_cpu_isa("avx2", {"ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "1"})


def test_bench_train_pins_mkls_branch_that_every_vendor_honours():
    """MKL honours MKL_CBWR branches other than AUTO and COMPATIBLE on Intel CPUs only, so
    both pins ask for COMPATIBLE."""
    assert {v["MKL_CBWR"] for v in ISA_ENV.values()} == {"COMPATIBLE"}


def test_bench_train_still_runs_the_pin_an_earlier_card_names():
    """A process started with the AVX2 pin of sessions 26-27 (MKL_CBWR=AVX2) is accepted by
    ``--cpu-isa avx2`` and records those variables; a mix of the two pins is refused."""
    code = "from benchmark.device import pin_cpu_isa\nprint(sorted(pin_cpu_isa('avx2').items()))"
    base = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    pinned = {**base, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    for mkl in ("AVX2", "COMPATIBLE"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**pinned, "MKL_CBWR": mkl},
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"('MKL_CBWR', '{mkl}')" in out.stdout
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**pinned, "MKL_CBWR": "AUTO"},
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "MKL_CBWR=COMPATIBLE bench" in out.stderr
