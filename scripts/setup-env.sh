#!/usr/bin/env bash
# Creates .venv (if missing) and installs the package with the given extras. Sourced by the
# demo and test scripts; safe to run again.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x "$here/.venv/bin/python" ]; then
  "$python" -m venv "$here/.venv"
  "$here/.venv/bin/python" -m pip install -q --upgrade pip
fi
spec="$here"
[ -n "$extras" ] && spec="$here[$extras]"
"$here/.venv/bin/python" -m pip install -q -e "$spec"
