"""``tomoalign align --imod-com X.com --exclude-views N --local`` (``LocalAlignments 1``): the local fits honour
the excluded views as IMOD's ``tiltalign`` does with its ``ExcludeList``.

Known truth: the beads of view 10 of IMOD's tutorial series (BBa) are moved by 6 px at random (a view tracked
badly, or taken from another run), the mistake a user excludes a view for. Excluded, its points must carry no
weight anywhere: the global and the local files are the same as for the clean series with view 10 excluded,
and the local file holds IMOD's unit refinement and zero increments for it (its global transform applies,
as IMOD writes a local file for a view without points). Not excluded, the bad view changes the local fits (so the
comparison can see a view that leaks in).
"""

import dataclasses

import numpy as np

from napari_tomoalign.cli import main
from napari_tomoalign.io.imod_local import read_local_transforms
from napari_tomoalign.io.imod_model import read_imod_model, write_imod_model

ERROR_PX = 6.0
VIEW = 10  # numbered from 1, as on the command line


def _align(tmp_path, imod_data, name, fid, exclude):
    com = tmp_path / "local.com"
    if not com.exists():
        com.write_text((imod_data / "aligna.com").read_text().replace("LocalAlignments\t0", "LocalAlignments\t1"))
    out = tmp_path / name
    args = ["align", str(fid), "--tilt-angles", str(imod_data / "BBa.rawtlt"), "--imod-com", str(com), "--local",
            "--output", str(out), "--quiet"] + (["--exclude-views", str(VIEW)] if exclude else [])
    assert main(args) == 0
    return read_local_transforms(out / "BBalocal.xf", 61), np.loadtxt(out / "BBa.xf")


def test_an_excluded_bad_view_leaves_the_global_and_local_fits_unchanged(tmp_path, imod_data):
    table = read_imod_model(imod_data / "BBa.fid")
    bad = table.view == VIEW - 1
    xy = table.xy.copy()
    xy[bad] += np.random.default_rng(3).normal(0.0, ERROR_PX, (int(bad.sum()), 2))
    fid = tmp_path / "bad" / "BBa.fid"
    fid.parent.mkdir()
    write_imod_model(fid, dataclasses.replace(table, xy=xy), image_size=table.image_size, n_views=61)

    clean, clean_xf = _align(tmp_path, imod_data, "clean", imod_data / "BBa.fid", exclude=True)
    excluded, excluded_xf = _align(tmp_path, imod_data, "excluded", fid, exclude=True)
    leaked, _ = _align(tmp_path, imod_data, "leaked", fid, exclude=False)

    assert np.array_equal(excluded_xf, clean_xf)
    assert np.array_equal(excluded.transforms, clean.transforms)
    assert np.array_equal(excluded.tilt_increment_deg, clean.tilt_increment_deg)
    assert excluded.z_factors is not None and clean.z_factors is not None
    assert np.array_equal(excluded.z_factors, clean.z_factors)
    # IMOD's local file for an excluded view: the unit refinement, no tilt increment, no Z factor
    v = VIEW - 1
    assert np.array_equal(excluded.transforms[:, v], np.tile([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], (25, 1, 1)))
    assert not np.any(excluded.tilt_increment_deg[:, v]) and not np.any(excluded.z_factors[:, v])
    # the other views are refined (the patches did fit them)
    others = np.delete(excluded.transforms, v, axis=1)
    assert np.abs(others[..., :2] - np.eye(2)).max() > 1e-4 and np.abs(others[..., 2]).max() > 0.05
    # not excluded, the bad view pulls the patches' fits: the comparisons above would see a leak
    assert np.abs(leaked.transforms[:, v] - excluded.transforms[:, v]).max() > 0.5
    assert np.abs(leaked.tilt_increment_deg - excluded.tilt_increment_deg).max() > 0.1
