"""Top-level packages of the GUI stack that the core must never import."""

GUI_MODULES = ("napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "superqt")
