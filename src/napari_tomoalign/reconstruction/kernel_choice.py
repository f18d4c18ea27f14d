"""Which back-projection kernel a WBP runs, and why: `KernelChoice`, the one record of that choice.

The choice is made where it always was, once per reconstruction: `local_errors.local_kernel` for local alignments
(the one-row kernel in slabs of sections, the block kernel or the exact voxel kernel), `full_as_local.full_model_kernel`
for IMOD's full model (the local one-row kernel or `bp_full`'s exact one: `full_as_local.full_model_choice`) and the
plain geometry. The kernel takes its arguments from the record (``shear``, ``slab_per_view``), and the command line, the
jobs and the dock say it from the same record (`KernelChoice.line`). The plain kernel says nothing: nothing was chosen
(it is exact, as IMOD's ``tilt`` is without a local file or an X-axis tilt), and the default output stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

KERNELS = ("plain", "one-row", "block", "voxel", "exact")  # `bp_kernels`, `local_rows`, `local_blocks`, the voxel
# kernel of `local_blocks`, `bp_full`


@dataclass(frozen=True)
class KernelChoice:
    """The kernel a WBP takes (one of `KERNELS`) for its ``model`` (``"global"``, ``"local alignments"`` or
    ``"full model"``) and the figure that decided it: ``error_px`` (binned pixels) of ``measure`` against
    ``limit_px``, within it for the kernel taken (one-row), beyond it for the faster one refused (block, voxel,
    exact). ``slabs`` the thinnest and thickest slab (sections) of the one-row kernel; ``sheared`` whether the views
    are sheared first (`local_errors.row_shears`); ``terms`` what the full model applies (X-axis tilt, Z factors).
    ``shear`` and ``slab_per_view`` are the kernel's own arguments (`local_rows.backproject_local_views`)."""

    kernel: str
    model: str = "global"
    slabs: tuple[int, int] = (0, 0)
    sheared: bool = False
    error_px: float = 0.0
    limit_px: float = 0.0
    measure: str = ""
    terms: str = ""
    shear: NDArray[np.float64] | None = field(default=None, repr=False, compare=False)
    slab_per_view: NDArray[np.int64] | None = field(default=None, repr=False, compare=False)

    @property
    def geometry(self) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """``(shear, slabs)``: the local kernel's arguments (`local_rows.backproject_local_views`' ``geometry``)."""
        if self.shear is None or self.slab_per_view is None:
            raise ValueError(f"the {self.kernel} kernel takes no local geometry")
        return self.shear, self.slab_per_view

    @property
    def name(self) -> str:
        """The kernel in a word or two, with its model unless global (a column of `batch`'s summary): ``plain``,
        ``one-row (local alignments)``, ``exact (full model)``."""
        return self.kernel if self.model == "global" else f"{self.kernel} ({self.model})"

    def line(self) -> str:
        """One line saying the kernel and why, as the command line and the dock print it; empty for the plain one."""
        if self.kernel == "plain":
            return ""
        model = f"{self.model} ({self.terms})" if self.terms else self.model
        on = ", sheared views" if self.sheared else ""
        lo, hi = self.slabs
        slabs = f"slabs of {lo}" + (f"-{hi}" if hi != lo else "") + " sections"
        figure = f"{self.measure} {self.error_px:.2g} px"
        if self.kernel == "one-row":
            return f"{model}: one-row kernel{on}, {slabs} ({figure}, within {self.limit_px:g})"
        if self.kernel == "block":
            return f"{model}: block kernel{on}, no slab within its limit ({figure} > {self.limit_px:g})"
        if self.kernel == "voxel":
            return f"{model}: exact voxel kernel, the patches differ too much for blocks ({figure} > {self.limit_px:g})"
        return f"{model}: exact kernel, the one-row kernel would be off ({figure} > {self.limit_px:g})"


PLAIN = KernelChoice("plain")


def slab_range(slabs: NDArray[np.int64]) -> tuple[int, int]:
    """The thinnest and thickest slab of a kernel's ``slabs`` per view."""
    return int(slabs.min()), int(slabs.max())


def full_model_terms(x_tilt_deg: float | NDArray[np.float64] | None, z_factors: NDArray[np.float64] | None) -> str:
    """What IMOD's full model applies, in words, for `KernelChoice.terms`: its X-axis tilt (one value, or the range of
    the views') and whether it has Z factors. The tilt applied is the ``.xtilt`` minus ``XAXISTILT`` (`positioning.
    wbp_x_tilts`), so it is said as that: ``--x-axis-tilt 2.07`` alone reads "-2.07 deg (.xtilt minus XAXISTILT)", not a
    bare "-2.07" that looks like the option's sign turned."""
    f = np.atleast_1d(np.asarray(0.0 if x_tilt_deg is None else x_tilt_deg, dtype=float))
    words = []
    if np.any(f != 0):
        words.append((f"X-axis tilt {f[0]:.3g} deg" if np.ptp(f) < 0.005 else
                      f"X-axis tilt {f.min():.3g} to {f.max():.3g} deg") + " (.xtilt minus XAXISTILT)")
    if z_factors is not None and np.any(np.asarray(z_factors) != 0):
        words.append("Z factors")
    return ", ".join(words)
