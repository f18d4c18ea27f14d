"""The solver's options, declared once: the command line's arguments (``tomoalign align``, ``demo`` and
``batch``), ``batch``'s table columns and the dock's values are all built from `SOLVER_OPTIONS` and
converted by one function each way: `solver_settings` (values, as text or numbers, to `SolverSettings`)
and `option_values` (`AlignmentOptions` back to values).

A value that is missing or empty is not given: the next source (a batch's options under a table's cells,
the defaults of `AlignmentOptions` under both) holds. Views are numbered from 1 in every value, as IMOD and
the report number them (`conventions.view_number`, `conventions.view_index`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..alignment.options import AlignmentOptions, VariableOption
from ..conventions import view_index, view_number
from ..errors import UsageError

DEFAULTS = AlignmentOptions()


def _number(text: Any) -> float:
    return float(text)


def _whole(text: Any) -> int:
    x = float(text)
    if not math.isfinite(x) or x != int(x):
        raise ValueError("not a whole number")
    return int(x)


def yes_no(v: Any) -> bool:
    """A flag's value: a bool, or text such as yes/no, true/false, 1/0 (empty is no)."""
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "y", "on"):
        return True
    if s in ("0", "false", "no", "n", "off", ""):
        return False
    raise ValueError(f"{v!r} is not a yes/no value")


def view_numbers(text: Any) -> tuple[int, ...]:
    """View numbers from 1 of an IMOD list with ranges (``"1-3,7,60-61"``), sorted, each once
    (`conventions.view_indices`)."""
    from ..conventions import view_indices

    return tuple(k + 1 for k in view_indices(text))


def _variable(v: Any) -> VariableOption:
    return v if isinstance(v, VariableOption) else VariableOption.parse(str(v).strip())


@dataclass(frozen=True)
class SolverOption:
    """One option: its name (``batch``'s column; ``--name-with-dashes`` on the command line), its
    ``metavar`` (empty for a yes/no flag), its help, and how a value is read (``parse``)."""

    name: str
    metavar: str
    help: str
    parse: Callable[[Any], Any]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_flag(self) -> bool:
        return not self.metavar


def _mode_help(name: str) -> str:
    return f"{name}: fixed, one, view (default {getattr(DEFAULTS, name)}) or group:N"


SOLVER_OPTIONS: tuple[SolverOption, ...] = (
    SolverOption("tilt_axis", "DEG", "tilt-axis angle from the image y axis, counter-clockwise; picks the branch of"
                 " the estimate (for tracked series it also guides the tracking)", _number),
    SolverOption("no_axis_estimate", "", "start every view's rotation at --tilt-axis instead of estimating the axis",
                 yes_no),
    SolverOption("rotation", "MODE", _mode_help("rotation"), _variable),
    SolverOption("tilt", "MODE", _mode_help("tilt"), _variable),
    SolverOption("magnification", "MODE", _mode_help("magnification"), _variable),
    SolverOption("reference_view", "N", "view whose tilt and magnification are held, numbered from 1 as IMOD and the"
                 " report number them (default: minimum tilt)", _whole),
    SolverOption("no_initial_stage", "", "skip the initial stage", yes_no),
    SolverOption("max_iterations", "N", f"iteration limit per stage (default {DEFAULTS.max_iterations})", _whole),
    SolverOption("robust", "", "refit with Tukey-bisquare weights so that mis-clicks stop pulling the solution", yes_no),
    SolverOption("robust_scale", "K", f"scale of Tukey's constant 4.685 (default {DEFAULTS.robust_scale}; larger"
                 " flags fewer)", _number),
    SolverOption("robust_tracks", "", "weight whole marker tracks, not single points (implies --robust)", yes_no),
    SolverOption("exclude_views", "LIST", "views to leave out of the fit, numbered from 1 as IMOD's ExcludeList"
                 " (1-3,60); any model, with --imod-com added to the file's", view_numbers),
    SolverOption("axis_z_shift", "PX", "move the tilt axis in Z from the marker centroid, in pixels (IMOD's"
                 " AxisZShift; default 0, or the --imod-com file's)", _number),
)
OPTION_NAMES = tuple(o.name for o in SOLVER_OPTIONS)


