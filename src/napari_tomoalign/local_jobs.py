"""Local alignments as the command line runs them: solved after a global alignment, used by `reconstruct`.

`tomoalign align --local` (or an ``--imod-com`` file with ``LocalAlignments 1``) solves IMOD's local
alignments over patches of the field after the global fit (`alignment.local`) and writes IMOD's local
file beside the global outputs; `tomoalign reconstruct --local` reads it back and applies it in the
weighted back-projection (`reconstruction.local_warp`), as IMOD's ``tilt`` does with ``LOCALFILE``.

Without a command file the local options are etomo's usual ones (those of IMOD's tutorial): rotation
per view grouped by 6, tilt grouped by 6 with linear interpolation, magnification grouped by 7, X-stretch
by 7 and skew by 11, 5 x 5 patches overlapping by half, at least 8 fiducials per patch and 3 per
surface, marker positions held at their global values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .errors import UsageError

if TYPE_CHECKING:
    from .alignment.local import LocalAlignments
    from .alignment.local_options import LocalOptions
    from .alignment.result import Alignment
    from .reconstruction.local_warp import LocalProjection

# etomo's local-alignment defaults, as an align.com's tiltalign section would give them
DEFAULT_LOCAL_ENTRIES: dict[str, list[str]] = {
    "NumberOfLocalPatchesXandY": ["5,5"], "MinSizeOrOverlapXandY": ["0.5,0.5"],
    "MinFidsTotalAndEachSurface": ["8,3"], "FixXYZCoordinates": ["1"], "SurfacesToAnalyze": ["2"],
    "LocalRotOption": ["3"], "LocalRotDefaultGrouping": ["6"],
    "LocalTiltOption": ["5"], "LocalTiltDefaultGrouping": ["6"],
    "LocalMagOption": ["3"], "LocalMagDefaultGrouping": ["7"],
    "LocalXStretchOption": ["3"], "LocalXStretchDefaultGrouping": ["7"],
    "LocalSkewOption": ["3"], "LocalSkewDefaultGrouping": ["11"],
}


def local_file_name(stem: str, imod_com: str | os.PathLike[str] | None = None) -> str:
    """The local file's name: the command file's ``OutputLocalFile`` (its name only), else ``<stem>local.xf``."""
    if imod_com is not None:
        from .io.imod_com import read_com_section

        given = read_com_section(imod_com).get("OutputLocalFile")
        if given:
            return Path(given[0]).name
    return f"{stem}local.xf"


def wants_local(imod_com: str | os.PathLike[str] | None) -> bool:
    """Whether a command file asks for local alignments (``LocalAlignments 1``)."""
    if imod_com is None:
        return False
    from .io.imod_com import read_com_section

    value = read_com_section(imod_com).get("LocalAlignments", ["0"])
    return value[0].strip() not in ("", "0")


def local_options(imod_com: str | os.PathLike[str] | None) -> LocalOptions:
    """The local options of a command file over etomo's defaults (checked: a job calls this before any solve)."""
    from .alignment.local_options import local_options_from_com
    from .errors import AlignmentError
    from .io.imod_com import read_com_section

    com = read_com_section(imod_com) if imod_com is not None else {}
    # a command file's own local options replace the defaults; a file with none of them keeps etomo's
    ours = {k: v for k, v in com.items() if k in DEFAULT_LOCAL_ENTRIES or k.startswith("Local")
            or k in ("TargetPatchSizeXandY",)}
    entries = {**DEFAULT_LOCAL_ENTRIES, **ours}
    if "TargetPatchSizeXandY" in ours and "NumberOfLocalPatchesXandY" not in ours:
        entries.pop("NumberOfLocalPatchesXandY")
    try:
        return local_options_from_com(entries)
    except AlignmentError as exc:
        raise AlignmentError(f"{imod_com}: {exc}" if imod_com is not None else str(exc)) from None


@dataclass(frozen=True)
class LocalJob:
    """A solved local alignment and what `alignment.json` records of it."""

    result: LocalAlignments
    file_name: str

    def summary(self) -> dict:
        lo, hi = self.result.residual_range_px
        grid = self.result.grid
        return {"file": self.file_name, "patches": len(self.result.patches),
                "patch_grid": [int(n) for n in grid.n],
                "mean_residual_px": round(self.result.mean_residual_px, 6),
                "residual_range_px": [round(lo, 6), round(hi, 6)]}


