#!/usr/bin/env bash
# Sets everything up and starts the app: venv, install, MovieLens, a default model, Streamlit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/recsys data
runs_dir="${RECSYS_RUNS_DIR:-runs}"
if ! ls "$runs_dir"/*/weights.npz >/dev/null 2>&1; then
  echo "==> training the default model (mf-bpr) so every page works on first launch"
  .venv/bin/recsys train --out "$runs_dir/mf-bpr-default"
fi
echo "==> starting the app on http://127.0.0.1:${PORT:-8501}"
exec .venv/bin/python -m streamlit run streamlit_app.py --server.port "${PORT:-8501}" "$@"
