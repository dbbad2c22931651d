"""Option help texts shared by several ``bench`` commands."""

from __future__ import annotations

DATA_DIR_HELP = "Data root (else $BENCH_DATA_DIR, else medmnist's ~/.medmnist)."
ZOO_HELP = "Model zoo folder (else $BENCH_ZOO_DIR, else ~/.cache/medrobustbench/zoo)."
