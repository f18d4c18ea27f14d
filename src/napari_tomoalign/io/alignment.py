"""Write a solved alignment: JSON, CSV tables and IMOD's files, as one unit; read it back, checked.

The seven files of an alignment folder are written under temporary names, with the folder locked
against other writers, and renamed into place only when all are complete, ``alignment.json`` last.
Its first line is the *run stamp*: a run id, what the reconstruction tools need (stem, image size,
pixel size, which views are determined) and the size and SHA-256 of each other file. Readers parse
only that line (so a reader's work does not grow with the number of markers) and refuse a folder
whose files do not match it: a set mixed from two runs, or cut short, is never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..alignment.result import Alignment
from ..alignment.transforms import aligned_frame, aligned_marker_positions, imod_transforms, x_tilts_deg, z_factors
from ._textfmt import write_table
from .alignment_record import alignment_to_dict
from .atomic import atomic_file_set, folder_lock
from .errors import FileFormatError
from .guarded import read_bytes_limited, require_regular_file
from .imod import compose_xf, format_fid_xyz, format_resid, format_xf, marker_z_extent, read_xf
from .limits import MAX_IMAGE_SIDE
from .tilts import read_tilt_angles


def output_names(stem: str, full_model: bool = False) -> list[str]:
    """The files `write_alignment` writes for a markers file of this stem (with ``model``, also
    IMOD's per-view files of the full model: ``.xtilt``, ``.tltxf``, ``.zfac``)."""
    return ["alignment.json", "predicted.csv", "residuals.csv", f"{stem}.xf", f"{stem}.tlt", f"{stem}fid.xyz",
            f"{stem}.resid", *([f"{stem}.xtilt", f"{stem}.tltxf", f"{stem}.zfac"] if full_model else [])]


RUN_KEY = "tomoalign_run"
RUN_LINE_LIMIT = 4 * 1024 * 1024


def _sha256(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _text(path: Path):
    return open(path, "w", encoding="utf-8", newline="\n")


def _write_tables(al: Alignment, tmps: list[Path], xf: np.ndarray, xyz: np.ndarray, pix_a: float,
                  xf_markers: np.ndarray) -> None:
    """predicted.csv, residuals.csv, .xf, .tlt, fid.xyz and .resid into the temporary files, in that order,
    then the full model's .xtilt, .tltxf and .zfac, or a .tltxf alone (with a .prexg: ``xf`` is then the
    raw stack's, ``xf_markers`` the transforms of the stack the markers were placed on)."""
    pred = al.predicted_xy_px
    n_v, n_m = al.n_views, al.n_markers
    with _text(tmps[0]) as f:
        f.write("view,marker,x,y\n")
        ids = np.asarray(al.marker_ids, dtype=float)
        write_table(f, [np.repeat(np.arange(n_v, dtype=float), n_m), np.tile(ids, n_v), pred[:, :, 0].ravel(),
                        pred[:, :, 1].ravel()], [0, 0, 4, 4])  # view by view, marker by marker
    with _text(tmps[1]) as f:
        f.write("view,marker,x,y,dx,dy\n")
        r = al.residuals_px
        write_table(f, [np.asarray(al.obs_view, float), np.asarray(al.marker_ids, float)[al.obs_marker],
                        al.obs_xy_px[:, 0], al.obs_xy_px[:, 1], r[:, 0], r[:, 1]], [0, 0, 4, 4, 4, 4])
    with _text(tmps[2]) as f:  # IMOD's tools read no NaN: a view the fit could not place gets the unit transform
        format_xf(f, np.where(np.isfinite(xf), xf, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])))
    with _text(tmps[3]) as f:
        tilts = al.output_tilt_angles_deg()
        write_table(f, [tilts], [2], [7])
    with _text(tmps[4]) as f:
        format_fid_xyz(f, al.marker_ids, xyz, al.image_size, pix_a)
    used = al.obs_used
    with _text(tmps[5]) as f:
        format_resid(f, al.obs_view[used], al.obs_xy_px[used], al.residuals_px[used])
    from .imod_views import write_tltxf, write_xtilt, write_zfac

    if len(tmps) > 7:  # the full model: IMOD's .xtilt, .tltxf and .zfac
        write_xtilt(tmps[6], x_tilts_deg(al), overwrite=True)
        write_tltxf(tmps[7], xf_markers, overwrite=True)
        write_zfac(tmps[8], z_factors(al), overwrite=True)
    elif len(tmps) > 6:  # a .prexg given: the .tltxf for the prealigned stack
        write_tltxf(tmps[6], xf_markers, overwrite=True)


