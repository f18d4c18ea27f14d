"""The Align dock, one small section per step (inputs, markers, align, results and triage, compare,
save), assembled by `napari_tomoalign._napari.widget.AlignWidget`.

`logic` holds the sections' pure functions and imports no GUI toolkit; the other modules are Qt.
"""
