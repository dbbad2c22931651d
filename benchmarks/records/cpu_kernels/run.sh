#!/bin/bash
# usage: run.sh <worktree> <name> <epochs> [extra env assignments...]
wt=$1; name=$2; ep=$3; shift 3
cd $wt
start=$(date +%s)
env OMP_NUM_THREADS=${THREADS:-2} HF_HUB_OFFLINE=1 PYTHONPATH=$wt "$@" /work/main/.venv/bin/python -m benchmark.cli.main train --dataset breastmnist --arch resnet18 --size 28 --epochs $ep --seed 0 --data-dir /work/shared/data --zoo /tmp/repro/$name
echo "EXIT $? wall $(( $(date +%s) - start )) s"
