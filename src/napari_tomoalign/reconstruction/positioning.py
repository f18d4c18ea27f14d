"""Tomogram positioning from the markers' 3-D positions: IMOD's surface analysis (``SurfacesToAnalyze``).

A plane ``z = a x + b y + c`` is fitted by least squares to the markers (one surface), or to each of
the two bead layers (two surfaces), in coordinates with the markers' centroid at zero, as
``tiltalign`` does. From a fit IMOD reports:

- the *adjusted slope* ``a / (cos alpha - b sin alpha)`` with ``alpha = atan b``;
- the *incremental tilt angle change* ``atan(-slope)``: the change to every tilt angle that levels the
  section in x (``AngleOffset``), and the total with the offset already applied;
- the *X axis tilt needed*, ``-alpha``;
- for two surfaces, the *thickness at the Z intercepts* (top ``c`` minus bottom ``c``), and the
  averages of the slopes and X-tilts weighted by the number of points.

The two layers are found as IMOD's older ``find_surfaces`` did: rotate the points by the current
average slope and X-tilt, split them at the middle of the rotated z range, refit, until the split
holds (at most six rounds); then move the point with the largest residual to the other layer while
that lowers the summed residuals (a layer keeps at least 3 points, the donor at least 4). Splits at the
widest gap in z are refined the same way, and the split with the least summed residual and the most
parallel planes is kept
(`_best_split`): with a few beads the first one can split the layers wrongly.

Signs, from IMOD's ``tilt`` (``tilt.f``) and ``tiltalign`` (``alignment-model.md``, ``imod-full-model.md``).
``tiltalign`` projects a marker at ``(x, y, z)`` (its fid.xyz, centroid zero) by ``Y(t) Xr(phi)``:
``u = x cos t + (y sin phi + z cos phi) sin t``, ``v = y cos phi - z sin phi``, with ``t`` the ``.tlt`` and
``phi`` the ``.xtilt`` value. ``tilt`` back-projects output row ``zz`` of a slice with ``sin t`` and
``sin alpha`` negated and the Z factors negated ("things are upside down here"), and with
``alpha = xtilt - XAXISTILT`` (``alpha(iv) = alpha(iv) - globalpha``): that is the same formula with
``z = -zz`` and ``phi = xtilt - XAXISTILT``. So IMOD's tomogram has the fid.xyz's positive z at the
bottom, a ``.xtilt`` is applied as it is and ``XAXISTILT`` is *subtracted* from it. Here a marker's z is
the volume's z and `wbp` takes ``phi`` itself; `wbp_x_tilts` makes ``phi`` from a ``.xtilt`` and an
``XAXISTILT``, the one place that sign lives. In the same way ``tilt``'s row ``zz = I - ithick/2 - SHIFT_z``
puts the fid.xyz's ``z`` at row ``ithick/2 + SHIFT_z - z``, and `wbp` puts it at ``n_z/2 + shift_z + z``:
the same slab of the specimen is kept with ``shift_z = -SHIFT_z`` (`wbp_shift`; x is not flipped).

What levels a plane ``z = a x + b y + c`` of the markers: a volume point ``(y, z)`` is the specimen's
``(y cos phi - z sin phi, y sin phi + z cos phi)``, so the volume's z = 0 is the plane of slope
``tan phi`` in y: ``phi = atan b = alpha``, i.e. ``XAXISTILT = -alpha``, the printed "X axis tilt needed"
(as etomo copies it into ``tilt.com``). Adding ``d`` to every tilt angle makes the volume's z = 0 the
plane of slope ``-tan d`` in x: ``d = atan(-slope)``, the printed "incremental tilt angle change", added
to the tilt angles here as by IMOD's ``AngleOffset`` or ``OFFSET``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class PlaneFit:
    """One plane ``z = a x + b y + c`` through a set of markers (centroid-zero pixels)."""

    n_points: int
    a: float
    b: float
    intercept_px: float
    mean_residual_px: float
    lowest_px: float  # the lowest marker's height above the plane's intercept, plus the intercept
    highest_px: float

    @property
    def alpha_deg(self) -> float:
        return float(np.degrees(np.arctan(self.b)))

    @property
    def adjusted_slope(self) -> float:
        al = np.radians(self.alpha_deg)
        return float(self.a / (np.cos(al) - self.b * np.sin(al)))

    @property
    def x_axis_tilt_needed_deg(self) -> float:
        """IMOD's "X axis tilt needed" (its ``XAXISTILT`` sign)."""
        return -self.alpha_deg

    @property
    def tilt_angle_change_deg(self) -> float:
        """IMOD's "Incremental tilt angle change"."""
        return float(np.degrees(np.arctan(-self.adjusted_slope)))


