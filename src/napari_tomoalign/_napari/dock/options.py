"""Step 4, the choices of an Align: the model's variables, the tilt axis, robust fitting, and what to
make besides the fit. Every default comes from `AlignmentOptions`, the core's one place for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, LineEdit, SpinBox

from ...alignment.options import AlignmentOptions
from .logic import AXIS_CHOICES, VARIABLE_CHOICES, build_options
from .ui import form, text_label

LABEL_OF_MODE = {mode: label for label, mode in VARIABLE_CHOICES.items()}


class OptionsSection:
    """The options of the next Align."""

    def __init__(self) -> None:
        d = AlignmentOptions()
        axis = "estimate" if d.tilt_axis_deg is None else ("estimate near the angle" if d.estimate_tilt_axis
                                                            else "use the angle as given")
        self.axis_mode = ComboBox(label="tilt axis", choices=AXIS_CHOICES, value=axis)
        self._axes_seen: set[str] = set()  # the stacks whose .mdoc axis was looked for (`axis_from_stack`)
        self._mdoc_axis: float | None = None  # the angle the dock itself set from a .mdoc (not the user's)
        self.axis_angle = FloatSpinBox(label="axis angle (deg)", min=-180.0, max=180.0, step=0.5,
                                       value=d.tilt_axis_deg or 0.0,
                                       tooltip="from the image y axis, counter-clockwise (IMOD's convention)")
        self.rotation = ComboBox(label="rotation", choices=list(VARIABLE_CHOICES), value=LABEL_OF_MODE[d.rotation.mode])
        self.tilt = ComboBox(label="tilt", choices=list(VARIABLE_CHOICES), value=LABEL_OF_MODE[d.tilt.mode])
        self.magnification = ComboBox(label="magnification", choices=list(VARIABLE_CHOICES),
                                      value=LABEL_OF_MODE[d.magnification.mode])
        self.group_size = SpinBox(label="group size", min=1, max=50, value=d.rotation.group_size)
        self.initial_stage = CheckBox(text="initial stage", value=d.initial_stage)
        self.every_view_only = CheckBox(text="only markers seen in every view", value=False)
        self.robust = CheckBox(text="robust fitting (Tukey bisquare)", value=d.robust)
        self.robust_scale = FloatSpinBox(label="robust scale", min=0.5, max=5.0, step=0.1, value=d.robust_scale,
                                         tooltip="multiplies Tukey's 4.685; larger flags fewer points")
        self.leave_out = CheckBox(text="leave-out error", value=False)
        self.warm_start = CheckBox(text="warm start from the last solution", value=True)
        self.result_name = LineEdit(label="name", value="",
                                    tooltip="alignments are kept by name for Compare; empty picks one")
        self.thickness = SpinBox(label="preview thickness", min=0, max=4096, value=0,
                                 tooltip="tomogram thickness in unbinned pixels; 0 picks one from the markers' Z")
        self.more = CheckBox(text="more variables (IMOD align.com)", value=False,
                             tooltip="X-stretch, skew, compression, X-tilt, beam tilt and grouping by tilt, with"
                                     " the tiltalign options of an IMOD align.com")
        self.imod_com = FileEdit(label="", mode=FileDialogMode.EXISTING_FILE,
                                 filter="IMOD command file (*.com);;All files (*)",
                                 value=None, tooltip="etomo's align.com (or alignb.com): its tiltalign options replace"
                                                   " the model choices above")
        self.more_note = text_label("IMOD's full model: the align.com's tiltalign options (X-stretch, skew, X-tilt,"
                                    " groups by tilt, its RotationAngle) replace the choices above; the report"
                                    " lists the solved X-stretch and skew per group.")
        self.widget = form(self.axis_mode, self.axis_angle, self.rotation, self.tilt, self.magnification,
                           self.group_size, self.initial_stage, self.robust, self.robust_scale, self.every_view_only,
                           self.leave_out, self.warm_start, self.result_name, self.thickness, self.more,
                           self.more_note, self.imod_com)
        self.more.changed.connect(self._show_more)
        self._show_more(False)

    def _show_more(self, on: bool) -> None:
        """The full model's file in view only when asked for; the simple model stays in front."""
        self.imod_com.native.setVisible(bool(on))
        self.more_note.native.setVisible(bool(on))
        for w in (self.axis_mode, self.axis_angle, self.rotation, self.tilt, self.magnification, self.group_size,
                  self.initial_stage, self.robust, self.robust_scale, self.leave_out, self.warm_start):
            w.enabled = not on

    def imod_com_path(self) -> str | None:
        """The align.com of the next Align, or None for the default model; a path that is not a file is an
        error that says so (raised before any work)."""
        if not self.more.value:
            return None
        text = str(self.imod_com.value or "").strip()
        if text in ("", "."):
            raise ValueError("tick off 'more variables', or choose the align.com whose options to use")
        path = Path(text).expanduser()
        if not path.is_file():
            raise ValueError(f"{path}: no such align.com; choose etomo's align.com (or alignb.com)")
        return str(path)

    def options(self) -> AlignmentOptions:
        return build_options(
            rotation=self.rotation.value, tilt=self.tilt.value, magnification=self.magnification.value,
            group_size=int(self.group_size.value), axis_mode=self.axis_mode.value,
            axis_angle_deg=float(self.axis_angle.value), initial_stage=bool(self.initial_stage.value),
            robust=bool(self.robust.value), robust_scale=float(self.robust_scale.value),
        )

    def axis_from_stack(self, image: Any) -> str | None:
        """SerialEM's "Tilt axis angle" in the ``.mdoc`` beside ``image``'s file, as the axis to estimate near, once
        per stack and only while the axis is left to the estimate: the markers cannot tell the axis from the axis
        + 180 (the tomogram from its mirror image; the command line does the same). The note to show, or None."""
        path = getattr(getattr(image, "source", None), "path", None)
        ours = self.axis_mode.value == AXIS_CHOICES[1] and self._mdoc_axis is not None and float(
            self.axis_angle.value) == self._mdoc_axis  # set from the last stack's .mdoc, untouched by the user
        if not path or path in self._axes_seen or (self.axis_mode.value != AXIS_CHOICES[0] and not ours):
            return None
        self._axes_seen.add(path)
        from ...io.tilt_sources import mdoc_tilt_axis

        shape = getattr(getattr(image, "data", None), "shape", None)  # another series' .mdoc: not used
        found = mdoc_tilt_axis(path, int(shape[0]) if shape else None)
        if found is None:  # the last stack's .mdoc angle is not this stack's (new user's finding V, session 12)
            if ours:
                self.axis_mode.value, self._mdoc_axis = AXIS_CHOICES[0], None
                return f"tilt axis: estimated (no .mdoc beside {Path(path).name})"
            return None
        self.axis_angle.value, self.axis_mode.value = found[0], AXIS_CHOICES[1]
        self._mdoc_axis = float(self.axis_angle.value)
        return f"tilt axis: estimated near {found[0]:g} deg, SerialEM's angle in {Path(found[1]).name}"

    def axis_warnings(self, estimated_deg: float) -> list[str]:
        """The command line's warnings on the tomogram's hand after an Align (new user's findings T and P, session
        12): an axis near +-90 deg that nobody gave, or one typed so far from the estimate (x and y swapped?) that
        it could not pick the branch."""
        from ...tracking.jobs import branch_warning, tie_warning

        give = "set 'tilt axis' to estimate near the microscope's angle"
        if self.axis_mode.value == AXIS_CHOICES[0]:
            found = branch_warning(estimated_deg, give)
        else:
            given = float(self.axis_angle.value)
            found = tie_warning(given, given, estimated_deg)
            found = found.replace("give --tilt-axis as the microscope (SerialEM) gives it", give) if found else None
        return [found.removeprefix("warning: ")] if found else []

    def name(self, com: str | None = None) -> str:
        """The result's name: the one typed, else what was aligned and, for IMOD's full model, its align.com (so
        that a full-model result sits beside the default one and *Compare* can show the two)."""
        every = bool(self.every_view_only.value)
        base = "markers in every view" if every else "all markers"
        return self.result_name.value.strip() or (f"{base}, full model ({Path(com).name})" if com else base)

    def settings(self) -> dict[str, Any]:
        """The run's other choices, as `workflows.run_alignment` takes them."""
        com = self.imod_com_path()
        return {"name": self.name(com), "only_markers_in_every_view": bool(self.every_view_only.value),
                "tomogram_thickness_px": int(self.thickness.value) or None,
                "leave_out": bool(self.leave_out.value) and com is None, "imod_com": com}
