"""The job layer: typed jobs that every front end (the command line, the Python API, ``batch``, ``run`` and
the dock) builds and runs through the same functions, each derived fact resolved once (`jobs.facts`).

- `AlignJob` (`jobs.align`): marker observations, tilt angles, image size, solver settings (or an IMOD
  ``align.com``), pixel size, ``.prexg``, local alignments; `solve` and `write_outputs`.
- `PreviewJob` (`jobs.preview`): an `AlignJob` and the images: the dock's Align (aligned stack and a
  binned preview tomogram in memory).
- `AlignedStackJob` and `ReconstructJob` (`jobs.images`): an aligned stack and a tomogram from a raw stack
  and a saved alignment folder (``tomoalign aligned-stack`` and ``reconstruct``).
- `RunJob` (`jobs.run`): a raw stack to a tomogram (``tomoalign run`` and ``batch``'s run path): one
  tracking, whose last robust fit is the alignment, one read of the stack, one warp.
- `jobs.solver_options`: the solver's options declared once, for the command line, ``batch`` and the dock.
- `jobs.threads`: one cap on a job's threads.

Names load on first use, so that ``tomoalign align`` starts without the image work.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "AlignJob": "align", "align_job": "align", "solve": "align", "write_outputs": "align", "FolderResult": "align",
    "run_align_job": "align", "PreviewJob": "preview", "run_preview": "preview", "PipelineResult": "preview",
    "save_result": "preview", "RunJob": "run", "RunResult": "run", "run_job": "run", "run_to_folder": "run",
    "SolverSettings": "solver_options", "solver_settings": "solver_options", "AlignedStackJob": "images",
    "ReconstructJob": "images", "ImageResult": "images", "make_aligned_stack": "images", "make_tomogram": "images",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value
