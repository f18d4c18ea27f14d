"""Parts of ``tomoalign run``'s main thread replaced by faster ones giving the same numbers, each timed against
the implementation it replaced (kept here as the baseline), in this process, alternating; CPU time of this thread.

    python benchmarks/bench_run_parts.py

- ``group medians``: the robust weights' medians per group of views (`alignment.stages._medians`): sorted by
  value then by group (a stable radix sort of 16-bit labels) against one `np.lexsort` of (value, group); 93 calls
  of 10-30 thousand residuals in a 1024^2 x 41 run.
- ``ideal profile``: `tracking._profile.BeadProfile.ideal`, only the rows that reach the middle row filtered,
  against the whole supersampled image filtered; 60 profiles per diameter measure (`diameter._diameter_from_edge`).
- ``hot pixels``: `tracking._views.clamp_hot_pixels` in one compiled pass against numpy's passes
  (`clamp_hot_pixels_numpy`, the implementation it replaced, kept as the reference); 484 calls in a 1024^2 x 41
  run, on views and on stacks of 15 x 15 patches.
- ``medians``: `tracking.medians` (numpy's one-element selection) against `np.median` (whose two-element
  partition leaves numpy's vectorised selection), on a whole view and on rows of patches.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from scipy import ndimage

from napari_tomoalign.alignment.stages import _medians
from napari_tomoalign.tracking._profile import STEP, BeadProfile, _normalised
from napari_tomoalign.tracking._views import clamp_hot_pixels, clamp_hot_pixels_numpy
from napari_tomoalign.tracking.medians import median, row_medians


def medians_before(x, inv):
    """`_medians` before: one lexsort."""
    xs = x[np.lexsort((x, inv))]
    counts = np.bincount(inv)
    starts = np.cumsum(counts) - counts
    return 0.5 * (xs[starts + (counts - 1) // 2] + xs[starts + counts // 2])


def ideal_before(diameter_px, blur_px=0.6, centre_transmission=0.5):
    """`BeadProfile.ideal`'s values before: the whole image filtered."""
    radius, ss = diameter_px / 2.0, 8
    n = int(np.ceil(radius + 4 * blur_px + 3)) * ss
    a = (np.arange(-n, n + 1)) / ss
    r2 = a[None, :] ** 2 + a[:, None] ** 2
    chord = np.sqrt(np.clip(radius * radius - r2, 0.0, None)) / max(radius, 1e-6)
    img = ndimage.uniform_filter(1.0 - np.exp(np.log(centre_transmission) * chord), ss)
    img = ndimage.gaussian_filter(img, max(blur_px, 0.05) * ss)
    return _normalised(np.interp(np.arange(0, a[-1], STEP), a[n:], img[n, n:]))


def timed(fn, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    cases = []
    for n, g in ((3000, 20), (12000, 40), (30000, 41)):
        x, inv = np.abs(rng.normal(size=n)), rng.integers(0, g, n)
        assert np.array_equal(_medians(x, inv), medians_before(x, inv))
        cases.append((f"group medians, {n} residuals in {g} groups (x20)", lambda x=x, inv=inv: [
            medians_before(x, inv) for _ in range(20)], lambda x=x, inv=inv: [_medians(x, inv) for _ in range(20)]))
    ds = np.linspace(1.5, 2.5 * 2.6 + 4.0, 60)  # `_diameter_from_edge`'s 60 diameters for a 5 px bead
    assert all(np.array_equal(BeadProfile.ideal(d).values, ideal_before(d)) for d in ds[:5])
    cases.append(("ideal profiles, the 60 of a diameter measure", lambda: [ideal_before(d) for d in ds],
                  lambda: [BeadProfile.ideal(d) for d in ds]))
    for label, shape in (("hot pixels, a 1024^2 view (x5)", (1024, 1024)), ("hot pixels, 150 patches 15^2 (x50)",
                                                                          (150, 15, 15))):
        img = rng.normal(100, 10, size=shape).astype(np.float32)
        img.flat[rng.integers(0, img.size, img.size // 500)] = 400.0
        reps = 5 if len(shape) == 2 else 50
        a, b = img.copy(), img.copy()
        assert clamp_hot_pixels(a, 60.0) == clamp_hot_pixels_numpy(b, 60.0) and np.array_equal(a, b)
        cases.append((label, lambda img=img, reps=reps: [clamp_hot_pixels_numpy(img.copy(), 60.0) for _ in range(reps)],
                      lambda img=img, reps=reps: [clamp_hot_pixels(img.copy(), 60.0) for _ in range(reps)]))
    view = rng.normal(100, 10, size=(1024, 1024)).astype(np.float32)
    rows = rng.normal(size=(250, 225)).astype(np.float32)
    assert median(view) == np.median(view) and np.array_equal(row_medians(rows), np.median(rows, axis=1))
    cases.append(("median of a 1024^2 view (x5)", lambda: [np.median(view) for _ in range(5)],
                  lambda: [median(view) for _ in range(5)]))
    cases.append(("row medians, 250 patches of 15^2 (x20)", lambda: [np.median(rows, axis=1) for _ in range(20)],
                  lambda: [row_medians(rows) for _ in range(20)]))
    print("CPU of this thread, medians of 7 (machine may be shared); the same numbers either way (checked)")
    for label, old, new in cases:
        old_s, new_s = [], []
        for _ in range(2):
            old_s.append(timed(old))
            new_s.append(timed(new))
        o, w = statistics.median(old_s), statistics.median(new_s)
        print(f"  {label:52s} before {o * 1e3:8.2f} ms   now {w * 1e3:8.2f} ms   now/before {w / o:5.2f}")


if __name__ == "__main__":
    main()
