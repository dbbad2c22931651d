#!/usr/bin/env bash
# A new user's path, from the template to a validated, evaluated, bundled submission, and a
# maintainer's re-run of the bundle on a clean clone. Every command and its output is logged.
set -uo pipefail
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=/tmp/nu
BENCH=/work/main/.venv/bin/bench
rm -rf /tmp/nu /tmp/nu2 /tmp/nu_zoo /tmp/nu_results /tmp/nu_cache /tmp/nu_bundles
git clone -q /work/main /tmp/nu
cd /tmp/nu
git config user.email new@user.example; git config user.name "New User"
run() { echo "\$ $*"; /usr/bin/time -f "[%e s]" "$@" 2>&1; echo; }
run $BENCH new-submission mirror_avg --kind wrapper
run $BENCH validate mirror_avg
git add submissions/mirror_avg && git commit -qm "mirror_avg: a test-time mirror-averaging wrapper"
echo "\$ git add submissions/mirror_avg && git commit  ->  $(git log --oneline | head -1)"
run $BENCH evaluate -d breastmnist -m tiny_cnn --protocol mrb_linf_adaptive_v1 --defense mirror_avg \
    --train-if-missing --epochs 10 --zoo /tmp/nu_zoo --data-dir /work/shared/data \
    --out /tmp/nu_results --cache-dir /tmp/nu_cache
RESULT=$(find /tmp/nu_results -name '*.json' | head -1)
run $BENCH submit mirror_avg "$RESULT" --out /tmp/nu_bundles
BUNDLE=$(ls /tmp/nu_bundles/*.bundle.tar.gz)
git clone -q /work/main /tmp/nu2
cd /tmp/nu2
export PYTHONPATH=/tmp/nu2
run $BENCH submit --rerun "$BUNDLE" --data-dir /work/shared/data --zoo /tmp/nu_zoo
echo finished
