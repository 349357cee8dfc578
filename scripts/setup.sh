#!/usr/bin/env bash
# Creates .venv and installs the project into it (idempotent: skipped when nothing changed).
#   bash scripts/setup.sh          runtime dependencies
#   bash scripts/setup.sh test     plus test tools (pytest, ruff, playwright) and Debian Chromium
# On Linux, PyPI's torch wheel is the CUDA build (several GB with its nvidia-* packages). For
# the CPU-only build, name a CPU wheel index, e.g.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Python 3.11+ is needed, found {sys.version.split()[0]}: set PYTHON=/path/to/python3.11")
PY

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

extras=""
[ "${1:-}" = "test" ] && extras="[test]"
# A new TORCH_INDEX_URL means a new install (unset: the same stamp as always).
stamp="$VENV/.installed-$( (cat pyproject.toml; echo "$extras"; [ -z "${TORCH_INDEX_URL:-}" ] || echo "$TORCH_INDEX_URL") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> installing dependencies into $VENV (first time: about 2 minutes)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # Exactly this torch, installed first so that `pip install -e .` keeps it. From PyPI (the
  # default) Linux gets the CUDA build; TORCH_INDEX_URL picks another index (a CPU one).
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "==> torch==2.13.0 from $TORCH_INDEX_URL"
    "$VENV/bin/python" -m pip install --quiet --index-url "$TORCH_INDEX_URL" "torch==2.13.0"
  else
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  fi
  "$VENV/bin/python" -m pip install --quiet -e ".$extras"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

if [ "${1:-}" = "test" ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian Chromium for the browser tests"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
