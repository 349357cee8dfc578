#!/usr/bin/env bash
# Sets everything up and starts the app: venv, install, MovieLens, a pinned default model,
# Streamlit. Extra arguments go to Streamlit (e.g. --server.address 0.0.0.0).
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
default_run="$runs_dir/default"
if [ ! -f "$default_run/weights.npz" ]; then
  .venv/bin/recsys data  # where MovieLens comes from, and its counts, before the first training
  echo "==> training the default model (mf-als) so every page works on first launch"
  .venv/bin/recsys train --out "$default_run"
fi
if ! .venv/bin/recsys pin --show --runs-dir "$runs_dir" | grep -qv "no run is pinned"; then
  .venv/bin/recsys pin "$default_run"
fi
if ! ls "$default_run"/projections/items-umap-*.npz >/dev/null 2>&1; then
  echo "==> computing the default model's t-SNE and UMAP maps in the background (about a minute)"
  (nice -n 10 .venv/bin/recsys project "$default_run" --method tsne >/dev/null 2>&1 || true
   nice -n 10 .venv/bin/recsys project "$default_run" --method umap >/dev/null 2>&1 || true) &
fi
echo "==> starting the app on http://127.0.0.1:$port"
exec .venv/bin/python -m streamlit run streamlit_app.py --server.port "$port" "$@"
