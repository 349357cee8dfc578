#!/usr/bin/env bash
# Creates .venv and installs the project into it, once: a later call does nothing (in well under
# a second) until pyproject.toml, constraints.txt or TORCH_INDEX_URL changes. Every package comes
# at the exact version constraints.txt names (refreshed by scripts/lock.sh), so a fresh machine
# gets the versions the suite last passed with.
#   bash scripts/setup.sh          runtime dependencies
#   bash scripts/setup.sh test     plus test tools (pytest, ruff, playwright), Debian Chromium and Caddy
# One venv serves both: an install with the test tools also satisfies the runtime call, and the
# test tools are added to a runtime install without reinstalling the rest.
# On Linux, PyPI's torch wheel is the CUDA build (several GB with its nvidia-* packages). For
# the CPU-only build, name a CPU wheel index, e.g.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
# setuptools prints a many-line "BuildBackendWarning: Editable installation" banner on every
# `pip install -e .`, even with --quiet; it warns about a layout this repo does not have.
export PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"Python 3.11+ is needed, found {sys.version.split()[0]}: set PYTHON=/path/to/python3.11")
PY
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# One stamp per installed state: <hash of pyproject.toml, constraints.txt and TORCH_INDEX_URL>-
# <runtime|test>. A new lock or TORCH_INDEX_URL means a new install.
key="$( (cat pyproject.toml constraints.txt; [ -z "${TORCH_INDEX_URL:-}" ] || echo "$TORCH_INDEX_URL") \
        | sha256sum | cut -c1-16)"
lock=(-c constraints.txt)
want="runtime"
[ "${1:-}" = "test" ] && want="test"
if [ -f "$VENV/.installed-$key-test" ] || [ -f "$VENV/.installed-$key-$want" ]; then
  : # installed already, with at least what is asked for
elif [ "$want" = "test" ] && [ -f "$VENV/.installed-$key-runtime" ]; then
  echo "==> adding the test tools to $VENV"
  "$VENV/bin/python" -m pip install --quiet "${lock[@]}" -e ".[test]"
  rm -f "$VENV"/.installed-*
  touch "$VENV/.installed-$key-test"
else
  if ! ls "$VENV"/.installed-* >/dev/null 2>&1; then  # a new venv (or an unfinished install)
    echo "==> installing dependencies into $VENV (first time: about 2 minutes)"
  else
    echo "==> updating $VENV: pyproject.toml, constraints.txt or TORCH_INDEX_URL changed since its last install"
  fi
  "$VENV/bin/python" -m pip install --quiet "${lock[@]}" --upgrade pip
  # Exactly this torch, installed first so that `pip install -e .` keeps it. From PyPI (the
  # default) Linux gets the CUDA build; TORCH_INDEX_URL picks another index (a CPU one).
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    # torch alone from that index; its own dependencies come from PyPI at the locked versions
    # in the next step (the index need not carry those exact versions).
    echo "==> torch==2.13.0 from $TORCH_INDEX_URL"
    "$VENV/bin/python" -m pip install --quiet --no-deps --index-url "$TORCH_INDEX_URL" "torch==2.13.0"
  else
    "$VENV/bin/python" -m pip install --quiet "${lock[@]}" "torch==2.13.0"
  fi
  # Keep the test tools of an earlier install: test.sh and run.sh share this venv.
  kind="$want"
  ls "$VENV"/.installed-*-test >/dev/null 2>&1 && kind="test"
  extras=""
  [ "$kind" = "test" ] && extras="[test]"
  "$VENV/bin/python" -m pip install --quiet "${lock[@]}" -e ".$extras"
  rm -f "$VENV"/.installed-*
  touch "$VENV/.installed-$key-$kind"
fi

# Debian packages of the tests: Chromium (browser tests) and Caddy (the classroom proxy).
missing=""
[ -x /usr/bin/chromium ] || missing="chromium"
command -v caddy >/dev/null || missing="$missing caddy"
if [ "$want" = "test" ] && [ -n "$missing" ]; then
  echo "==> installing Debian's$missing for the browser and classroom tests"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
