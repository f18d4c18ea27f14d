"""napari-tomoalign: fiducial alignment of electron tomography tilt series.

The core (``alignment``, ``reconstruction``, ``simulation``, ``io``, ``workflows``, ``report``, ``cli``)
imports no GUI toolkit; the napari plugin lives in the ``_napari`` package.

The public names below are loaded when first used (PEP 562), so that ``import napari_tomoalign`` and
the command line start without loading the solver, the readers or what they import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

try:
    from ._version import __version__  # written by setuptools-scm when the package is installed
except ImportError:  # a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from .alignment.options import AlignmentOptions, VariableOption
    from .alignment.result import Alignment
    from .alignment.solver import align_markers
    from .alignment.transforms import imod_transforms
    from .errors import AlignmentError, Cancelled
    from .io import read_markers, read_tilt_angles
    from .io.alignment import write_alignment
    from .simulation.markers import simulate_markers

_WHERE = {
    "Alignment": ".alignment.result",
    "AlignmentError": ".errors",
    "AlignmentOptions": ".alignment.options",
    "Cancelled": ".errors",
    "VariableOption": ".alignment.options",
    "align_markers": ".alignment.solver",
    "imod_transforms": ".alignment.transforms",
    "read_markers": ".io",
    "read_tilt_angles": ".io",
    "simulate_markers": ".simulation.markers",
    "write_alignment": ".io.alignment",
}

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
