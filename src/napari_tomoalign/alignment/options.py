"""The user's choices for one alignment."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._parameters import VariableOption


@dataclass(frozen=True)
class AlignmentOptions:
    """What the staged solver solves for, and how.

    Parameters
    ----------
    rotation, tilt, magnification
        How each per-view variable is solved (see `VariableOption`). The default, one value per
        view for all three, is the reference paper's model.
    tilt_axis_deg
        The tilt-axis angle from the image y axis, counter-clockwise, in degrees. With
        ``estimate_tilt_axis`` it only picks the branch (the axis or the axis + 180); without,
        it is the starting rotation of every view.
    estimate_tilt_axis
        Estimate the axis from the marker tracks before solving. When False, ``tilt_axis_deg``
        is required.
    reference_view
        The view whose tilt angle and magnification are held fixed (the gauge). Default: the
        view with the smallest absolute nominal tilt.
    initial_stage
        Run the initial stage (tilts nominal, magnifications 1, one rotation) before the main
        stage.
    max_iterations
        Iteration limit of each Levenberg–Marquardt stage.
    robust
        After the least-squares stages, refit with Tukey-bisquare weights (iteratively reweighted),
        so that mis-clicks and mistracked beads stop pulling the solution (see `robust`).
    robust_scale
        Multiplies Tukey's tuning constant 4.685: larger down-weights fewer points. The default,
        1.8, is for residual *lengths* normalised by their median and MADN: that one-sided statistic
        has a longer tail than the 1-D normal residuals 4.685 was designed for. With a factor of 1
        about 3% of good points get flagged, with 1.5 up to 1%, with 1.8 about 0.3%, while gross
        errors are still all flagged (measured on simulated data, ``benchmarks/bench_robust.py``).
    robust_tracks
        Weight whole marker tracks by their RMS residual instead of single points.
    robust_group_views
        Views per normalisation group (neighbours in tilt); groups also hold at least 40 residuals.
    """

    rotation: VariableOption = field(default_factory=VariableOption)
    tilt: VariableOption = field(default_factory=VariableOption)
    magnification: VariableOption = field(default_factory=VariableOption)
    tilt_axis_deg: float | None = None
    estimate_tilt_axis: bool = True
    reference_view: int | None = None
    initial_stage: bool = True
    max_iterations: int = 200
    robust: bool = False
    robust_scale: float = 1.8
    robust_tracks: bool = False
    robust_group_views: int = 1

    def __post_init__(self) -> None:
        for name in ("rotation", "tilt", "magnification"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, VariableOption.parse(value))
            elif not isinstance(value, VariableOption):
                raise TypeError(f"{name} must be a VariableOption or a string such as 'view', got {value!r}")
        if not self.estimate_tilt_axis and self.tilt_axis_deg is None:
            raise ValueError("estimate_tilt_axis=False needs a tilt_axis_deg to start from")
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {self.max_iterations}")
        if not (self.robust_scale > 0 and np.isfinite(self.robust_scale)):
            raise ValueError(f"robust_scale must be a positive number, got {self.robust_scale}")
        if self.robust_group_views < 1:
            raise ValueError(f"robust_group_views must be at least 1, got {self.robust_group_views}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("rotation", "tilt", "magnification"):
            d[name] = str(getattr(self, name))
        return d
