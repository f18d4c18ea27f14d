"""tiltalign's local-alignment options, and the variable mappings they give one patch.

The options are those of an ``align.com`` (`../shared/docs/imod-full-model.md`, section 4):
``NumberOfLocalPatchesXandY`` or ``TargetPatchSizeXandY``, ``MinSizeOrOverlapXandY``,
``MinFidsTotalAndEachSurface``, ``FixXYZCoordinates`` and, per variable kind, ``Local<Var>Option`` with
``Local<Var>DefaultGrouping``, plus ``LocalMagReferenceView`` and ``LocalTiltFixedView``. Every local
option defaults to 0 (the kind is not solved locally), as in IMOD.

A patch's groups are formed afresh from the tilts and that patch's point counts (`grouping`), over the
views that have a point in the patch. With the marker positions held (``FixXYZCoordinates 1``) no
variable has a reference view except X-tilt; with them free the references are the global ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..errors import AlignmentError
from .grouping import (
    Mapping,
    block_mapping,
    fixed_mapping,
    group_size_power,
    grouped_mapping,
    is_grouped,
    per_view_mapping,
    tilt_groups_imod,
)
from .imod_options import PREFIX, dmag_reference, numbers

LOCAL_KINDS = ("rotation", "tilt", "magnification", "x_stretch", "skew", "x_tilt")
DEFAULT_GROUPING = 5.0
# Patches per axis: etomo's default is 5 and IMOD's guides use up to about 20; each patch is a solve of its
# own (50 x 50 takes 17 s on the tutorial's 60 beads), so a grid beyond this only repeats patches and hangs.
MAX_PATCHES_PER_AXIS = 100


@dataclass(frozen=True)
class LocalOptions:
    """How to lay out patches and what each patch solves (module docstring; views 0-based).

    Attributes
    ----------
    n_patches
        ``(nX, nY)`` patches (IMOD's legacy mode), or None to use ``target_size_px``.
    target_size_px
        ``(x, y)`` target patch size over the fiducials' extent (IMOD's default, 700 x 700).
    min_size_or_overlap
        Per axis: a minimum size in pixels (> 1) or a fractional overlap (< 1).
    min_fids_total, min_fids_surface
        A patch grows until it holds this many fiducials, and (with two surfaces) this many on each.
    surfaces
        ``SurfacesToAnalyze``: 2 applies the per-surface minimum.
    fix_xyz
        Hold the markers at their global positions (``FixXYZCoordinates 1``).
    codes, groupings
        Per variable kind (`LOCAL_KINDS`): tiltalign's option code and default group size.
    mag_reference_view, tilt_fixed_view
        ``LocalMagReferenceView`` and ``LocalTiltFixedView`` (None: the minimum-tilt view).
    """

    n_patches: tuple[int, int] | None = (5, 5)
    target_size_px: tuple[int, int] = (700, 700)
    min_size_or_overlap: tuple[float, float] = (0.5, 0.5)
    min_fids_total: int = 8
    min_fids_surface: int = 3
    surfaces: int = 1
    fix_xyz: bool = False
    codes: dict[str, int] = field(default_factory=dict)
    groupings: dict[str, float] = field(default_factory=dict)
    mag_reference_view: int | None = None
    tilt_fixed_view: int | None = None

    def code(self, kind: str) -> int:
        return int(self.codes.get(kind, 0))


def _pair(entries: dict[str, list[str]], key: str) -> tuple[float, float] | None:
    vals = numbers(entries, key)
    if vals is None:
        return None
    if len(vals) != 2:
        raise AlignmentError(f"{key} needs two values (X and Y), got {entries[key][-1]!r}")
    return vals[0], vals[1]


def _patch_counts(entries: dict[str, list[str]]) -> tuple[float, float] | None:
    """``NumberOfLocalPatchesXandY``, each a whole number from 1 to `MAX_PATCHES_PER_AXIS`, or None."""
    pair = _pair(entries, "NumberOfLocalPatchesXandY")
    if pair is not None and not all(np.isfinite(n) and n == int(n) and 1 <= n <= MAX_PATCHES_PER_AXIS
                                    for n in pair):
        raise AlignmentError(f"NumberOfLocalPatchesXandY {entries['NumberOfLocalPatchesXandY'][-1].strip()!r}:"
                             f" give whole numbers of patches from 1 to {MAX_PATCHES_PER_AXIS} per axis"
                             " (etomo's default is 5,5)")
    return pair


def local_options_from_com(entries: dict[str, list[str]]) -> LocalOptions:
    """The local options of a tiltalign section (`io.imod_com.read_com_section`)."""
    n_patches = _patch_counts(entries)
    target = _pair(entries, "TargetPatchSizeXandY")
    if target is not None and not all(np.isfinite(t) and t >= 1 for t in target):
        raise AlignmentError(f"TargetPatchSizeXandY {entries['TargetPatchSizeXandY'][-1].strip()!r}: give patch"
                             " sizes in pixels (IMOD's default is 700,700)")
    if n_patches is not None and target is not None:
        raise AlignmentError("give NumberOfLocalPatchesXandY or TargetPatchSizeXandY, not both")
    overlap = _pair(entries, "MinSizeOrOverlapXandY") or (0.5, 0.5)
    if target is not None and max(overlap) > 1:
        raise AlignmentError("MinSizeOrOverlapXandY must be overlaps (< 1) with TargetPatchSizeXandY")
    fids = numbers(entries, "MinFidsTotalAndEachSurface") or [8, 3]
    codes, groupings = {}, {}
    for kind in LOCAL_KINDS:
        code = numbers(entries, f"Local{PREFIX[kind]}Option")
        codes[kind] = int(code[0]) if code else 0
        size = numbers(entries, f"Local{PREFIX[kind]}DefaultGrouping")
        groupings[kind] = float(size[0]) if size else DEFAULT_GROUPING

    def view(key: str) -> int | None:
        vals = numbers(entries, key)
        return int(vals[0]) - 1 if vals else None

    return LocalOptions(
        n_patches=None if n_patches is None and target is not None else
        (int(n_patches[0]), int(n_patches[1])) if n_patches else (5, 5),
        target_size_px=(int(target[0]), int(target[1])) if target else (700, 700),
        min_size_or_overlap=overlap, min_fids_total=int(fids[0]),
        min_fids_surface=int(fids[1]) if len(fids) > 1 else 3,
        surfaces=int((numbers(entries, "SurfacesToAnalyze") or [0])[0]),
        fix_xyz=bool((numbers(entries, "FixXYZCoordinates") or [0])[0]),
        codes=codes, groupings=groupings,
        mag_reference_view=view("LocalMagReferenceView"), tilt_fixed_view=view("LocalTiltFixedView"))


def _references(opts: LocalOptions, views: NDArray[np.intp], min_tilt: int) -> dict[str, int | None]:
    """Reference view per kind, in the patch's own view numbering (None: no reference)."""
    if opts.fix_xyz:
        return {kind: (min_tilt if kind == "x_tilt" else None) for kind in LOCAL_KINDS}

    def local(view: int | None) -> int:
        return min_tilt if view is None else int(np.argmin(np.abs(views - view)))

    mag = local(opts.mag_reference_view)
    dmag = dmag_reference(len(views), min_tilt, mag)
    return {"rotation": None, "tilt": local(opts.tilt_fixed_view), "magnification": mag, "x_stretch": dmag,
            "skew": dmag, "x_tilt": min_tilt}


