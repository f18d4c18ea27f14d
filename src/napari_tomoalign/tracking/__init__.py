"""Automatic fiducial tracking: from a raw tilt series to a marker model, with no clicks (GUI-free).

The chain follows IMOD's (``tiltxcorr`` -> ``autofidseed`` -> ``beadtrack``), with our own solver as the
tracker's model:

- `coarse_align`: neighbour-view cross-correlation with cosine stretching, on a binned copy;
- `find_beads`: matched filter, strength against the local background, threshold at the histogram dip,
  clumps flagged; `estimate_bead_diameter` measures the diameter, `diameter_px_from_nm` converts it;
- `pick_seeds`: a target number of beads spread over the field and both surfaces, clumps and borders
  avoided;
- `track_beads`: all of it, then tracking outward from the seed view with the partial alignment's
  predictions, a gap-filling second pass, a re-fit of every point under the prewhitened background (so
  that stain texture does not pull a bead's centre the same way in every view) and a robust final fit;
  returns a `TrackingResult` whose ``markers`` table is what `align_markers` reads.
  `write_tracked_markers` saves it as ``.csv`` or ``.fid``. Beads over 20 px are tracked on a copy
  binned to 8-16 px (`working_binning`, `binned`); ``clumps="track"`` tracks the beads of clumps too;
- `measure_bead_diameter` / `diameter_to_track`: the diameter measured on the data, from a rough one or
  from nothing (``auto``), and checked against a given one (`DiameterError` when far off).
"""

import importlib
from typing import Any

# Public names and the module each lives in; loaded on first use, so that the command line, which only
# registers `tomoalign track` and `run`, does not pay for scipy.ndimage and the FFT code at start-up.
_WHERE = {
    "BeadCandidates": "beads", "BeadFindingError": "beads", "diameter_px_from_nm": "beads",
    "estimate_bead_diameter": "diameter", "find_beads": "beads", "CoarseAlignment": "coarse", "coarse_align": "coarse",
    "track_beads": "pipeline", "BeadQuality": "result", "TrackingResult": "result",
    "write_bead_quality_csv": "result", "write_tracked_markers": "result", "pick_seeds": "seeds",
    "DiameterError": "diameter", "diameter_to_track": "diameter", "measure_bead_diameter": "diameter",
    "working_binning": "binned",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BeadCandidates",
    "BeadFindingError",
    "BeadQuality",
    "CoarseAlignment",
    "DiameterError",
    "TrackingResult",
    "coarse_align",
    "diameter_px_from_nm",
    "diameter_to_track",
    "estimate_bead_diameter",
    "find_beads",
    "measure_bead_diameter",
    "pick_seeds",
    "track_beads",
    "write_bead_quality_csv",
    "working_binning",
    "write_tracked_markers",
]
