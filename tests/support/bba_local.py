"""BBa's local alignments as the benchmarks solve them (IMOD's tutorial markers, aligna.com's global and local
options, 5 x 5 patches), projected for a 512 x 512 stack: the tests' real local file."""

from __future__ import annotations

import numpy as np

from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.alignment.local import local_alignments
from napari_tomoalign.alignment.local_options import local_options_from_com
from napari_tomoalign.alignment.solver import align_markers
from napari_tomoalign.io.imod_com import read_com_section
from napari_tomoalign.io.imod_model import read_imod_model
from napari_tomoalign.reconstruction.local_warp import LocalProjection, local_projection


def bba_local_projection(imod_data) -> tuple[LocalProjection, np.ndarray]:
    """``(local projection, solved tilts)`` of BBa's local file for a 512 x 512 stack."""
    table = read_imod_model(imod_data / "BBa.fid")
    raw = np.loadtxt(imod_data / "BBa.rawtlt")
    entries = read_com_section(imod_data / "aligna.com")
    sol = align_markers(table.view, table.marker, table.xy, raw, table.image_size,
                        settings=settings_from_com(entries, raw), warn=False)
    la = local_alignments(table.view, np.searchsorted(sol.marker_ids, table.marker), table.xy, raw, sol,
                          local_options_from_com(entries), pixel_size=20.2)
    return local_projection(la.local_transforms, sol.tilt_angles_deg, (512, 512)), sol.tilt_angles_deg
