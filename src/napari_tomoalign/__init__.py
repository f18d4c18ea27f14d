"""napari-tomoalign: fiducial alignment of electron tomography tilt series.

The core (``alignment``, ``reconstruction``, ``simulation``, ``io``, ``workflows``, ``report``, ``cli``)
imports no GUI toolkit; the napari plugin lives in the ``_napari`` package.
"""

try:
    from ._version import __version__  # written by setuptools-scm when the package is installed
except ImportError:  # a source tree that was never installed
    __version__ = "0+unknown"
from .alignment._lm import Cancelled
from .alignment.errors import AlignmentError
from .alignment.options import AlignmentOptions, VariableOption
from .alignment.result import Alignment
from .alignment.solver import align_markers
from .alignment.transforms import imod_transforms
from .io import read_markers, read_tilt_angles
from .io.alignment import write_alignment
from .simulation.markers import simulate_markers

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
