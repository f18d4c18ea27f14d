"""The error and warning types of the alignment core (defined in `napari_tomoalign.errors`)."""

from ..errors import AlignmentError, AlignmentWarning

__all__ = ["AlignmentError", "AlignmentWarning"]
