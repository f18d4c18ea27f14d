"""IMOD's per-view outputs (.xtilt, .tltxf, .zfac): IMOD's own BBa.tltxf written back byte for byte, the Z
factors' meaning (the z motion beyond what tilt and X-tilt explain) and the atomic, no-overwrite writes."""

import dataclasses

import numpy as np
import pytest

from napari_tomoalign import read_markers, read_tilt_angles
from napari_tomoalign.alignment.model import DMAG, SKEW, XTILT, view_matrices
from napari_tomoalign.alignment.solver import align_markers_imod
from napari_tomoalign.alignment.transforms import linear_parts, x_tilts_deg, z_factors
from napari_tomoalign.io.atomic import OverwriteError
from napari_tomoalign.io.imod import read_xf
from napari_tomoalign.io.imod_views import write_imod_views, write_tltxf, write_xtilt


@pytest.fixture(scope="module")
def bba(imod_data):
    m = read_markers(imod_data / "BBa.fid")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    return align_markers_imod(m.view, m.marker, m.xy, tilts, m.image_size, imod_data / "aligna.com",
                              pixel_size_nm=2.02)


def test_tltxf_writes_imods_own_file_back_byte_for_byte(imod_data, tmp_path):
    out = tmp_path / "BBa.tltxf"
    write_tltxf(out, read_xf(imod_data / "BBa.tltxf"))
    assert out.read_bytes() == (imod_data / "BBa.tltxf").read_bytes()


def test_xtilt_is_written_as_tlt_is(imod_data, tmp_path):
    out = tmp_path / "BBa.xtilt"
    write_xtilt(out, np.loadtxt(imod_data / "BBa.tlt"))
    assert out.read_bytes() == (imod_data / "BBa.tlt").read_bytes()


def test_z_factors_are_the_z_motion_beyond_tilt_and_x_tilt(bba):
    p = bba.full_params.copy()
    rng = np.random.default_rng(0)
    p[:, XTILT] = rng.normal(0, 0.02, len(p))
    p[:, DMAG] += rng.normal(0, 0.01, len(p))
    p[:, SKEW] += rng.normal(0, 0.02, len(p))
    al = dataclasses.replace(bba, full_params=p)
    a, _ = view_matrices(p)
    z_coeff = np.einsum("vij,vj->vi", linear_parts(al), a[:, :, 2])  # aligned motion per unit z
    th, ph = p[:, 0], p[:, XTILT]
    expected = np.column_stack([np.sin(th) * np.cos(ph), -np.sin(ph)])  # what tilt projects with
    np.testing.assert_allclose(z_factors(al), z_coeff / p[:, 8:9] - expected, atol=1e-12)
    assert np.abs(z_factors(al)).max() > 1e-3
    pure_x_tilt = p.copy()
    pure_x_tilt[:, [DMAG, SKEW]] = 0.0
    np.testing.assert_allclose(z_factors(dataclasses.replace(bba, full_params=pure_x_tilt)), 0.0, atol=1e-12)
    np.testing.assert_allclose(x_tilts_deg(al), np.degrees(p[:, XTILT]))


def test_write_imod_views_writes_three_files_atomically(bba, tmp_path):
    paths = write_imod_views(bba, tmp_path, "BBa", axis_z_shift_px=17.2)
    assert [p.name for p in paths] == ["BBa.xtilt", "BBa.tltxf", "BBa.zfac"]
    assert np.loadtxt(paths[2]).shape == (61, 2) and np.loadtxt(paths[0]).shape == (61,)
    np.testing.assert_allclose(np.loadtxt(paths[2]), z_factors(bba), atol=1e-6)
    lines = paths[1].read_text().splitlines()
    assert len(lines) == 61 and all(len(line) == 72 for line in lines)  # 4f12.7, 2f12.3
    before = paths[1].read_bytes()
    with pytest.raises(OverwriteError):
        write_imod_views(bba, tmp_path, "BBa")
    assert paths[1].read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
