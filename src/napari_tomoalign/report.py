"""The report's plots, drawn off-screen with matplotlib's Agg renderer (safe in a worker thread).

Per-view RMS residual against nominal tilt, and the solved minus nominal tilt, for one alignment or
several overlaid. Returns an RGBA image, so a GUI only has to show a picture.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .alignment.result import Alignment


def report_plot(alignments: dict[str, Alignment], size_px: tuple[int, int] = (324, 306), dpi: int = 90) -> NDArray:
    """``(rows, cols, 4)`` uint8 image of the per-view plots of the named alignments."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for name, al in alignments.items():
        rms, _ = al.per_view_residual_px()
        ax1.plot(al.nominal_tilt_angles_deg, rms, ".-", ms=3, lw=0.8, label=name)
        ax2.plot(al.nominal_tilt_angles_deg, al.tilt_angles_deg - al.nominal_tilt_angles_deg, ".-", ms=3, lw=0.8)
    ax1.set_ylabel("view RMS (px)", fontsize=8)
    ax2.set_ylabel("solved - nominal (deg)", fontsize=8)
    ax2.set_xlabel("nominal tilt (deg)", fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if len(alignments) > 1:
        ax1.legend(fontsize=7)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()