@dataclass(frozen=True)
class SurfaceAnalysis:
    """The result of `analyse_surfaces`; ``bottom`` and ``top`` only for two surfaces."""

    n_surfaces: int
    angle_offset_deg: float  # the offset already in the tilt angles (AngleOffset)
    all_points: PlaneFit
    bottom: PlaneFit | None
    top: PlaneFit | None
    centroid_px: tuple[float, float, float]
    bottom_of: tuple[bool, ...]  # per marker: on the bottom surface (two surfaces only; else all False)

    @property
    def slope(self) -> float:
        if self.bottom is None or self.top is None:
            return self.all_points.adjusted_slope
        n = self.bottom.n_points + self.top.n_points
        return (self.bottom.n_points * self.bottom.adjusted_slope + self.top.n_points * self.top.adjusted_slope) / n

    @property
    def x_axis_tilt_needed_deg(self) -> float:
        if self.bottom is None or self.top is None:
            return self.all_points.x_axis_tilt_needed_deg
        n = self.bottom.n_points + self.top.n_points
        return -(self.bottom.n_points * self.bottom.alpha_deg + self.top.n_points * self.top.alpha_deg) / n

    @property
    def tilt_angle_change_deg(self) -> float:
        return float(np.degrees(np.arctan(-self.slope)))

    @property
    def thickness_px(self) -> float | None:
        """Thickness at the Z intercepts (two surfaces only)."""
        if self.bottom is None or self.top is None:
            return None
        return self.top.intercept_px - self.bottom.intercept_px

    def as_dict(self) -> dict:
        """For ``alignment.json``: the combined figures, then each fit as IMOD prints it."""
        def fit(p: PlaneFit | None) -> dict | None:
            if p is None:
                return None
            d = asdict(p)
            d.update(adjusted_slope=p.adjusted_slope, x_axis_tilt_needed_deg=p.x_axis_tilt_needed_deg,
                     tilt_angle_change_deg=p.tilt_angle_change_deg,
                     total_tilt_angle_change_deg=p.tilt_angle_change_deg + self.angle_offset_deg)
            return d

        return {"surfaces": self.n_surfaces, "adjusted_slope": self.slope,
                "x_axis_tilt_needed_deg": self.x_axis_tilt_needed_deg,
                "tilt_angle_change_deg": self.tilt_angle_change_deg,
                "total_tilt_angle_change_deg": self.tilt_angle_change_deg + self.angle_offset_deg,
                "thickness_at_intercepts_px": self.thickness_px, "centroid_px": list(self.centroid_px),
                "all_points": fit(self.all_points), "bottom": fit(self.bottom), "top": fit(self.top)}

    def report(self) -> str:
        """The analysis as IMOD's ``tiltalign`` log prints it."""
        lines = ["SURFACE ANALYSIS:", "", "Fit of one plane to all fiducials:",
                 f"Adjusted slope = {self.all_points.adjusted_slope:8.4f}", *self._change(self.all_points.adjusted_slope)]
        for name, p in (("bottom", self.bottom), ("top", self.top)):
            if p is not None:
                lines += ["", f"Fit of one plane to points on {name} surface:", f"# of points = {p.n_points:6d}",
                          f"Z axis intercept = {p.intercept_px:8.2f}", f"Adjusted slope = {p.adjusted_slope:10.4f}",
                          f"Mean residual = {p.mean_residual_px:11.3f}",
                          f"X axis tilt needed = {p.x_axis_tilt_needed_deg:6.2f}", *self._change(p.adjusted_slope)]
        if self.thickness_px is not None:
            lines += ["", f"Thickness at Z intercepts = {self.thickness_px:11.2f}",
                      f"Average adjusted slope = {self.slope:14.4f}",
                      f"Average X axis tilt needed = {self.x_axis_tilt_needed_deg:10.2f}", *self._change(self.slope)]
            if abs(self.thickness_px) < ONE_LAYER_PX:  # (new user s14: "Thickness ... = 0.01" and no word)
                lines += ["", "The markers lie in one layer (gold on one face): the two surfaces are its halves, and",
                          "the thickness above is not the section's; the slopes level the section all the same."]
        return "\n".join(lines)

    def _change(self, slope: float) -> list[str]:
        inc = float(np.degrees(np.arctan(-slope)))
        total = inc + self.angle_offset_deg
        return [f"Incremental tilt angle change = {inc:7.2f}", f"Total tilt angle change = {total:13.2f}"]