def patch_mappings(opts: LocalOptions, views: NDArray[np.intp], tilts_deg: NDArray[np.float64],
                   raw_tilts_deg: NDArray[np.float64], points_per_view: NDArray[np.intp]) -> dict[str, Mapping]:
    """The local mappings of one patch over ``views`` (its views with points), one per kind in `LOCAL_KINDS`.

    ``tilts_deg`` (the global solved tilts; they size the groups), ``raw_tilts_deg`` (the nominal ones;
    they pick the minimum-tilt view) and ``points_per_view`` cover all views of the series.
    """
    views = np.asarray(views, dtype=np.intp)
    n = len(views)
    tilts_deg = np.asarray(tilts_deg, dtype=float)[views]
    points_per_view = np.asarray(points_per_view)[views]
    min_tilt = int(np.argmin(np.abs(np.asarray(raw_tilts_deg, dtype=float)[views])))
    refs = _references(opts, views, min_tilt)
    out = {}
    for kind in LOCAL_KINDS:
        code, ref = opts.code(kind), refs[kind]
        if code == 0:
            out[kind] = fixed_mapping(n)
        elif kind == "rotation" and code == -1:
            out[kind] = block_mapping(np.zeros(n, dtype=np.intp))
        elif code == 1 or (kind == "tilt" and code == 2):
            out[kind] = per_view_mapping(n, [] if ref is None else [ref])
        elif is_grouped(kind, code) and code not in (7, 8):
            groups = tilt_groups_imod(tilts_deg, opts.groupings.get(kind, DEFAULT_GROUPING), group_size_power(kind, code),
                                      points_per_view)
            out[kind] = grouped_mapping(kind, code, groups, n, [] if ref is None else [ref])
        else:
            raise AlignmentError(f"Local{PREFIX[kind]}Option {code} is not supported for local alignments; "
                                 "use 0, 1, or the automatic grouping codes")
    return out
