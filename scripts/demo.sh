#!/usr/bin/env bash
# Main job: install, make the sample tilt series (images and clicked markers with a known misalignment),
# align it, write the aligned stack and a tomogram, and align IMOD's BBa markers; all in demo-output/
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup-env.sh"
out="${1:-$here/demo-output}"
"$here/.venv/bin/tomoalign" demo --output "$out" --force
D="$here/tests/data/imod-tutorial-BB"
if [ -f "$D/BBa.fid" ]; then
  "$here/.venv/bin/tomoalign" align "$D/BBa.fid" --tilt-angles "$D/BBa.rawtlt" --tilt-axis -12.5 \
    --pixel-size-nm 2.02 --output "$out/BBa" --force
fi
# The plugin: napari is not installed by the lines above (the command line needs no GUI).
cat <<MSG

To open it in napari with the TomoAlign dock (Plugins > TomoAlign > Align tilt series):
  "$here/.venv/bin/python" -m pip install -e "$here[napari]" PyQt6    # once: napari, a Qt binding, the plots
  "$here/.venv/bin/napari" "$out/sample.mrc" "$out/sample_markers.csv"
(or 'napari' in any environment where napari-tomoalign[napari] is installed; File > Open Sample > TomoAlign
opens the sample too)
MSG
