#!/bin/bash
# usage: PY=<venv python> DATA=<data dir> SCRATCH=<scratch dir> run.sh <worktree> <name> <epochs> [extra env assignments...]
: "${PY:?set PY to the python of a venv}" "${DATA:?set DATA to the data folder}" "${SCRATCH:?set SCRATCH to a scratch folder}"
wt=$1; name=$2; ep=$3; shift 3
cd $wt
start=$(date +%s)
env OMP_NUM_THREADS=${THREADS:-2} HF_HUB_OFFLINE=1 PYTHONPATH=$wt "$@" "$PY" -m benchmark.cli.main train --dataset breastmnist --arch resnet18 --size 28 --epochs $ep --seed 0 --data-dir "$DATA" --zoo "$SCRATCH/$name"
echo "EXIT $? wall $(( $(date +%s) - start )) s"
