"""The jobs that the command line and the dock share."""

from napari_tomoalign.alignment.options import AlignmentOptions
from napari_tomoalign.workflows import warm_up


def test_warm_up_solves_its_tiny_problem():
    # The dock calls this in the background when it opens, so that the first Align does not load the
    # compiled kernels; a failure there would be silent, so check that it runs through.
    warm_up()


def test_warm_up_loads_the_compiled_kernels_and_small_solves_stay_in_numpy():
    import sys

    from napari_tomoalign import compute as _backend

    warm_up()
    assert "napari_tomoalign.alignment._kernels" in sys.modules  # loaded, though its problem is tiny
    assert not _backend.uses_compiled(1_000)  # afterwards small problems still take numpy's loops
    assert _backend.uses_compiled(_backend.NUMPY_MAX_OBSERVATIONS_WARM + 1)  # and mid-size ones the compiled


def test_run_alignment_with_an_imod_command_file(imod_data):
    """The dock's job with IMOD's own options: the full model of aligna.com, as the command line solves it."""
    from napari_tomoalign.io.markers import read_markers
    from napari_tomoalign.io.tilts import read_tilt_angles
    from napari_tomoalign.workflows import run_alignment

    m = read_markers(imod_data / "BBa.fid")
    tilts = read_tilt_angles(imod_data / "BBa.rawtlt")
    seen = []
    res = run_alignment(None, m.view, m.marker, m.xy, tilts, m.image_size, AlignmentOptions(), pixel_size_nm=2.02,
                        imod_com=imod_data / "aligna.com", progress=lambda *a: seen.append(a[0]))
    al = res.alignment
    assert al.full_params is not None and al.rms_residual_px <= 0.3606  # IMOD: 0.360595
    assert al.pixel_size_nm == 2.02 and seen
