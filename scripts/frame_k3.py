"""The aligned frame on a K3-shaped series: the fraction of true 3-D points of the raw field that land inside
the tomogram, with the raw frame (before: ``--size`` the raw size) and the transposed one (now, as etomo).

A 5760 x 4092 K3 frame scaled by 1/8 (720 x 511, the same shape), the tilt axis at 85.3 degrees, 41 views from
-60 to 60, points drawn uniformly over the raw field at zero tilt (``tests/support/frames.py``), reconstructed
with the true alignment by ``reconstruct``'s job (binned by 2). Also the share of the raw field each frame holds,
by geometry, at the full 5760 x 4092 size. Usage::

    PYTHONPATH=src python scripts/frame_k3.py [--points 600]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    import mrcfile
    from support.frames import field_fraction, frame_series, in_tomogram, peak_at

    from napari_tomoalign.file_jobs import reconstruct_to_file
    from napari_tomoalign.reconstruction.frame import frame_size

    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=600)
    args = ap.parse_args()
    raw = (720, 511)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        s = frame_series(d, raw_size=raw, axis_deg=85.3, n_points=args.points, tilts=np.linspace(-60, 60, 41),
                         shift_px=4.0, sigma=1.5)
        for name, size in (("raw frame (before)", raw), ("transposed (now)", None)):
            r = reconstruct_to_file(s.stack, s.xf_path, d / "t.rec", binning=2, thickness=40, size=size,
                                    overwrite=True)
            vol = mrcfile.read(r.path)
            inside = in_tomogram(s.xyz, vol, binning=2)
            pk = peak_at(s.xyz[inside] / [2, 2, 1], vol)
            print(f"{name:20s} tomogram {vol.shape[2]} x {vol.shape[1]} x {vol.shape[0]} (x, y, z): "
                  f"{inside.mean():.3f} of {len(s.xyz)} points inside ({int((~inside).sum())} outside); field share"
                  f" {field_fraction(s, (vol.shape[2] * 2, vol.shape[1] * 2)):.3f}; weakest peak"
                  f" {pk.min() / vol.std():.1f} sd")
    from support.frames import FrameSeries

    k3 = (5760, 4092)
    xf = np.zeros((1, 2, 3))
    r = np.radians(-85.3)
    xf[0, :, :2] = [[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]]
    geo = FrameSeries(Path(), Path(), np.zeros((0, 3)), k3, xf, np.zeros(1))
    f = frame_size(k3, xf)
    print(f"full K3 {k3[0]} x {k3[1]} at 85.3 deg: the raw frame holds {field_fraction(geo, k3):.3f} of the field,"
          f" the aligned frame {f.size[0]} x {f.size[1]} holds {field_fraction(geo, f.size):.3f}")


if __name__ == "__main__":
    main()
