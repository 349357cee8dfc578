#!/usr/bin/env bash
# Sets everything up (venv, test tools, Chromium, MovieLens) and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not browser"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/recsys data || echo "==> MovieLens unavailable: the tests that need it will be skipped"
exec .venv/bin/python -m pytest "$@"
