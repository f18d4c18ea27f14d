"""The jobs that the command line and the dock share."""

from napari_tomoalign.workflows import warm_up


def test_warm_up_solves_its_tiny_problem():
    # The dock calls this in the background when it opens, so that the first Align does not load the
    # compiled kernels; a failure there would be silent, so check that it runs through.
    warm_up()


def test_warm_up_loads_the_compiled_kernels_and_small_solves_stay_in_numpy():
    import sys

    from napari_tomoalign.alignment import _backend

    warm_up()
    assert "napari_tomoalign.alignment._kernels" in sys.modules  # loaded, though its problem is tiny
    assert not _backend.uses_compiled(1_000)  # afterwards small problems still take numpy's loops
    assert _backend.uses_compiled(_backend.NUMPY_MAX_OBSERVATIONS_WARM + 1)  # and mid-size ones the compiled