def _json_text(run: dict, info: dict) -> str:
    """``alignment.json``: the run stamp alone on the first line, then one line per entry (two levels),
    each written by the C encoder (the indenting encoder is pure Python: seconds at 10^5 markers)."""
    lines = ["{" + json.dumps(RUN_KEY) + ": " + json.dumps(run, allow_nan=False) + ","]
    items = list(info.items())
    for k, (key, value) in enumerate(items):
        end = "," if k < len(items) - 1 else ""
        if isinstance(value, dict) and value:
            inner = list(value.items())
            lines.append(f" {json.dumps(key)}: {{")
            lines += [f"  {json.dumps(a)}: {json.dumps(b)}{',' if j < len(inner) - 1 else ''}"
                      for j, (a, b) in enumerate(inner)]
            lines.append(" }" + end)
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{end}")
    return "\n".join(lines) + "\n}\n"


def write_alignment(
    al: Alignment,
    directory: str | os.PathLike[str],
    stem: str,
    *,
    overwrite: bool = False,
    axis_z_shift_px: float | None = None,
    extra: dict | None = None,
    sections: dict | None = None,
    local: tuple[str, str] | None = None,
    prexg: np.ndarray | None = None,
) -> list[Path]:
    """Write every output of an alignment into ``directory`` as one unit (module docstring); return the paths.

    ``local`` is ``(file name, text)`` of a local alignment file (`io.imod_local.format_local`) that belongs
    to this alignment: it joins the unit, and the run stamp names it for `read_alignment_dir`.
    ``prexg`` ``(n_views, 2, 3)``: the prealignment of the stack the markers were placed on (etomo's
    ``.prexg``); the ``.xf`` is then the product for the raw stack, as etomo's, and the ``.tltxf`` the
    transforms of the prealigned stack; the run stamp keeps the prealignment for `read_alignment_dir`.

    Nothing is written if any target exists and ``overwrite`` is False, and nothing is left behind if
    a write fails.
    """
    if axis_z_shift_px is not None and not math.isfinite(axis_z_shift_px):  # None: the alignment's own
        raise ValueError(f"the axis Z shift must be a finite number of pixels, not {axis_z_shift_px}")
    d = Path(directory)
    names = output_names(stem, full_model=al.settings.from_com)
    if prexg is not None and f"{stem}.tltxf" not in names:
        names.append(f"{stem}.tltxf")
    paths = [d / n for n in names]
    frame = aligned_frame(al, axis_z_shift_px)
    xf_markers = imod_transforms(al, axis_z_shift_px)
    if not np.all(np.isfinite(xf_markers[al.view_determined])):
        raise ValueError("the solved transforms are not finite numbers; the alignment cannot be written")
    xf = xf_markers
    if prexg is not None:
        if np.shape(prexg) != (al.n_views, 2, 3) or not np.all(np.isfinite(prexg)):
            raise ValueError(f"the prealignment must be {al.n_views} finite transforms, one per view")
        unit = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        xf = compose_xf(prexg, np.where(np.isfinite(xf_markers), xf_markers, unit))
    info = alignment_to_dict(al)
    info["package_version"] = __version__
    info["aligned_frame"] = {
        "tilt_axis_x_px": frame.x0_px, "centre_row_y_px": frame.y0_px, "tilt_axis_z_px": frame.z0_px,
        "z_range_midpoint_px": frame.z_range_midpoint_px,
    }
    if extra:
        info["inputs"] = extra
    info.update(sections or {})
    pix_nm = float(al.pixel_size_nm) if al.pixel_size_nm and math.isfinite(al.pixel_size_nm) else None
    pix_a = 10.0 * pix_nm if pix_nm else 1.0
    tilts = [float(t) if ok and math.isfinite(t) else None
             for t, ok in zip(np.asarray(al.tilt_angles_deg, float).tolist(), al.view_determined)]
    run = {"stem": stem, "image_size": [int(n) for n in al.image_size], "pixel_size_nm": pix_nm,
           "view_determined": [bool(b) for b in al.view_determined], "tilt_angle_deg": tilts,
           "converged": bool(al.converged)}
    xyz = aligned_marker_positions(al, axis_z_shift_px)
    n_main = len(paths) - 1

    def write_files(tmps: list[Path]) -> None:
        _write_tables(al, tmps[:n_main], xf, xyz, pix_a, xf_markers)
        if local is not None:
            with _text(tmps[n_main]) as f:
                f.write(local[1])

    if prexg is not None:
        run["prexg"] = np.round(np.asarray(prexg, dtype=float), 9).tolist()
    if local is not None:
        if Path(local[0]).name != local[0] or local[0] in output_names(stem, full_model=True):
            raise ValueError(f"the local alignment file's name {local[0]!r} must be a new file name, not a path")
        paths.append(d / local[0])
        run["local_file"] = local[0]
    return _write_set(d, paths, write_files, run, info, overwrite)


