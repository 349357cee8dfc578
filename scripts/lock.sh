#!/usr/bin/env bash
# Refreshes constraints.txt: the exact version of every package that `scripts/setup.sh` installs
# (runtime and test tools), resolved anew from pyproject.toml's ranges in a throwaway venv.
#   bash scripts/lock.sh            then: bash scripts/test.sh, and commit constraints.txt
# setup.sh installs through this file, so a fresh machine next month gets the same numpy,
# scipy, torch, streamlit ... as the machine that ran the suite. pyproject.toml keeps ranges for
# people who install the package into their own environment.
# torch is written without its local build label (2.13.0, not 2.13.0+cpu): the same lock then
# admits PyPI's CUDA wheel and a CPU index's wheel of the same release.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
# setuptools' many-line "Editable installation" banner (as in setup.sh): not about this layout.
export PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Editable installation"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "==> resolving the newest versions pyproject.toml allows, in $tmp/venv"
"$PYTHON" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
torch_pin="$(grep -oE '"torch==[^"]+"' pyproject.toml | tr -d '"')"
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  "$tmp/venv/bin/python" -m pip install --quiet --no-deps --index-url "$TORCH_INDEX_URL" "$torch_pin"
else
  "$tmp/venv/bin/python" -m pip install --quiet "$torch_pin"
fi
"$tmp/venv/bin/python" -m pip install --quiet -e ".[test]"  # editable: no build/ left in the tree
{
  echo "# Exact versions for scripts/setup.sh (pip install -c constraints.txt). Written by"
  echo "# scripts/lock.sh on $(date -u +%Y-%m-%d) with Python $("$tmp/venv/bin/python" -c \
       'import platform; print(platform.python_version())') on $(uname -sm); do not edit by hand."
  "$tmp/venv/bin/python" -m pip freeze --all --exclude-editable \
    | grep -viE '^(movielens-embeddings|nvidia-|triton)[=@ ]' \
    | sed -E 's/^(torch==[^+]+)\+.*/\1/' \
    | LC_ALL=C sort -f
} > constraints.txt
echo "==> wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
