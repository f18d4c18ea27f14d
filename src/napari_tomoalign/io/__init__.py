"""Readers and writers for marker files, tilt angles and IMOD alignment files (GUI-free)."""

from .errors import FileFormatError
from .markers import MarkerTable, read_markers, write_markers_csv
from .tilts import read_tilt_angles

__all__ = ["FileFormatError", "MarkerTable", "read_markers", "read_tilt_angles", "write_markers_csv"]
