"""CryoET Data Portal alignment JSON (the portal's standard alignment schema), via ``cryoet-alignment``.

The document (``cryoet_alignment.io.cryoet_data_portal.Alignment``) holds, per kept view
(``per_section_alignment_parameters``): ``z_index`` (0-based index in the raw stack),
``tilt_angle`` (degrees, IMOD's sign), ``volume_x_rotation`` (IMOD's x-tilt; 0 here),
``in_plane_rotation`` (a 2 x 2 matrix) and ``x_offset``, ``y_offset`` (pixels of the unbinned raw
stack, not Angstrom). It converts to IMOD's ``.xf`` as ``cryoet-alignment`` does
(``Alignment.to_imod``): ``A = in_plane_rotation^T`` and ``D = -A (x_offset, y_offset)``, about IMOD's
image centre. So ``in_plane_rotation = R(alpha)`` for a view whose tilt axis is at ``alpha`` degrees
from the image y axis, counter-clockwise, and the offsets are the raw-frame shift ``T`` of
``raw = A^-1 (aligned - c) + T + c`` (AreTomo's TX, TY). A view's magnification ``s`` rides in the
matrix (``R(alpha) / s``), which ``to_imod`` turns back into the exact transform; it is a pure rotation
when the alignment fixed the magnification.

Volume-level fields: ``affine_transformation_matrix`` identity, ``alignment_type`` ``GLOBAL``,
``format`` ``IMOD`` (the transforms are IMOD's), ``is_portal_standard`` true, no tilt or x-rotation
offset, ``volume_offset`` zero, and ``volume_dimension`` in Angstrom (x, y: the aligned frame, the image's
transposed when the alignment turns a non-square image nearer 90 degrees than 0, as ``reconstruct`` makes the
tomogram, `reconstruction.frame`; z: the thickness), 0 where the pixel size is unknown. Views left out of the
fit are not listed, and the schema has no
place for the raw stack's view count: read back, the count and the left-out views' tilts are not known (NaN)
until `view_count.restore_views` gives them from ``--n-views`` or ``--stack``. The
schema records neither the image size nor the pixel size: reading takes the image size (or a
volume dimension and pixel size to derive it, transposed back by the same rule: `frame.raw_size_for_volume`);
`convert` to IMOD's files, which need none, reads it without.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..jobs.facts import default_thickness_px  # the tomogram's default thickness: one fact
from .alignment import SavedAlignment
from .atomic import atomic_open
from .convert import raw_shifts
from .errors import FileFormatError
from .guarded import read_text_limited
from .limits import finite, view_indices, why
from .limits import image_size as checked_image_size
from .limits import pixel_size_nm as checked_pixel_size


def _model():
    try:
        from cryoet_alignment.io.cryoet_data_portal.alignment import Alignment, PerSectionAlignmentParameters
    except ImportError:  # pragma: no cover - depends on the install
        raise FileFormatError("the portal format needs 'cryoet-alignment': pip install cryoet-alignment") from None
    return Alignment, PerSectionAlignmentParameters


def to_portal(saved: SavedAlignment, *, thickness_px: int | None = None):
    """The portal `Alignment` document of ``saved`` (see the module docstring)."""
    Alignment, Section = _model()
    t = raw_shifts(saved.transforms)
    sections = []
    for i in np.flatnonzero(saved.view_determined):
        a = saved.transforms[i, :, :2]
        if not np.all(np.isfinite(saved.transforms[i])):
            continue
        sections.append(Section(z_index=int(i), tilt_angle=float(saved.tilt_angles_deg[i]), volume_x_rotation=0.0,
                                in_plane_rotation=a.T.tolist(), x_offset=float(t[i, 0]), y_offset=float(t[i, 1])))
    pix_a = 10.0 * saved.pixel_size_nm if saved.pixel_size_nm else 0.0
    nz = thickness_px if thickness_px is not None else default_thickness_px(saved.image_size, saved.marker_z_extent_px)
    from ..reconstruction.frame import frame_size_of

    x, y = frame_size_of(saved).size if 0 not in saved.image_size else saved.image_size
    dims = {"x": x * pix_a, "y": y * pix_a, "z": nz * pix_a}
    return Alignment(affine_transformation_matrix=np.eye(4).tolist(), alignment_type="GLOBAL", format="IMOD",
                     is_portal_standard=True, tilt_offset=0.0, volume_offset={"x": 0.0, "y": 0.0, "z": 0.0},
                     x_rotation_offset=0.0, per_section_alignment_parameters=sections, volume_dimension=dims)


def write_portal_alignment(saved: SavedAlignment, path: str | os.PathLike[str], *, thickness_px: int | None = None,
                           overwrite: bool = False) -> Path:
    """Write ``saved`` as a CryoET Data Portal alignment JSON; return its path."""
    p = Path(path)
    doc = to_portal(saved, thickness_px=thickness_px)
    with atomic_open(p, overwrite=overwrite) as f:
        f.write(doc.model_dump_json(indent=1))
        f.write("\n")
    return p


def _raw_size(volume: tuple[int, int], sections: list) -> tuple[int, int]:
    """The image size of a volume recorded as the aligned frame (`frame.raw_size_for_volume`), by the median
    rotation of the sections' in-plane matrices."""
    from ..reconstruction.frame import raw_size_for_volume, xf_rotation_deg

    xf = np.full((len(sections), 2, 3), np.nan)  # a matrix of another shape is refused below, by the reader
    for k, sec in enumerate(sections):
        if np.shape(sec.in_plane_rotation) == (2, 2):
            xf[k, :, :2] = np.asarray(sec.in_plane_rotation, dtype=float).T
            xf[k, :, 2] = 0.0
    return raw_size_for_volume(volume, xf_rotation_deg(xf))