def fit_plane(xyz: NDArray[np.float64]) -> PlaneFit:
    """Least-squares plane through ``(n, 3)`` points (a line in x for two points, flat for one)."""
    x, y, z = np.asarray(xyz, dtype=float).T
    if x.size > 2:
        (a, b, c), *_ = np.linalg.lstsq(np.column_stack([x, y, np.ones_like(x)]), z, rcond=None)
    elif x.size == 2:
        a, c = np.polyfit(x, z, 1) if x[0] != x[1] else (0.0, z.mean())
        b = 0.0
    else:
        a, b, c = 0.0, 0.0, float(z[0])
    dev = z - (a * x + b * y + c)
    return PlaneFit(int(x.size), float(a), float(b), float(c), float(np.abs(dev).mean()), float(c + dev.min()),
                    float(c + dev.max()))


def _two_fits(p: NDArray[np.float64], bottom: NDArray[np.bool_]) -> tuple[PlaneFit, PlaneFit]:
    return fit_plane(p[bottom]), fit_plane(p[~bottom])


def _split(p: NDArray[np.float64], first: PlaneFit) -> NDArray[np.bool_]:
    """Rounds of rotate, split at the middle of the z range and refit, until the split holds."""
    slope, alpha = first.adjusted_slope, first.alpha_deg
    bottom = np.zeros(len(p), bool)
    for k in range(6):
        th, al = -np.arctan(slope), np.radians(alpha)
        zr = p[:, 0] * np.sin(th) + (p[:, 2] * np.cos(al) - p[:, 1] * np.sin(al)) * np.cos(th)
        new = zr <= (zr.min() + zr.max()) / 2.0
        changed = k == 0 or bool(np.any(new != bottom))
        bottom = new
        lo, hi = _two_fits(p, bottom)
        n = len(p)
        slope = (lo.n_points * lo.adjusted_slope + hi.n_points * hi.adjusted_slope) / n
        alpha = (lo.n_points * lo.alpha_deg + hi.n_points * hi.alpha_deg) / n
        if not changed:
            break
    return bottom


