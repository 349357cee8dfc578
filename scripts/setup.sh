#!/usr/bin/env bash
# Creates .venv and installs the project into it (idempotent: skipped when nothing changed).
#   bash scripts/setup.sh          runtime dependencies
#   bash scripts/setup.sh test     plus test tools (pytest, ruff, playwright) and Debian Chromium
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
stamp="$VENV/.installed-$( (cat pyproject.toml; echo "$extras") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "==> installing dependencies into $VENV (first time: about 2 minutes)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # Exactly this torch: the CPU build. A looser spec can pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
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
