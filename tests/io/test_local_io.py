"""IMOD's local alignment file: write then read, every optional block, atomic and refusing to overwrite."""

import numpy as np
import pytest

from napari_tomoalign.io.atomic import OverwriteError
from napari_tomoalign.io.errors import FileFormatError
from napari_tomoalign.io.imod_local import LocalTransforms, read_local_transforms, write_local_transforms


def _sample(n_views=13, with_xtilt=True, with_z=True, seed=0):
    rng = np.random.default_rng(seed)
    n_p = 3 * 2
    xf = np.tile(np.eye(2, 3), (n_p, n_views, 1, 1)) + rng.normal(0, 0.01, (n_p, n_views, 2, 3))
    xf[..., 2] = rng.normal(0, 2.0, (n_p, n_views, 2))
    return LocalTransforms((3, 2), (120, 140), (230, 260), 7.84, np.round(rng.normal(0, 0.3, (n_p, n_views)), 2),
                           xf, np.round(rng.normal(0, 0.2, (n_p, n_views)), 2) if with_xtilt else None,
                           rng.normal(0, 0.01, (n_p, n_views, 2)) if with_z else None)


@pytest.mark.parametrize("with_xtilt, with_z", [(False, False), (True, False), (False, True), (True, True)])
def test_round_trip(tmp_path, with_xtilt, with_z):
    lt = _sample(with_xtilt=with_xtilt, with_z=with_z)
    path = tmp_path / "local.xf"
    write_local_transforms(path, lt)
    back = read_local_transforms(path)  # the number of views is found from the file
    assert (back.n_patches, back.start, back.spacing, back.n_views) == ((3, 2), (120, 140), (230, 260), 13)
    assert back.pixel_size == pytest.approx(7.84)
    assert np.allclose(back.tilt_increment_deg, lt.tilt_increment_deg, atol=5e-3)
    assert np.allclose(back.transforms[..., :2], lt.transforms[..., :2], atol=5e-8)
    assert np.allclose(back.transforms[..., 2], lt.transforms[..., 2], atol=5e-4)
    assert (back.x_tilt_increment_deg is None) == (not with_xtilt)
    if with_z:
        assert np.allclose(back.z_factors, lt.z_factors, atol=5e-7)
    assert np.allclose(back.patch_centres()[:4], [[120, 140], [350, 140], [580, 140], [120, 400]])
    header = path.read_text().splitlines()[0]
    assert header == f"     3     2   120   140   230   260     {int(with_xtilt)}     7.84000   {int(with_z)}"


def test_writer_refuses_to_overwrite_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "local.xf"
    path.write_text("precious\n")
    with pytest.raises(OverwriteError):
        write_local_transforms(path, _sample())
    assert path.read_text() == "precious\n"
    write_local_transforms(path, _sample(), overwrite=True)
    assert read_local_transforms(path).n_views == 13
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local.xf"]


def test_bad_files_are_named(tmp_path):
    path = tmp_path / "local.xf"
    write_local_transforms(path, _sample())
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(FileFormatError, match="fit no number of views"):
        read_local_transforms(path)
    with pytest.raises(FileFormatError, match="truncated"):
        read_local_transforms(path, n_views=13)
    path.write_text("this is not\n")
    with pytest.raises(FileFormatError, match="not a local alignment header"):
        read_local_transforms(path)
    with pytest.raises(ValueError, match="patches need"):
        write_local_transforms(tmp_path / "x.xf", LocalTransforms((2, 2), (0, 0), (1, 1), 1.0, np.zeros((3, 5)),
                                                                  np.zeros((3, 5, 2, 3))))
