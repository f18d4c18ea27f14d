"""The jobs that the command line and the dock share."""

from napari_tomoalign.workflows import warm_up


def test_warm_up_solves_its_tiny_problem():
    # The dock calls this in the background when it opens, so that the first Align does not load the
    # compiled kernels; a failure there would be silent, so check that it runs through.
    warm_up()
