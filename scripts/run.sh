#!/usr/bin/env bash
# Sets everything up and starts the app: venv, install, MovieLens, the class set (a pinned
# default model, an mf-bpr run and the baselines, with their maps), Streamlit. Extra
# arguments go to Streamlit (e.g. --server.address 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${PORT:-8501}"
# A busy port is found before any set-up or training, not after it (a server that stopped a
# moment ago, leaving only TIME-WAIT connections, does not count as busy).
if ! "${PYTHON:-$(command -v python3.11 || command -v python3)}" scripts/port_is_free.py "$port"; then
  echo "Port $port is busy (another app already running?). Start on another one with: PORT=8600 bash scripts/run.sh" >&2
  exit 1
fi
bash scripts/setup.sh
runs_dir="${RECSYS_RUNS_DIR:-runs}"
# The class set (recsys/jobs/class_set.py): the default model, pinned, an mf-bpr run for the
# training lessons and every baseline, so every tour step and Train lesson has its figure.
class_runs="default class-mf-bpr class-popularity class-itemknn class-ease class-svd"
for run in $class_runs; do
  if [ ! -f "$runs_dir/$run/weights.npz" ]; then
    echo "==> preparing the class set: the default model (mf-als), mf-bpr and the baselines"
    .venv/bin/recsys prepare-class --no-maps --runs-dir "$runs_dir"
    break
  fi
done
if ! ls "$runs_dir"/default/projections/items-umap-*.npz "$runs_dir"/class-mf-bpr/projections/items-umap-*.npz >/dev/null 2>&1; then
  echo "==> computing the class set's maps in the background (about a minute; log: $runs_dir/.class.log)"
  nice -n 10 .venv/bin/recsys prepare-class --maps-only --runs-dir "$runs_dir" >"$runs_dir/.class.log" 2>&1 &
fi
echo "==> starting the app on http://127.0.0.1:$port"
exec .venv/bin/python -m streamlit run streamlit_app.py --server.port "$port" "$@"
