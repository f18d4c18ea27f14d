"""napari-tomoalign: fiducial alignment of electron tomography tilt series.

The core (``alignment``, ``reconstruction``, ``simulation``, ``io``, ``workflows``, ``report``, ``cli``)
imports no GUI toolkit; the napari plugin lives in the ``_napari`` package.

The public names below are loaded when first used (PEP 562), so that ``import napari_tomoalign`` and
the command line start without loading the solver, the readers or what they import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._source_version import in_checkout, source_version

if in_checkout():  # a git checkout's src/ (an editable install, PYTHONPATH): the commit checked out now, not the
    __version__ = source_version()  # one setuptools-scm wrote at install time
else:
    try:
        from ._version import __version__  # written by setuptools-scm when the package is installed
    except ImportError:  # a source tree that was never installed and has no git
        __version__ = source_version()

from ._numba_cache import use_writable_cache

use_writable_cache(__path__[0])  # before any kernel module imports numba: a read-only install must not crash

if TYPE_CHECKING:
    from .alignment.imod_options import read_imod_settings
    from .alignment.local import LocalAlignments
    from .alignment.options import AlignmentOptions, ModelSettings, VariableOption
    from .alignment.result import Alignment
    from .alignment.solver import align_markers, align_markers_imod
    from .errors import AlignmentError, Cancelled, UsageError
    from .file_jobs import align_to_folder, aligned_stack_to_file, reconstruct_to_file
    from .io import read_markers, read_tilt_angles
    from .io.alignment import write_alignment
    from .jobs.align import AlignJob, align_job, run_align_job
    from .jobs.api import imod_transforms, save_alignment, solve_local_alignments
    from .jobs.run import RunJob, run_job, run_to_folder
    from .jobs.solver_options import SolverSettings, solver_settings
    from .simulation.markers import simulate_markers
    from .tracking import TrackingResult, track_beads
    from .tracking.jobs import TrackJob, track_to_file

# Each public name and the module it lives in. The full model with an align.com (`align_markers_imod`),
# local alignments (`solve_local_alignments`), tracking (`track_beads`, `track_to_file`) and the jobs of the
# command line (`align_to_folder`, `run_to_folder`, ...) are all here; `imod_transforms` and `save_alignment`
# take the axis Z shift from the align.com an alignment was solved with unless one is given.
_WHERE = {
    "Alignment": ".alignment.result",
    "AlignmentError": ".errors",
    "AlignmentOptions": ".alignment.options",
    "AlignJob": ".jobs.align",
    "Cancelled": ".errors",
    "LocalAlignments": ".alignment.local",
    "ModelSettings": ".alignment.options",
    "RunJob": ".jobs.run",
    "SolverSettings": ".jobs.solver_options",
    "TrackJob": ".tracking.jobs",
    "TrackingResult": ".tracking",
    "UsageError": ".errors",
    "VariableOption": ".alignment.options",
    "align_job": ".jobs.align",
    "align_markers": ".alignment.solver",
    "align_markers_imod": ".alignment.solver",
    "align_to_folder": ".file_jobs",
    "aligned_stack_to_file": ".file_jobs",
    "imod_transforms": ".jobs.api",
    "read_imod_settings": ".alignment.imod_options",
    "read_markers": ".io",
    "read_tilt_angles": ".io",
    "reconstruct_to_file": ".file_jobs",
    "run_align_job": ".jobs.align",
    "run_job": ".jobs.run",
    "run_to_folder": ".jobs.run",
    "save_alignment": ".jobs.api",
    "simulate_markers": ".simulation.markers",
    "solve_local_alignments": ".jobs.api",
    "solver_settings": ".jobs.solver_options",
    "track_beads": ".tracking",
    "track_to_file": ".tracking.jobs",
    "write_alignment": ".io.alignment",
}

__all__ = [
    "AlignJob",
    "Alignment",
    "AlignmentError",
    "AlignmentOptions",
    "Cancelled",
    "LocalAlignments",
    "ModelSettings",
    "RunJob",
    "SolverSettings",
    "TrackJob",
    "TrackingResult",
    "UsageError",
    "VariableOption",
    "__version__",
    "align_job",
    "align_markers",
    "align_markers_imod",
    "align_to_folder",
    "aligned_stack_to_file",
    "imod_transforms",
    "read_imod_settings",
    "read_markers",
    "read_tilt_angles",
    "reconstruct_to_file",
    "run_align_job",
    "run_job",
    "run_to_folder",
    "save_alignment",
    "simulate_markers",
    "solve_local_alignments",
    "solver_settings",
    "track_beads",
    "track_to_file",
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
