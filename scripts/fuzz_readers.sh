#!/usr/bin/env bash
# A longer, randomised fuzzing campaign of every reader and of the solver's property tests (CI runs
# the same tests derandomized, so that its cases are the same on every run):
#   scripts/fuzz_readers.sh [EXAMPLES]     (default 20000 per test)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_RANDOM=1 FUZZ_EXAMPLES="${1:-20000}" PROPERTY_EXAMPLES="${1:-20000}" "$here/.venv/bin/python" -m pytest -q \
  "$here/tests/io/test_fuzz.py" "$here/tests/alignment/test_properties.py" -p no:cacheprovider
