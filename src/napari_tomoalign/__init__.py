"""napari-tomoalign: fiducial alignment of electron tomography tilt series.

The core (solver, model, I/O, simulation) imports no GUI toolkit; the napari plugin lives in the
modules whose names start with an underscore.
"""

from ._version import __version__
from .io import read_markers, read_tilt_angles
from .io.alignment import write_alignment
from .lm import Cancelled
from .options import AlignmentOptions
from .result import Alignment
from .simulate import simulate_markers
from .solver import AlignmentError, align_markers
from .transforms import imod_transforms
from .variables import VariableOption

__all__ = [
    "Alignment",
    "AlignmentError",
    "AlignmentOptions",
    "Cancelled",
    "VariableOption",
    "__version__",
    "align_markers",
    "imod_transforms",
    "read_markers",
    "read_tilt_angles",
    "simulate_markers",
    "write_alignment",
]
