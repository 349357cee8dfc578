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
bash scripts/prepare.sh
echo "==> starting the app on http://127.0.0.1:$port"
exec .venv/bin/python -m streamlit run streamlit_app.py --server.port "$port" "$@"