@dataclass(frozen=True)
class SolverSettings:
    """What the solver options say: the `AlignmentOptions`, the axis Z shift (None: not given, so the
    align.com's or 0) and the names of the options given (``--imod-com`` takes no model option)."""

    options: AlignmentOptions
    axis_z_shift_px: float | None = None
    given: tuple[str, ...] = ()
    excluded_views: tuple[int, ...] = ()  # 0-based views left out of the fit (any model)

    @property
    def any_model_option(self) -> bool:
        """Whether an option of the model was given (the axis Z shift places the frame and excluded views
        leave data out: neither is one)."""
        return bool(set(self.given) - {"axis_z_shift", "exclude_views"})

    def check_views(self, n_views: int) -> None:
        """A `UsageError` when the reference view or an excluded view is not a view of an ``n_views``-view
        series, or when fewer than two views are left."""
        ref = self.options.reference_view
        if ref is not None:
            view_index(view_number(ref), n_views, what="--reference-view")
        for v in self.excluded_views:
            view_index(view_number(v), n_views, what="--exclude-views")
        if n_views - len(self.excluded_views) < 2:
            raise UsageError(f"--exclude-views leaves {n_views - len(self.excluded_views)} of {n_views} views;"
                             " at least two must stay in the fit")


def _given(v: Any) -> bool:
    return v is not None and v is not False and not (isinstance(v, str) and v.strip() == "")


def solver_settings(values: Mapping[str, Any], *, base: AlignmentOptions = DEFAULTS) -> SolverSettings:
    """`SolverSettings` from option values by name (text or numbers; missing or empty: ``base``'s)."""
    got: dict[str, Any] = {}
    for o in SOLVER_OPTIONS:
        v = values.get(o.name)
        if not _given(v):
            continue
        try:
            got[o.name] = o.parse(v)
        except (TypeError, ValueError) as exc:
            why = str(exc)  # Python's own wording is not the user's: say what is expected
            if o.parse is _variable and "unknown variable mode" in why:
                why = "give fixed, one, view or group:N (N views per group)"
            elif why.startswith(("could not convert", "invalid literal")):
                why = "not a number"
            raise UsageError(f"{o.flag} {v!r}: {why}") from None
    kw: dict[str, Any] = {k: got[k] for k in ("rotation", "tilt", "magnification", "max_iterations", "robust_scale")
                          if k in got}
    if "tilt_axis" in got:
        kw["tilt_axis_deg"] = got["tilt_axis"]
    if got.get("no_axis_estimate") is not None:
        kw["estimate_tilt_axis"] = not got["no_axis_estimate"]
    if got.get("no_initial_stage") is not None:
        kw["initial_stage"] = not got["no_initial_stage"]
    if "reference_view" in got:
        n = got["reference_view"]
        if n < 1:
            raise UsageError(f"--reference-view numbers views from 1, as IMOD does; {n} is not a view")
        kw["reference_view"] = n - 1
    if "robust" in got:
        kw["robust"] = got["robust"]
    if got.get("robust_tracks"):
        kw["robust_tracks"] = kw["robust"] = True
    options = replace(base, **kw)
    excluded = tuple(v - 1 for v in got.get("exclude_views", ()))
    return SolverSettings(options, got.get("axis_z_shift"), tuple(got), excluded)


def option_values(options: AlignmentOptions, axis_z_shift_px: float | None = None,
                  excluded_views: tuple[int, ...] = ()) -> dict[str, Any]:
    """The option values (by name, views numbered from 1) that `solver_settings` turns back into
    ``options``: the dock shows them, and ``alignment.json`` could record them."""
    return {
        "tilt_axis": options.tilt_axis_deg, "no_axis_estimate": not options.estimate_tilt_axis,
        "rotation": str(options.rotation), "tilt": str(options.tilt), "magnification": str(options.magnification),
        "reference_view": None if options.reference_view is None else view_number(options.reference_view),
        "no_initial_stage": not options.initial_stage, "max_iterations": options.max_iterations,
        "robust": options.robust, "robust_scale": options.robust_scale, "robust_tracks": options.robust_tracks,
        "exclude_views": ",".join(str(view_number(v)) for v in excluded_views) or None,
        "axis_z_shift": axis_z_shift_px,
    }


def add_solver_arguments(group: Any, *, dest_prefix: str = "", show_defaults: bool = True) -> None:
    """Add every solver option to an argparse parser or group; values stay text (None when not given), for
    `solver_settings` to read: dest ``dest_prefix + name``."""
    for o in SOLVER_OPTIONS:
        if o.is_flag:
            group.add_argument(o.flag, dest=dest_prefix + o.name, action="store_true", default=None, help=o.help)
        else:
            text = o.help if show_defaults else o.help.split(" (default")[0]
            group.add_argument(o.flag, dest=dest_prefix + o.name, default=None, metavar=o.metavar, help=text)


def settings_from_args(args: argparse.Namespace, *, dest_prefix: str = "") -> SolverSettings:
    """`solver_settings` of a parsed command line (arguments added by `add_solver_arguments`)."""
    return solver_settings({o.name: getattr(args, dest_prefix + o.name, None) for o in SOLVER_OPTIONS})


__all__ = ["OPTION_NAMES", "SOLVER_OPTIONS", "SolverOption", "SolverSettings", "add_solver_arguments",
           "option_values", "settings_from_args", "solver_settings", "view_numbers", "yes_no"]
