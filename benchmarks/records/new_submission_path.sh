#!/usr/bin/env bash
# A new user's path, from the template to a validated, evaluated, bundled submission, and a
# maintainer's re-run of the bundle on a clean clone. Every command and its output is logged.
set -uo pipefail
# SCRATCH: a scratch folder; BENCH: the bench command of a venv; REPO: the clone to start from;
# DATA: the data folder.
: "${SCRATCH:?set SCRATCH}" "${BENCH:?set BENCH}" "${REPO:?set REPO}" "${DATA:?set DATA}"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=$SCRATCH/nu
rm -rf $SCRATCH/nu $SCRATCH/nu2 $SCRATCH/nu_zoo $SCRATCH/nu_results $SCRATCH/nu_cache $SCRATCH/nu_bundles
git clone -q "$REPO" $SCRATCH/nu
cd $SCRATCH/nu
git config user.email new@user.example; git config user.name "New User"
run() { echo "\$ $*"; /usr/bin/time -f "[%e s]" "$@" 2>&1; echo; }
run $BENCH new-submission mirror_avg --kind wrapper
run $BENCH validate mirror_avg
git add submissions/mirror_avg && git commit -qm "mirror_avg: a test-time mirror-averaging wrapper"
echo "\$ git add submissions/mirror_avg && git commit  ->  $(git log --oneline | head -1)"
run $BENCH evaluate -d breastmnist -m tiny_cnn --protocol mrb_linf_adaptive_v1 --defense mirror_avg \
    --train-if-missing --epochs 10 --zoo $SCRATCH/nu_zoo --data-dir "$DATA" \
    --out $SCRATCH/nu_results --cache-dir $SCRATCH/nu_cache
RESULT=$(find $SCRATCH/nu_results -name '*.json' | head -1)
run $BENCH submit mirror_avg "$RESULT" --out $SCRATCH/nu_bundles
BUNDLE=$(ls $SCRATCH/nu_bundles/*.bundle.tar.gz)
git clone -q "$REPO" $SCRATCH/nu2
cd $SCRATCH/nu2
export PYTHONPATH=$SCRATCH/nu2
run $BENCH submit --rerun "$BUNDLE" --data-dir "$DATA" --zoo $SCRATCH/nu_zoo
echo finished