def read_portal_alignment(path: str | os.PathLike[str], *, image_size: tuple[int, int] | None = None,
                          n_views: int | None = None, pixel_size_nm: float | None = None,
                          size_needed: bool = True) -> SavedAlignment:
    """Read a portal alignment JSON. The image size is ``image_size``, else what the volume dimension and
    ``pixel_size_nm`` give, else a `FileFormatError`; or, when not ``size_needed``, ``(0, 0)``: not known (IMOD's
    files, which need none, can still be written from it). ``n_views`` (default: the highest ``z_index`` + 1) is
    the length of the raw stack."""
    Alignment, _ = _model()
    p = Path(path)
    pixel_size_nm = checked_pixel_size(pixel_size_nm)
    text = read_text_limited(p, "CryoET Data Portal alignment")
    try:
        doc = Alignment.from_string(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise FileFormatError(f"{p}: not a CryoET Data Portal alignment ({why(exc)})") from None
    if doc.alignment_type.upper() != "GLOBAL":
        raise FileFormatError(f"{p}: alignment_type {doc.alignment_type!r}; only GLOBAL alignments can be read")
    xrot = [abs(s.volume_x_rotation) for s in doc.per_section_alignment_parameters]
    if abs(doc.x_rotation_offset) > 1e-9 or max(xrot, default=0.0) > 1e-9:
        raise FileFormatError(f"{p}: an x-axis tilt (volume_x_rotation) cannot be represented here")
    if image_size is None:
        dims = doc.volume_dimension
        if pixel_size_nm and dims.get("x") and dims.get("y"):
            with np.errstate(all="ignore"):
                image_size = (dims["x"] / (10.0 * pixel_size_nm), dims["y"] / (10.0 * pixel_size_nm))
            image_size = tuple(round(v) if np.isfinite(v) else v for v in image_size)  # type: ignore[assignment]
            if all(np.isfinite(v) for v in image_size):  # the volume is the aligned frame: transposed back
                image_size = _raw_size(image_size, doc.per_section_alignment_parameters)
    if image_size is None and size_needed:
        raise FileFormatError(f"{p}: the portal schema does not record the image size; give it (--image-size W H)")
    image_size = checked_image_size(image_size, p) if image_size is not None else (0, 0)  # (0, 0): not known
    secs = doc.per_section_alignment_parameters
    z = view_indices([s.z_index for s in secs], p, "z_index", base=0, n_views=n_views)
    n = n_views if n_views is not None else (int(z.max()) + 1 if z.size else 0)
    for s in secs:
        finite(np.r_[np.ravel(s.in_plane_rotation), s.x_offset, s.y_offset, s.tilt_angle], p, "an alignment value", 1e7)
        if abs(s.tilt_angle) > 90.0 or np.shape(s.in_plane_rotation) != (2, 2):
            raise FileFormatError(f"{p}: section {s.z_index}: tilt angle {s.tilt_angle} or its in-plane rotation is"
                                  " not usable")
    xf = np.full((n, 2, 3), np.nan)
    tilts = np.full(n, np.nan)  # not recorded for views left out (`view_count.restore_views`)
    for s in secs:
        a = np.asarray(s.in_plane_rotation, dtype=float).T
        xf[s.z_index, :, :2] = a
        xf[s.z_index, :, 2] = -a @ np.array([s.x_offset, s.y_offset])
        tilts[s.z_index] = s.tilt_angle  # as Alignment.to_imod: tilt_offset is not added
    determined = np.all(np.isfinite(xf.reshape(n, -1)), axis=1)
    return SavedAlignment(xf, tilts, determined, (int(image_size[0]), int(image_size[1])), pixel_size_nm,
                          count_known=n_views is not None)
