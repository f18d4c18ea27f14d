#!/usr/bin/env bash
# Main job: install, simulate a misaligned tilt series' markers, align them, write the outputs
# to demo-output/ (the inputs the demo made sit beside them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup-env.sh"
out="${1:-$here/demo-output}"
"$here/.venv/bin/tomoalign" demo --output "$out" --force
D="$here/../shared/data/imod-tutorial-BB"
if [ -f "$D/BBa.fid" ]; then
  "$here/.venv/bin/tomoalign" align "$D/BBa.fid" --tilt-angles "$D/BBa.rawtlt" --tilt-axis -12.5 \
    --pixel-size-nm 2.02 --output "$out/BBa" --force
fi