def _write_set(d: Path, paths: list[Path], write_files, run: dict, info: dict, overwrite: bool) -> list[Path]:
    """``paths[1:]`` written by ``write_files(temporary paths)``, then ``paths[0]`` (alignment.json) with the
    run stamp that lists them, all renamed into place together (`atomic_file_set`)."""
    from .earlier_run import earlier_run_files

    stale = earlier_run_files(d, paths) if overwrite else []
    with atomic_file_set(paths[1:] + paths[:1], overwrite, backup=True) as tmps:  # NAME~ kept, as IMOD
        write_files(tmps[:-1])
        files = {}
        for p, tmp in zip(paths[1:], tmps[:-1]):
            size, digest = _sha256(tmp)
            files[p.name] = {"bytes": size, "sha256": digest}
        run = {"run_id": uuid.uuid4().hex, **run, "files": files}
        with _text(tmps[-1]) as f:
            f.write(_json_text(run, info))
            f.flush()
            os.fsync(f.fileno())
    for p in stale:  # the earlier run's files this one does not write go aside too: the folder holds one run's files
        os.replace(p, p.with_name(p.name + "~"))
    return paths


def write_transforms_folder(saved: SavedAlignment, directory: str | os.PathLike[str], stem: str, *,
                            overwrite: bool = False, info: dict | None = None) -> list[Path]:
    """A minimal alignment folder that `read_alignment_dir` accepts: ``alignment.json`` (run stamp and
    ``info``), ``stem.xf`` and ``stem.tlt`` (4 decimals), for alignments converted from other tools."""
    d = Path(directory)
    paths = [d / "alignment.json", d / f"{stem}.xf", d / f"{stem}.tlt"]
    det = np.asarray(saved.view_determined, dtype=bool)
    xf = np.where(np.isfinite(saved.transforms), saved.transforms, np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    tilts = np.asarray(saved.tilt_angles_deg, dtype=float)

    def write_files(tmps: list[Path]) -> None:
        with _text(tmps[0]) as f:
            format_xf(f, xf)
        with _text(tmps[1]) as f:
            write_table(f, [tilts], [4], [9])

    pix = saved.pixel_size_nm if saved.pixel_size_nm and math.isfinite(saved.pixel_size_nm) else None
    run = {"stem": stem, "image_size": [int(n) for n in saved.image_size], "pixel_size_nm": pix,
           "view_determined": det.tolist(),
           "tilt_angle_deg": [float(t) if ok and math.isfinite(t) else None for t, ok in zip(tilts.tolist(), det)]}
    body = {"image_size": run["image_size"], "pixel_size_nm": pix, **(info or {}),
            "views": {"determined": run["view_determined"], "tilt_angle_deg": run["tilt_angle_deg"]}}
    return _write_set(d, paths, write_files, run, body, overwrite)


@dataclass(frozen=True)
class SavedAlignment:
    """What the reconstruction tools need from a directory written by `write_alignment`."""

    transforms: np.ndarray
    tilt_angles_deg: np.ndarray
    view_determined: np.ndarray
    image_size: tuple[int, int]
    pixel_size_nm: float | None
    marker_z_extent_px: float | None = None  # the largest |z| of the markers about the tilt axis (fid.xyz)
    local_file: str | None = None  # the local alignment file the run wrote beside the others, if any
    x_tilts_deg: np.ndarray | None = None  # IMOD's full model: each view's X-axis tilt (.xtilt)
    prexg: np.ndarray | None = None  # (n_views, 2, 3) the markers' stack's prealignment: the .xf is the raw stack's
    converged: bool = True  # False: the solve stopped at its iteration limit (the run stamp says)
    folder: Path | None = None  # where its files are (``stem.zfac``, ``stemfid.xyz``, the local file): `set_file`
    stem: str | None = None  # the name its files take (``stem.xf``); None for one made in memory
    nominal_tilts_deg: np.ndarray | None = None  # the nominal (stage) tilt of each view where known, else NaN
    count_known: bool = True  # False: the file lists only the views used, so views after the last one are unknown
    provenance: str | None = None  # an IMOD set read for a stack: what was taken from where, one line


def set_file(saved: SavedAlignment, directory: str | os.PathLike[str], suffix: str) -> Path | None:
    """The file ``stem + suffix`` (``.zfac``, ``fid.xyz``) of a saved alignment's set, if it is there; for one
    made in memory (no stem), the one ``*suffix`` in ``directory`` (None when there are none or several)."""
    if saved.folder is not None and saved.stem:
        p = saved.folder / f"{saved.stem}{suffix}"
        return p if p.is_file() else None
    found = sorted(Path(directory).glob(f"*{suffix}"))
    return found[0] if len(found) == 1 else None


def _read_run(info_path: Path) -> dict:
    """The run stamp: the first line of ``alignment.json``, checked field by field."""
    head = read_bytes_limited(info_path, "alignment", RUN_LINE_LIMIT, head=True)
    line, _, _ = head.partition(b"\n")
    prefix = b"{" + json.dumps(RUN_KEY).encode() + b": "
    bad = FileFormatError(f"{info_path}: not an alignment.json written by this version of tomoalign"
                          " (no run stamp on its first line); run 'tomoalign align' again")
    if not line.startswith(prefix) or not line.endswith(b","):
        raise bad
    try:
        run = json.loads(line[len(prefix) : -1].decode("utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise bad from None
    try:
        size = [int(v) for v in run["image_size"] if isinstance(v, int) and not isinstance(v, bool)]
        det = run["view_determined"]
        pix = run["pixel_size_nm"]
        stem = run["stem"]
        ok = (isinstance(stem, str) and stem not in ("", ".", "..") and Path(stem).name == stem
              and "\x00" not in stem and len(size) == 2 and all(1 <= v <= MAX_IMAGE_SIDE for v in size)
              and isinstance(det, list) and det and all(isinstance(b, bool) for b in det)
              and (pix is None or (isinstance(pix, (int, float)) and not isinstance(pix, bool)
                                   and math.isfinite(pix) and pix > 0))
              and isinstance(run["files"], dict))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise FileFormatError(f"{info_path}: the run stamp is damaged (image size, views, pixel size or files)")
    return run


def run_stamp(directory: str | os.PathLike[str]) -> dict:
    """An alignment folder's run stamp (``stem``, ``files``, ...), checked; raises `FileFormatError` without one."""
    return _read_run(Path(directory) / "alignment.json")


def check_stamped_file(d: Path, run: dict, name: str, full: bool) -> None:
    """Refuse a file that is not the one the run stamp vouches for (by size; by SHA-256 if ``full``)."""
    want = run["files"].get(name)
    p = d / name
    if not isinstance(want, dict):
        raise FileFormatError(f"{d}: alignment.json does not list {name}")
    if not p.exists():
        raise FileFormatError(f"{p}: missing from the alignment folder")
    size = os.stat(require_regular_file(p, "alignment")).st_size  # a FIFO or a device is never hashed
    if size != want.get("bytes") or (full and _sha256(p)[1] != want.get("sha256")):
        raise FileFormatError(f"{p} does not belong to the run that wrote {d / 'alignment.json'} (the folder holds"
                              " files of two runs, or one was edited); run 'tomoalign align' again")


def check_transforms(path: Path, xf: np.ndarray, determined: np.ndarray, size: tuple[int, int]) -> None:
    """`FileFormatError` naming the first determined view whose transform is not finite, is singular or shifts
    by more than ten images."""
    a = xf[:, :, :2]
    det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    with np.errstate(invalid="ignore"):
        bad = ~np.all(np.isfinite(xf.reshape(len(xf), -1)), axis=1) | ~(np.abs(det) > 1e-3) | (np.abs(det) > 1e3)
        bad |= np.any(np.abs(xf[:, :, 2]) > 10.0 * max(size), axis=1)
    bad &= determined
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise FileFormatError(f"{path}, line {k + 1}: not a usable transform (determinant {det[k]:.3g}, shift "
                              f"{xf[k, 0, 2]:.3g}, {xf[k, 1, 2]:.3g})")


def read_alignment_dir(directory: str | os.PathLike[str]) -> SavedAlignment:
    """Read the transforms, solved tilts and image size from an alignment output directory, checked
    against its run stamp (module docstring)."""
    d = Path(directory)
    info_path = d / "alignment.json"
    if not d.is_dir() or not info_path.exists():
        raise FileFormatError(f"{d}: no alignment.json here; give the --output directory of 'tomoalign align'")
    with folder_lock(d, shared=True):
        run = _read_run(info_path)
        stem = run["stem"]
        local_name = run.get("local_file") if isinstance(run.get("local_file"), str) else None
        local_name = local_name if local_name and Path(local_name).name == local_name else None
        for name in {f"{stem}.xf", f"{stem}.tlt", *run["files"]}:
            if name in output_names(stem, full_model=True)[1:] or name == local_name:  # another run's local file: refused
                check_stamped_file(d, run, name, full=name in (f"{stem}.xf", f"{stem}.tlt", local_name))
        determined = np.asarray(run["view_determined"], dtype=bool)
        size = (int(run["image_size"][0]), int(run["image_size"][1]))
        xf = read_xf(d / f"{stem}.xf")
        tilts = read_tilt_angles(d / f"{stem}.tlt")
        z_extent = marker_z_extent(d / f"{stem}fid.xyz")
        x_tilts = read_tilt_angles(d / f"{stem}.xtilt") if f"{stem}.xtilt" in run["files"] else None
    if not (len(xf) == tilts.size == determined.size):
        raise FileFormatError(f"{d}: the .xf ({len(xf)}), .tlt ({tilts.size}) and alignment.json "
                              f"({determined.size}) disagree on the number of views")
    if not determined.any():
        raise FileFormatError(f"{info_path}: no view is determined; nothing can be aligned with it")
    check_transforms(d / f"{stem}.xf", xf, determined, size)
    xf[~determined] = np.nan
    pix = run["pixel_size_nm"]
    local = run.get("local_file")
    if x_tilts is not None and x_tilts.size != tilts.size:
        raise FileFormatError(f"{d / (stem + '.xtilt')}: {x_tilts.size} X-axis tilts for {tilts.size} views")
    return SavedAlignment(xf, _exact_tilts(run, tilts), determined, size, float(pix) if pix else None, z_extent,
                          local if isinstance(local, str) and Path(local).name == local else None, x_tilts,
                          _prexg(run, info_path, tilts.size), run.get("converged") is not False, d, stem)


def _prexg(run: dict, info_path: Path, n_views: int) -> np.ndarray | None:
    """The prealignment the run stamp keeps (`write_alignment`'s ``prexg``), checked, or None."""
    if "prexg" not in run:
        return None
    try:
        p = np.asarray(run["prexg"], dtype=float)
    except (TypeError, ValueError):
        p = np.zeros(0)
    if p.shape != (n_views, 2, 3) or not np.all(np.isfinite(p)):
        raise FileFormatError(f"{info_path}: the run stamp's prealignment is damaged; run 'tomoalign align' again")
    return p


def _exact_tilts(run: dict, tilts: np.ndarray) -> np.ndarray:
    """The solved tilts at full precision from the run stamp where they agree with the ``.tlt`` (2 decimals)."""
    exact = run.get("tilt_angle_deg")
    if not isinstance(exact, list) or len(exact) != tilts.size:
        return tilts
    vals = np.array([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in exact],
                    dtype=float)
    with np.errstate(invalid="ignore"):
        use = np.isfinite(vals) & (np.abs(vals - tilts) <= 0.006)
    return np.where(use, vals, tilts)
