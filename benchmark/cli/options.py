"""Option help texts shared by several ``bench`` commands."""

from __future__ import annotations

DATA_DIR_HELP = "Data root (else $BENCH_DATA_DIR, else medmnist's ~/.medmnist)."
ZOO_HELP = "Model zoo folder (else $BENCH_ZOO_DIR, else ~/.cache/medrobustbench/zoo)."
ISOLATION_HELP = (
    "Where the submission's code runs: sandbox (bubblewrap: no network, read-only files, "
    "memory, process and time limits), builtin (the pinned built-in submissions in this "
    "process, every other one sandboxed) or none (all in this process, unsandboxed: your "
    "explicit opt-out). Else $BENCH_ISOLATION, else sandbox."
)
SANDBOX_LIMIT_HELP = (
    "A sandbox limit, name=value: memory_mib, processes, cpu_seconds, wall_seconds (per "
    "request), scratch_mib (repeat the option)."
)
