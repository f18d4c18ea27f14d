"""tiltalign's options (from an ``align.com``) as variable mappings for IMOD's full model.

Each variable kind of `model` gets a `grouping.Mapping` built as ``tiltalign`` builds it from its
option code (``RotOption``, ``TiltOption``, ``MagOption``, ``CompOption``, ``XStretchOption``,
``SkewOption``, ``XTiltOption``), default group size, reference views and mapping lists
(`../shared/docs/imod-full-model.md`, sections 1.4 and 2). Options this project does not carry out
raise a `UsageError` naming them; keys that only name files or reports are ignored. `read_imod_settings`
reads them from a command file; `solver.align_markers_imod` solves with them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..conventions import format_views, view_indices
from ..errors import AlignmentError, UsageError
from .grouping import (
    Mapping,
    automap_groups,
    block_mapping,
    fixed_mapping,
    group_size_power,
    grouped_mapping,
    is_grouped,
    per_view_mapping,
)
from .options import KINDS, ModelSettings

PREFIX = {"rotation": "Rot", "tilt": "Tilt", "magnification": "Mag", "compression": "Comp",
          "x_stretch": "XStretch", "skew": "Skew", "x_tilt": "XTilt"}
# Keys that name files, reports or minimiser details: they do not change the solution.
IGNORED = {"ModelFile", "ImageFile", "ImageSizeXandY", "OutputModelFile", "OutputResidualFile", "OutputFidXYZFile",
           "OutputTiltFile", "OutputTransformFile", "OutputXAxisTiltFile", "OutputZFactorFile", "OutputLocalFile",
           "OutputUnadjustedTiltFile", "OutputFilledInModel", "TiltFile", "ResidualReportCriterion",
           "SurfacesToAnalyze", "MetroFactor", "MaximumCycles", "LocalOutputOptions", "WarnOnRobustFailure",
           "ShiftZFromOriginal"}
LOCAL_KEYS = ("NumberOfLocalPatchesXandY", "TargetPatchSizeXandY", "MinSizeOrOverlapXandY",
              "MinFidsTotalAndEachSurface", "FixXYZCoordinates", "LocalMagReferenceView", "LocalTiltFixedView")


def _option_value(text: str) -> int | float | str:
    try:
        x = float(text)
    except ValueError:
        return text
    return int(x) if x.is_integer() else x


def _model_options(entries: dict[str, list[str]]) -> dict[str, int | float | str]:
    """The entries that shape the model (not file names or report settings), numbers as numbers;
    repeated entries (``NondefaultGroup``, ``SeparateGroup``) joined with ``'; '``."""
    return {k: _option_value(v[-1].strip()) if len(v) == 1 else "; ".join(x.strip() for x in v)
            for k, v in entries.items() if k not in IGNORED}


def numbers(entries: dict[str, list[str]], key: str) -> list[float] | None:
    """The numbers of an entry (its last occurrence; commas or spaces between them), None if it is absent."""
    if key not in entries:
        return None
    try:
        return [float(x) for x in entries[key][-1].replace(",", " ").split()]
    except ValueError:
        raise AlignmentError(f"{key} {entries[key][-1]!r} is not a list of numbers") from None


def _number(entries: dict[str, list[str]], key: str, default: float) -> float:
    vals = numbers(entries, key)
    if vals == []:
        raise AlignmentError(f"{key} has no value; give a number or remove the line")
    return default if vals is None else vals[0]


def _views(text: str, n_views: int, key: str) -> list[int]:
    try:
        return view_indices(text, n_views)
    except ValueError as exc:
        raise AlignmentError(f"{key} {text!r}: {exc}") from None


def _nondefault(values: list[str], n_views: int) -> list[tuple[int, int, float]]:
    """``<Var>NondefaultGroup`` entries (``start,end,size``, 1-based) as 0-based ranges; overlaps refused."""
    out: list[tuple[int, int, float]] = []
    for text in values:
        parts = text.replace(",", " ").split()
        try:
            start, end, size = int(parts[0]), int(parts[1]), float(parts[2])
        except (ValueError, IndexError):
            raise ValueError(f"non-default group {text!r} is not 'first,last,size'") from None
        if not (1 <= start <= end <= n_views) or size == 0:
            raise ValueError(f"non-default group {text!r} needs 1 <= first <= last <= {n_views} and a size")
        out.append((start - 1, end - 1, size))
    spans = sorted(out)
    for (_, e0, _), (s1, _, _) in zip(spans, spans[1:]):
        if s1 <= e0:
            raise ValueError(f"non-default groups overlap at view {s1 + 1}; give disjoint ranges")
    return out


def _check_supported(entries: dict[str, list[str]]) -> None:
    known = set(IGNORED) | set(LOCAL_KEYS) | {"RotationAngle", "AngleOffset", "AxisZShift", "ImagesAreBinned",
                                              "BeamTiltOption", "FixedOrInitialBeamTilt", "ExcludeList",
                                              "RobustFitting", "KFactorScaling", "WeightWholeTracks", "MinWeightGroupSizes",
                                              "WarnOnRobustFailure", "LocalAlignments", "MagReferenceView",
                                              "CompReferenceView", "TiltFixedView", "TiltSecondFixedView",
                                              "RotationFixedView", "SeparateGroup", "LocalTiltSecondFixedView", "AxisXShift"}
    for kind in KINDS:
        for pre in ("", "Local"):
            known |= {f"{pre}{PREFIX[kind]}{key}" for key in ("Option", "DefaultGrouping", "NondefaultGroup",
                                                              "Mapping")}
    unknown = sorted(k for k in entries if k not in known)
    if unknown:
        raise UsageError("these tiltalign options are not supported: " + ", ".join(unknown)
                             + "; remove them from the command file or align without --imod-com")
    if _number(entries, "AxisXShift", 0) != 0:
        raise UsageError("AxisXShift is not supported; set it to 0 (shift the reconstruction instead)")
    if _number(entries, "BeamTiltOption", 0) not in (0, 1, 2):
        raise UsageError("BeamTiltOption must be 0 (fixed), 1 (solve) or 2 (search)")


def dmag_reference(n_views: int, min_tilt: int, mag_reference: int) -> int:
    """The view whose X-stretch and skew are held at 0 (0-based; IMOD's floor(N/4) rule)."""
    r, r3 = max(n_views // 4 - 1, 0), max((3 * n_views) // 4 - 1, 0)
    if r == min_tilt or (mag_reference > min_tilt and r3 != min_tilt):
        return r3
    return r


def _mapping(kind: str, entries: dict[str, list[str]], tilts: NDArray[np.float64], refs: dict[str, int | None],
             points: NDArray[np.intp] | None) -> Mapping:
    n = len(tilts)
    prefix = PREFIX[kind]
    code = int(_number(entries, f"{prefix}Option", 0))
    ref = refs[kind]
    if code == 0:
        return fixed_mapping(n)
    if kind == "rotation" and code == -1:
        return block_mapping(np.zeros(n, dtype=np.intp))
    if code == 1 or (kind == "tilt" and code in (2, 3)):
        fixed = [] if ref is None or (kind == "rotation" and "RotationFixedView" not in entries) else [ref]
        if kind == "tilt" and code == 3:
            fixed.append(int(_number(entries, "TiltSecondFixedView", 1)) - 1)
        return per_view_mapping(n, fixed)
    if (kind == "tilt" and code == 4) or (kind != "tilt" and code == 2):
        labels = np.asarray(_views_labels(entries.get(f"{prefix}Mapping", [""])[-1], n), dtype=np.intp)
        return block_mapping(np.where(labels == 0, -1, labels) if kind == "tilt" else labels, ref)
    if not is_grouped(kind, code):
        raise AlignmentError(f"{prefix}Option {code} is not one of tiltalign's codes")
    separate = [_views(t, n, "SeparateGroup") for t in entries.get("SeparateGroup", [])]
    try:
        size = _number(entries, f"{prefix}DefaultGrouping", 5.0)
        explicit = _nondefault(entries.get(f"{prefix}NondefaultGroup", []), n)
        groups, linked = automap_groups(tilts, size, group_size_power(kind, code), points, explicit, separate)
    except ValueError as exc:
        raise UsageError(f"{prefix}NondefaultGroup: {exc}") from None
    held: list[int] = [] if ref is None else [ref]
    if kind == "tilt" and code in (7, 8):
        key = "TiltSecondFixedView"
        if key not in entries:
            raise UsageError(f"{prefix}Option {code} holds a second tilt: give {key}")
        second = int(_number(entries, key, 0)) - 1
        if not 0 <= second < n:
            raise UsageError(f"{key} {second + 1} is outside 1-{n}")
        held.append(second)
    return grouped_mapping(kind, code, groups, n, held, linked)


def _views_labels(text: str, n: int) -> list[int]:
    try:
        labels = [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise AlignmentError(f"mapping list {text!r} is not whole numbers") from None
    if len(labels) != n:
        raise AlignmentError(f"a mapping list needs one label per view ({n}), got {len(labels)}")
    return labels


def settings_from_com(entries: dict[str, list[str]], nominal_tilts_deg: NDArray[np.float64],
                      points_per_view: NDArray[np.intp] | None = None) -> ModelSettings:
    """The model of a tiltalign section (`io.imod_com.read_com_section`) for a series with these tilts (a
    patch's local options are `local_options`')."""
    _check_supported(entries)
    offset = _number(entries, "AngleOffset", 0.0)
    raw = np.asarray(nominal_tilts_deg, dtype=float)
    tilts = raw + offset
    n = len(tilts)
    excluded = tuple(_views(" ".join(entries.get("ExcludeList", [])), n, "ExcludeList"))
    fitted = np.ones(n, dtype=bool)
    fitted[list(excluded)] = False
    if points_per_view is not None:
        fitted &= np.asarray(points_per_view)[:n] > 0
    # the smallest |raw tilt| among the views in the fit (all views if none is), ties to the lower view
    min_tilt = int(np.argmin(np.where(fitted | ~fitted.any(), np.abs(raw), np.inf)))
    refs = _references(entries, n, min_tilt, fitted)
    mappings = {kind: _mapping(kind, entries, tilts, refs, points_per_view) for kind in KINDS}
    binned = _number(entries, "ImagesAreBinned", 1.0)
    z_shift = _number(entries, "AxisZShift", 0.0)
    return ModelSettings(
        mappings=mappings, rotation_angle_deg=_number(entries, "RotationAngle", 0.0), angle_offset_deg=offset,
        axis_z_shift_px=0.0 if z_shift == 1000 else z_shift / max(binned, 1.0), centre_z_range=z_shift == 1000,
        beam_tilt_deg=_number(entries, "FixedOrInitialBeamTilt", 0.0),
        beam_tilt_free=_number(entries, "BeamTiltOption", 0) in (1, 2),
        notes=_notes(entries, mappings) + _moved_reference_notes(entries, refs),
        excluded_views=excluded, com_options=_model_options(entries),
        robust=_number(entries, "RobustFitting", 0) != 0, robust_scale=_number(entries, "KFactorScaling", 1.0),
        robust_tracks=_number(entries, "WeightWholeTracks", 0) != 0,
        local_alignments=_number(entries, "LocalAlignments", 0) != 0,
    )


def read_imod_settings(com_path: str | os.PathLike[str], tilt_angles_deg: ArrayLike,
                       points_per_view: NDArray[np.intp] | None = None, excluded_views: Sequence[int] = ()
                       ) -> ModelSettings:
    """The `ModelSettings` of the ``tiltalign`` section of ``com_path`` for a series with these tilts; the 0-based
    ``excluded_views`` (``--exclude-views``) join its ``ExcludeList`` and are read as tiltalign reads that."""
    from ..io.imod_com import read_com_section  # io imports alignment: imported here, not at the top

    entries = read_com_section(com_path)
    if len(excluded_views):
        entries = {**entries, "ExcludeList": [",".join([*entries.get("ExcludeList", []), format_views(excluded_views)])]}
    return settings_from_com(entries, np.asarray(tilt_angles_deg, dtype=float), points_per_view)


def _notes(entries: dict[str, list[str]], mappings: dict[str, Mapping]) -> list[str]:
    """What tiltalign's man page warns about in these options (combinations that are poorly determined)."""
    solved = {k for k, m in mappings.items() if m.n_vars}
    per_view_rotation = mappings["rotation"].n_vars >= mappings["rotation"].n_views - 1
    beam = _number(entries, "BeamTiltOption", 0) in (1, 2)
    notes = []
    if _number(entries, "BeamTiltOption", 0) == 2:
        notes.append("BeamTiltOption 2: the beam tilt is solved as a variable, which finds the minimum that"
                     " tiltalign's search brackets")
    if {"compression", "tilt", "x_stretch"} <= solved:
        notes.append("compression is solved together with tilt and X-stretch: tiltalign advises against it")
    if "x_tilt" in solved and per_view_rotation:
        notes.append("X-tilt is solved together with a rotation per view: tiltalign advises against it")
    if beam and ("skew" in solved or per_view_rotation):
        notes.append("beam tilt is solved together with skew or a rotation per view: tiltalign advises against it")
    return notes


def _moved_reference_notes(entries: dict[str, list[str]], refs: dict[str, int | None]) -> list[str]:
    """Say which reference views given in the command file are not in the fit and where they moved."""
    out = []
    for kind, key in (("magnification", "MagReferenceView"), ("tilt", "TiltFixedView"),
                      ("compression", "CompReferenceView"), ("rotation", "RotationFixedView")):
        given = int(_number(entries, key, 0)) if key in entries else 0
        held = refs.get(kind)
        if given and held is not None and held != given - 1:
            out.append(f"{key} {given} is not in the fit (excluded or without points): view {held + 1}"
                       " is held instead, the nearest view in the fit")
    return out


def _references(entries: dict[str, list[str]], n: int, min_tilt: int, fitted: NDArray[np.bool_]
                ) -> dict[str, int | None]:
    """The reference view (0-based) of each variable kind.

    A reference view that is not ``fitted`` (in ``ExcludeList``, or without points) moves to the nearest
    fitted view (the lower one on a tie), as the local references move to a patch's nearest view: a held
    view without data would hold nothing.
    """
    ok = np.flatnonzero(fitted) if np.any(fitted) else np.arange(n)

    def near(view: int) -> int:
        if not 0 <= view < n:
            raise AlignmentError(f"the reference view {view + 1} is outside 1-{n}")
        return int(ok[np.argmin(np.abs(ok - view))])

    mag_ref = near(int(_number(entries, "MagReferenceView", min_tilt + 1)) - 1)
    dmag_ref = near(dmag_reference(n, min_tilt, mag_ref))
    return {"rotation": near(int(_number(entries, "RotationFixedView", 1)) - 1),
            "tilt": near(int(_number(entries, "TiltFixedView", min_tilt + 1)) - 1),
            "magnification": mag_ref, "compression": near(int(_number(entries, "CompReferenceView", min_tilt + 1)) - 1),
            "x_stretch": dmag_ref, "skew": dmag_ref, "x_tilt": near(min_tilt)}
