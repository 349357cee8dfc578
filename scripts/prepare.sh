#!/usr/bin/env bash
# Sets up the venv (scripts/setup.sh) and prepares the class set (recsys/jobs/class_set.py):
# the default model (mf-als, pinned), an mf-bpr run for the training lessons and every
# baseline, trained once and kept; their maps are computed in the background at low priority.
# Shared by scripts/run.sh (one server) and scripts/classroom.sh (one per core, behind Caddy).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
runs_dir="${RECSYS_RUNS_DIR:-runs}"
# The folders of CLASS_RUNS in recsys/jobs/class_set.py (a test keeps the two lists equal).
class_runs="default class-mf-bpr class-mf-bpr-decay class-popularity class-itemknn class-ease class-svd class-mf-als-recency"
for run in $class_runs; do
  if [ ! -f "$runs_dir/$run/weights.npz" ]; then
    echo "==> preparing the class set: the default model (mf-als), mf-bpr, the baselines and the tuned mf-als"
    .venv/bin/recsys prepare-class --no-maps --runs-dir "$runs_dir"
    break
  fi
done
# RECSYS_CLASS_SET=no-maps leaves the maps to the pages (computed on first view), as in tests.
if [ "${RECSYS_CLASS_SET:-}" != "no-maps" ] && ! ls "$runs_dir"/default/projections/items-debiased-min5-umap-*.npz \
        "$runs_dir"/class-mf-bpr/projections/items-debiased-min5-tsne-*.npz >/dev/null 2>&1; then
  echo "==> computing the class set's maps in the background (about a minute; log: $runs_dir/.class.log)"
  nice -n 10 .venv/bin/recsys prepare-class --maps-only --runs-dir "$runs_dir" \
    >"$runs_dir/.class.log" 2>&1 &
fi
