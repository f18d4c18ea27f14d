"""Unbinned tilt series with known truth: a `beads.BeadScene` rendered at a finer pixel size.

A real cryo series arrives unbinned: 4096 x 4096 at 0.15-0.3 nm/px, gold of 10 nm spanning 40-80 px, one
or two electrons per pixel. `upsample_scene` takes a scene built at a coarse pixel size (for example the
``"cryo"`` preset at 0.8 nm/px, 12.5 px beads) and returns the same specimen, geometry and dose per area
at ``factor`` times finer pixels: positions, shifts, sizes and the texture's scales grow by ``factor``,
the counts per pixel drop by ``factor**2`` (the same dose spread over more pixels). Binning the rendered
views by ``factor`` gives (up to noise) the coarse scene's views, so the unbinned set and its binned
version can be compared figure for figure.

`write_unbinned_stack` renders such a scene view by view into an int16 MRC on disk (memory for one view),
with its ``.rawtlt`` and a ``.truth.npz`` of the true positions beside it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..alignment.model import DX, DY
from .beads import BeadScene, bead_scene, render_view, true_positions


def upsample_scene(scene: BeadScene, factor: int) -> BeadScene:
    """The same specimen at ``factor`` times finer pixels (see the module docstring)."""
    f = int(factor)
    if f < 1:
        raise ValueError(f"the factor must be a whole number >= 1, not {factor}")
    vp = scene.view_params.copy()
    vp[:, [DX, DY]] *= f
    p = dict(scene.params)
    p.update(pixel_size_nm=p["pixel_size_nm"] / f, bead_diameter_px=p["bead_diameter_px"] * f,
             thickness_px=p["thickness_px"] * f, counts=p["counts"] / f**2, blur_px=p["blur_px"] * f,
             fringe_sigma_px=p.get("fringe_sigma_px", 2.0) * f)
    return replace(scene, shape=(scene.shape[0] * f, scene.shape[1] * f), view_params=vp,
                   bead_xyz=scene.bead_xyz * f, bead_radius_px=scene.bead_radius_px * f,
                   bead_density=scene.bead_density / f, blob_xyz=scene.blob_xyz * f,
                   blob_sigma=scene.blob_sigma * f, params=p)


def unbinned_scene(kind: str = "cryo", base_size: int = 1024, factor: int = 4, n_views: int = 41, seed: int = 1,
                   **overrides) -> BeadScene:
    """A preset's scene at ``base_size`` upsampled by ``factor`` (``"cryo"``, 1024, 4: 4096 x 4096 at
    0.2 nm/px with 10 nm gold of 50 px)."""
    return upsample_scene(bead_scene(kind, base_size, n_views, seed=seed, **overrides), factor)


def write_unbinned_stack(path: str | os.PathLike[str], scene: BeadScene, *, mode: int = 1) -> Path:
    """Render ``scene`` view by view into an MRC of ``mode`` (1: int16) at ``path``, with ``.rawtlt`` (the
    nominal tilts) and ``<path>.truth.npz`` (true positions, visibility, clump numbers, tilt axis) beside it.
    Written under a temporary name and renamed, so that a half-written file is never taken for a stack."""
    import mrcfile

    out = Path(path)
    n = len(scene.view_params)
    rows, cols = scene.shape
    part = out.with_name(out.name + ".part")
    with mrcfile.new_mmap(str(part), shape=(n, rows, cols), mrc_mode=mode, overwrite=True) as m:
        m.voxel_size = 10.0 * scene.params["pixel_size_nm"]
        info = np.iinfo(np.int16) if mode == 1 else None
        for j in range(n):
            img = render_view(scene, j)
            m.data[j] = np.clip(np.round(img), info.min, info.max).astype(np.int16) if info else img
    os.replace(part, out)
    out.with_suffix(".rawtlt").write_text("".join(f"{a:.2f}\n" for a in scene.nominal_tilt_deg))
    xy, visible = true_positions(scene)
    np.savez(str(out) + ".truth.npz", xy=xy, visible=visible, clump=scene.clump, tilts=scene.nominal_tilt_deg,
             axis=scene.params["tilt_axis_deg"], bead_diameter_px=scene.params["bead_diameter_px"],
             pixel_size_nm=scene.params["pixel_size_nm"], view_params=scene.view_params, xyz=scene.bead_xyz)
    return out