def _refine(p: NDArray[np.float64], bottom: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Move the worst-fitting point to the other layer while that lowers the summed mean residuals."""
    bottom = bottom.copy()

    def error(lo: PlaneFit, hi: PlaneFit) -> float:
        return lo.n_points * lo.mean_residual_px + hi.n_points * hi.mean_residual_px

    lo, hi = _two_fits(p, bottom)
    err = error(lo, hi)
    checked: set[int] = set()
    for _ in range(1000):
        if len(checked) >= len(p) // 2:
            break
        res = np.where(bottom, np.abs(p[:, 2] - (lo.a * p[:, 0] + lo.b * p[:, 1] + lo.intercept_px)),
                       np.abs(p[:, 2] - (hi.a * p[:, 0] + hi.b * p[:, 1] + hi.intercept_px)))
        res[list(checked)] = -1.0
        k = int(np.argmax(res))
        donor, receiver = (lo, hi) if bottom[k] else (hi, lo)
        if donor.n_points < 4 or receiver.n_points < 3:
            checked.add(k)
            continue
        bottom[k] = not bottom[k]
        lo2, hi2 = _two_fits(p, bottom)
        if error(lo2, hi2) < err:
            lo, hi, err = lo2, hi2, error(lo2, hi2)
            checked.clear()
        else:
            bottom[k] = not bottom[k]
            checked.add(k)
    return bottom


def _gap_split(z: NDArray[np.float64]) -> NDArray[np.bool_] | None:
    """The points below the widest gap in ``z`` that leaves at least 3 on each side (None for under 6)."""
    if len(z) < 6:
        return None
    zs = np.sort(z)
    i = 2 + int(np.argmax(np.diff(zs)[2 : len(zs) - 3]))
    return z <= zs[i]


def _best_split(p: NDArray[np.float64], first: PlaneFit) -> NDArray[np.bool_]:
    """The two layers with the least summed residual, and the most parallel, among IMOD's rotate-and-split
    (`_split`) and splits at the widest gap in z, as it is and off the plane through all points; each refined
    (`_refine`). With a few beads spread unevenly in x (4 + 4 on the faces of a level section), the plane through
    all points tilts, and rotating by it splits the layers 2 + 6 at a 16-degree slope; the gap splits them as
    they are."""
    off_plane = p[:, 2] - (first.a * p[:, 0] + first.b * p[:, 1] + first.intercept_px)
    starts = [_split(p, first), _gap_split(p[:, 2]), _gap_split(off_plane)]
    extent = float(np.hypot(p[:, 0].std(), p[:, 1].std()))
    best, best_err = None, np.inf
    for start in starts:
        if start is None:
            continue
        bottom = _refine(p, start)
        lo, hi = _two_fits(p, bottom)
        # residuals, and how far the two planes part over the markers' spread: a section's faces are parallel
        # (3 points fit any plane exactly, so 3 + 3 markers are told apart by this alone)
        apart = extent * float(np.hypot(lo.a - hi.a, lo.b - hi.b))
        err = lo.n_points * lo.mean_residual_px + hi.n_points * hi.mean_residual_px + len(p) * apart
        if err < best_err - 1e-9:
            best, best_err = bottom, err
    assert best is not None
    return best


def analyse_surfaces(xyz_px: NDArray[np.float64], n_surfaces: int, *, angle_offset_deg: float = 0.0) -> SurfaceAnalysis:
    """IMOD's surface analysis of ``(n_markers, 3)`` marker positions (pixels; any origin).

    ``n_surfaces`` is 1 (one plane) or 2 (a plane per bead layer); ``angle_offset_deg`` the
    ``AngleOffset`` already applied, for the total tilt angle change.
    """
    if n_surfaces not in (1, 2):
        raise ValueError(f"SurfacesToAnalyze must be 1 or 2, not {n_surfaces}")
    xyz = np.asarray(xyz_px, dtype=float)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1)] if xyz.ndim == 2 else xyz
    need = 3 if n_surfaces == 1 else 6
    if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) < need:
        raise ValueError(f"the surface analysis needs at least {need} markers with 3-D positions for "
                         f"{n_surfaces} surface(s); track more beads")
    centroid = xyz.mean(axis=0)
    c3 = (float(centroid[0]), float(centroid[1]), float(centroid[2]))
    p = xyz - centroid
    first = fit_plane(p)
    if n_surfaces == 1:
        return SurfaceAnalysis(1, angle_offset_deg, first, None, None, c3, tuple([False] * len(p)))
    bottom = _best_split(p, first)
    lo, hi = _two_fits(p, bottom)
    return SurfaceAnalysis(2, angle_offset_deg, first, lo, hi, c3, tuple(map(bool, bottom)))


def wbp_x_tilts(x_tilts_deg: NDArray[np.float64] | float, xaxistilt_deg: float) -> NDArray[np.float64]:
    """The X-axis tilt per view for `wbp` (tiltalign's ``phi``) from the alignment's ``.xtilt`` values and
    IMOD's ``XAXISTILT``: the ``.xtilt`` minus ``XAXISTILT``, as IMOD's ``tilt`` combines them."""
    return np.asarray(x_tilts_deg, dtype=float) - float(xaxistilt_deg)


def wbp_shift(shift_px: tuple[float, float]) -> tuple[float, float]:
    """`wbp`'s ``shift_px`` from IMOD's ``SHIFT x z`` (unbinned pixels): x as it is, z negated, so that the
    volume holds the same slab of the specimen as IMOD's ``tilt`` with that ``SHIFT`` (module docstring)."""
    return float(shift_px[0]), -float(shift_px[1])


@dataclass(frozen=True)
class Levelling:
    """What reconstructs the section level and held, in IMOD's terms: add ``tilt_change_deg`` to every
    tilt angle (``AngleOffset``/``OFFSET``), reconstruct with ``x_axis_tilt_deg`` as IMOD's ``XAXISTILT``
    (`wbp_x_tilts`), ``thickness_px`` thick, shifted by ``z_shift_px`` (IMOD's ``SHIFT`` z, unbinned pixels:
    `wbp_shift`)."""

    tilt_change_deg: float
    x_axis_tilt_deg: float
    thickness_px: int
    z_shift_px: float
    one_layer: bool = False  # the markers lie in one layer: they level the section but cannot tell its thickness
    given: tuple[float, float] = (0.0, 0.0)  # the --offset and --x-axis-tilt added to the analysis' values
    fewest_on_a_face: int | None = None  # two surfaces: the markers on the face with fewer
    size_given: tuple[bool, bool] = (False, False)  # the thickness and the Z shift given by the user (--thickness, --shift)
    from_markers: tuple[float, float] = (0.0, 0.0)  # the analysis' own thickness and Z shift (said beside given ones)
    scattered: tuple[float, float, float] | None = None  # two faces' mean residuals and their distance, when large

    def report(self, n_surfaces: int) -> str:
        """One line of what a tomogram was levelled with (``tomoalign reconstruct --level`` prints it)."""
        offset, xtilt = (f", {v:+.2f} of it from {name}" if v else "" for v, name in
                         zip(self.given, ("--offset", "--x-axis-tilt"), strict=True))
        size = f"thickness {self.thickness_px} px and Z shift {self.z_shift_px:+.1f} px"
        held = (f"{size} as given (the markers lie in one layer)" if all(self.size_given) else
                f"{size} not taken from the markers, which lie in one layer (give --thickness and --shift to hold the"
                " specimen)") if self.one_layer else (
            f"thickness {self.thickness_px} px" + (f" (--thickness; the markers' {self.from_markers[0]:.0f})"
                                                   if self.size_given[0] else "")
            + f", Z shift {self.z_shift_px:+.1f} px" + (f" (--shift; the markers' {self.from_markers[1]:+.1f})"
                                                        if self.size_given[1] else "")
            + " (unbinned; IMOD's SHIFT z, as --shift takes it)")
        needed = "the 'Average X axis tilt needed' above" if n_surfaces > 1 else "from the plane's slope in Y"
        few = "" if self.one_layer or self.fewest_on_a_face is None or self.fewest_on_a_face > FEW_ON_A_FACE else (
            f"; note: one face holds only {self.fewest_on_a_face} markers, which fit a plane whatever their errors: the"
            " level can be degrees off, check it in the tomogram")
        if self.scattered is not None:
            few += (f"; note: the markers lie {self.scattered[0]:.1f} and {self.scattered[1]:.1f} px from their faces'"
                    f" planes on average, {self.scattered[2]:.0f} px apart: they fill the section rather than lie on its"
                    " faces, so this level may mean little; check it in the tomogram, or leave --level out")
        surfaces = "markers in one layer: by their plane" if self.one_layer else (
            f"{n_surfaces} surface{'s' if n_surfaces > 1 else ''}")
        return (f"Levelled from the surface analysis ({surfaces}): angle"
                f" offset {self.tilt_change_deg:+.2f} deg (IMOD's OFFSET{offset}), X-axis tilt"
                f" {self.x_axis_tilt_deg:+.2f} deg (IMOD's XAXISTILT, as --x-axis-tilt takes it: {needed}{xtilt}), {held}"
                f"{few}")


ONE_LAYER_PX = 16.0  # two bead "surfaces" closer than this (unbinned px) are one layer: gold on one face only
FEW_ON_A_FACE = 3  # markers on a face that fit its plane exactly: the level is said to be uncertain
SCATTER_FRACTION = 0.1  # faces whose markers lie farther from their planes, on average, than this part of the faces'
# distance are no faces (BBa: 0.40 and 0.95 px on 80 px, 0.012; beads spread through the demo's section: 0.16, 0.29)


def in_one_layer(analysis: SurfaceAnalysis) -> bool:
    """Whether the markers lie in one layer (gold on one face): two surfaces closer than `ONE_LAYER_PX`, or one plane
    they lie within a quarter of that of (patches fill the section's depth; one bead layer does not)."""
    if analysis.thickness_px is not None:
        return abs(analysis.thickness_px) < ONE_LAYER_PX
    return analysis.all_points.mean_residual_px < ONE_LAYER_PX / 4


def level_parameters(analysis: SurfaceAnalysis, xyz_px: NDArray[np.float64], *, margin_px: float = 16.0) -> Levelling:
    """The levelling of `SurfaceAnalysis` for `wbp`, and the thickness and Z shift that hold every marker.

    ``xyz_px`` are the markers (x, y from the aligned image's centre, z from the tilt axis, as the
    volume's z). After the tilt change ``d`` and X-axis tilt ``f`` a marker at ``(x, y, z)`` is
    reconstructed at height ``z' = x sin d + (z cos f - y sin f) cos d`` (to first order in the small
    x-shift); the volume is made to hold the range of ``z'`` plus 10% and ``margin_px`` each side. Markers in
    one layer (two surfaces closer than `ONE_LAYER_PX`, or one plane they lie within a quarter of that of:
    gold on one face of the section) say nothing of the specimen's thickness, so ``one_layer`` tells the caller
    not to take that thickness.
    """
    xyz = np.asarray(xyz_px, dtype=float)
    xyz = xyz[np.all(np.isfinite(xyz), axis=1)]
    d = np.radians(analysis.tilt_angle_change_deg)
    f = np.radians(wbp_x_tilts(0.0, analysis.x_axis_tilt_needed_deg))
    zl = xyz[:, 2] * np.cos(f) - xyz[:, 1] * np.sin(f)
    zp = xyz[:, 0] * np.sin(d) + zl * np.cos(d)
    lo, hi = float(zp.min()), float(zp.max())
    half = 1.1 * (hi - lo) / 2.0 + margin_px
    one_layer = in_one_layer(analysis)
    fewest = None if analysis.bottom is None or analysis.top is None else min(analysis.bottom.n_points,
                                                                                analysis.top.n_points)
    faces = (analysis.bottom, analysis.top)
    scattered = None if one_layer or None in faces or analysis.thickness_px is None else (
        faces[0].mean_residual_px, faces[1].mean_residual_px, abs(analysis.thickness_px))  # type: ignore[union-attr]
    if scattered is not None and max(scattered[:2]) <= SCATTER_FRACTION * scattered[2]:
        scattered = None
    return Levelling(float(np.degrees(d)), analysis.x_axis_tilt_needed_deg, 2 * int(np.ceil(half)), (lo + hi) / 2.0,
                     one_layer, fewest_on_a_face=fewest, scattered=scattered)
