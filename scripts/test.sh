#!/usr/bin/env bash
# Sets everything up (venv, test tools, Chromium, MovieLens) and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not browser"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# MovieLens: fetched once (a few seconds). Skipped when a copy the loader reads without the
# network is there already: a data folder, or the cache of recsys/data/loading.py (its ml-100k/
# folder or the recbole wheel in wheels/).
cache="${RECSYS_CACHE_DIR:-$HOME/.cache/movielens-embeddings}"
if [ -z "${RECSYS_DATA_DIR:-}" ] && [ ! -f "$cache/ml-100k/u.data" ] \
   && [ ! -f "$cache/wheels/recbole-1.2.1-py3-none-any.whl" ]; then
  .venv/bin/recsys data || echo "==> MovieLens unavailable: the tests that need it will be skipped"
fi
exec .venv/bin/python -m pytest "$@"