def solve_local(al: Alignment, obs_view: NDArray[np.intp], obs_xy: NDArray[np.float64], raw_tilts_deg: NDArray,
                stem: str, imod_com: str | os.PathLike[str] | None, axis_z_shift_px: float) -> LocalJob:
    """Local alignments after the global ``al`` (observations in the order ``al`` was solved from), about the
    axis Z shift the global outputs were placed with (`jobs.facts.axis_z_shift_px`)."""
    from .alignment.local import local_alignments
    from .alignment.transforms import imod_transforms
    from .conventions import angstrom_from_nm
    from .io.imod_com import read_com_section

    com = read_com_section(imod_com) if imod_com is not None else {}
    options = local_options(imod_com)
    pix_a = angstrom_from_nm(al.pixel_size_nm) or 0.0  # IMOD's local file writes 0 for unknown
    z_factors = "OutputZFactorFile" in com
    result = local_alignments(obs_view, al.obs_marker, obs_xy, raw_tilts_deg, al, options,
                              global_xf=imod_transforms(al, axis_z_shift_px), pixel_size=pix_a, write_z_factors=z_factors)
    return LocalJob(result, local_file_name(stem, imod_com))


def find_local_file(alignment_dir: str | os.PathLike[str], recorded: str | None) -> Path:
    """The local file of an alignment folder: the one its ``alignment.json`` names (checked against the stamp
    when the folder was read). A ``*local.xf`` the stamp does not name is another solve's (an earlier run's left
    beside a newer one): it is refused, as IMOD's local transforms only mean something on their own global fit."""
    d = Path(alignment_dir)
    if recorded:
        path = d / recorded
        if not path.is_file():
            raise UsageError(f"{path}: the local file this alignment lists is missing; align again with --local")
        return path
    found = sorted(d.glob("*local.xf"))
    if found:
        raise UsageError(f"{d}: this alignment was solved without local alignments, and {found[0].name} is not"
                         " part of it (a file of another run); align again with --local")
    raise UsageError(f"{d}: no local alignment file (*local.xf); align with --local first, or name the file:"
                     " --local FILE")


def check_local_file(path: str | os.PathLike[str], alignment_dir: str | os.PathLike[str],
                     recorded: str | None) -> Path:
    """``--local FILE`` for the alignment in ``alignment_dir`` (whose stamp names ``recorded``, or no local
    file): refused when a run stamp shows it belongs to another solve. A file that sits in an alignment folder
    belongs to that folder's run only if its stamp lists it; a file no stamp vouches for (one
    of IMOD's, a copy) carries nothing to check, so it is applied only to an alignment without a local file of its
    own (an IMOD alignment brought in with its local file), never in place of the one the alignment has."""
    from .io.alignment import run_stamp
    from .io.errors import FileFormatError

    p, d = Path(path), Path(alignment_dir)
    if recorded and os.path.realpath(p) == os.path.realpath(d / recorded):
        return p
    try:
        stamp = run_stamp(p.parent)
    except (FileFormatError, OSError):
        stamp = None
    if stamp is not None:
        owner = os.path.realpath(p.parent)
        if p.name not in stamp.get("files", {}):
            raise UsageError(f"{p}: not part of the alignment in {p.parent} (its alignment.json does not list it):"
                             " a local file of another run; name the file a run wrote, or align again with --local")
        if owner != os.path.realpath(d):
            raise UsageError(f"{p}: the local file of the alignment in {p.parent}, not of {d}; local transforms"
                             " only apply to their own global alignment")
    elif recorded:
        raise UsageError(f"{p}: {d} has its own local file ({recorded}); a local file no run stamp vouches for"
                         " belongs to another solve: leave out FILE to use the alignment's own")
    return p


def local_projection_for(local_path: str | os.PathLike[str], saved_tilts_deg: NDArray[np.float64],
                         x_tilts_deg: NDArray[np.float64] | None, stack_size: tuple[int, int],
                         alignment_pixel_nm: float | None, stack_pixel_nm: float | None,
                         binning: int = 1) -> LocalProjection:
    """The `LocalProjection` that applies a local file to an aligned stack binned by ``binning`` of
    ``stack_size`` ``(nx, ny)`` (binned pixels); the file's pixels are scaled to the binned stack's."""
    from .io.imod_local import read_local_transforms
    from .reconstruction.local_warp import local_projection

    lt = read_local_transforms(local_path, n_views=len(saved_tilts_deg))
    scale = 1.0 / binning
    if alignment_pixel_nm and stack_pixel_nm:
        scale = float(alignment_pixel_nm) / (float(stack_pixel_nm) * binning)
    return local_projection(lt, np.asarray(saved_tilts_deg, dtype=float), stack_size, x_tilt_deg=x_tilts_deg,
                            local_scale=scale)
