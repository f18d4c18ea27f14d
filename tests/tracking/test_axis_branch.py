"""The tilt axis' branch (axis or axis + 180: the tomogram or its mirror image, which markers cannot tell apart;
session 11's finding 21): SerialEM's "Tilt axis angle" in the .mdoc beside the stack picks it, and with no axis
from anywhere an estimate near +-90 deg (where microscopes give either, 84 or -96) is warned about."""

import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.tilt_sources import mdoc_tilt_axis

MDOC = """PixelSpacing = 8
ImageFile = {name}
ImageSize = 256 256

[T = SerialEM: Digitized on Krios G4   06-Dec-26  10:00:00    ]

[T =     Tilt axis angle = {axis}, binning = 1  spot = 8  camera = 0]

"""


@pytest.fixture(scope="module")
def turned(tmp_path_factory):
    """The cryo series (axis 84 deg) and the same series with every view turned half a turn (axis -96 deg)."""
    from support.beads import write_cryo_series

    d = tmp_path_factory.mktemp("axis")
    _, s = write_cryo_series(d, "plain")
    assert s.tilt_axis_deg == pytest.approx(84.0)
    write_cryo_series(d, "turned", images=s.images[:, ::-1, ::-1])
    return d


def _fid_z(folder):
    rows = np.loadtxt(next((folder / "alignment").glob("*fid.xyz")), usecols=(1, 2, 3))
    return np.sort(rows[:, 2])


def test_the_mdoc_axis_picks_the_branch_and_says_so(turned, capsys):
    d = turned
    (d / "turned.st.mdoc").write_text(MDOC.format(name="turned.st", axis="-96.0"))
    assert mdoc_tilt_axis(d / "turned.st") == (-96.0, str(d / "turned.st.mdoc"))
    assert main(["run", str(d / "turned.st"), "--bead-diameter-nm", "10", "--output", str(d / "t"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning" not in err
    assert main(["run", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "p"), "--tilt-axis", "84",
                 "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    np.testing.assert_allclose(_fid_z(d / "t"), _fid_z(d / "p"), atol=1.0)  # the same hand as the unturned series


def test_no_axis_from_anywhere_near_90_is_warned(turned, capsys):
    d = turned
    assert main(["run", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "w"), "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the markers cannot tell it from -96" in err[0] and "gives the mirror tomogram" in err[0]
    assert mdoc_tilt_axis(d / "plain.st") is None


def test_a_tilt_axis_given_against_the_mdoc_is_taken_and_warned(turned, capsys):
    """New user's finding D (session 12): --tilt-axis -96 typed for a series whose .mdoc says 84 gave the mirror
    tomogram without a word. It is taken (the user may know better) and warned about; 84 itself is not."""
    d = turned
    (d / "plain.st.mdoc").write_text(MDOC.format(name="plain.st", axis="84.0"))
    try:
        assert main(["track", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "m.csv"),
                     "--tilt-axis", "-96", "--quiet"]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--tilt-axis -96 is the other branch of the 84 deg in" in err[0], err
        assert main(["track", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "m.csv"),
                     "--tilt-axis", "86", "--quiet", "--force"]) == 0
        assert "warning" not in capsys.readouterr().err
    finally:
        (d / "plain.st.mdoc").unlink()


def test_a_mdoc_of_other_images_is_noted(turned, capsys):
    """New user's finding K (session 12): a .mdoc copied from another series (1024^2 at 4 A beside a 256^2 stack at
    8 A) gave its angles and axis without a word."""
    d = turned
    (d / "plain.st.mdoc").write_text(MDOC.format(name="plain.st", axis="84.0"))
    try:
        assert main(["track", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "k.csv")]) == 0
        assert "describes images of" not in capsys.readouterr().out  # the same images: nothing said
        (d / "plain.st.mdoc").write_text(MDOC.format(name="plain.st", axis="84.0").replace(
            "PixelSpacing = 8\n", "PixelSpacing = 4\n").replace("ImageSize = 256 256", "ImageSize = 1024 1024"))
        assert main(["track", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "k.csv"),
                     "--force"]) == 0
        out = capsys.readouterr().out
        assert "describes images of 1024 x 1024 at 4 A, the stack is 256 x 256 at 8 A" in out
    finally:
        (d / "plain.st.mdoc").unlink()


def test_an_axis_given_90_degrees_off_does_not_pick_the_hand(turned, capsys):
    """New user's finding P (session 12): --tilt-axis -6 for an 84 deg series (x and y swapped) picked the branch by
    a tie: the mirror tomogram, with a reassuring warning. The .mdoc's angle picks it; without one, a warning."""
    d = turned
    (d / "plain.st.mdoc").write_text(MDOC.format(name="plain.st", axis="84.0"))
    try:
        assert main(["run", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "m6"), "--tilt-axis",
                     "-6", "--quiet"]) == 0
        err = capsys.readouterr().err
        assert "--tilt-axis -6 is 90 deg from the 84 deg" in err and "the .mdoc's angle picks the branch" in err
        assert main(["run", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "p84"),
                     "--tilt-axis", "84", "--quiet"]) == 0
    finally:
        (d / "plain.st.mdoc").unlink()
    np.testing.assert_allclose(_fid_z(d / "m6"), _fid_z(d / "p84"), atol=1.0)  # the microscope's hand
    assert main(["track", str(d / "plain.st"), "--bead-diameter-nm", "10", "--output", str(d / "t174.csv"),
                 "--tilt-axis", "174", "--quiet"]) == 0
    assert "so far off, the given angle cannot tell the tomogram from its mirror" in capsys.readouterr().err


def test_the_branch_warning_is_one_text_for_the_command_line_and_the_dock():
    """New user's finding T (session 12): the dock said nothing of the mirror for an axis near +-90 deg that nobody
    gave; it shows the command line's warning, in its own words for the remedy."""
    from napari_tomoalign.tracking.jobs import branch_warning

    assert branch_warning(-12.5) is None and branch_warning(55.0) is None
    cli, dock = branch_warning(84.0), branch_warning(84.0, "set 'tilt axis' to estimate near the microscope's angle")
    assert "cannot tell it from -96.0 deg" in cli and cli.endswith("give --tilt-axis as the microscope (SerialEM) gives it")
    assert dock.split(": set")[0] == cli.split(": give")[0]


def test_a_mdoc_with_other_sections_than_the_views_is_not_used_for_the_axis(turned, capsys):
    """New user's finding (session 13): an .mdoc of another series (61 sections, 4096^2) beside a 41-view stack with
    its own .rawtlt still gave the tilt axis (-95.9): the mirror tomogram, said only in a note that its angles were
    used (they were not). Its axis is not used either, and a note says why."""
    d = turned
    sections = "".join(f"[ZValue = {z}]\nTiltAngle = {z - 30}.0\n\n" for z in range(61))
    (d / "turned.st.mdoc").write_text(MDOC.format(name="turned.st", axis="84.0") + sections)
    try:
        assert mdoc_tilt_axis(d / "turned.st") == (84.0, str(d / "turned.st.mdoc"))
        assert mdoc_tilt_axis(d / "turned.st", 21) is None and mdoc_tilt_axis(d / "turned.st", 61) is not None
        assert main(["track", str(d / "turned.st"), "--bead-diameter-nm", "10", "--output", str(d / "o.csv")]) == 0
        out, err = capsys.readouterr()
        assert f"note: {d / 'turned.st.mdoc'} has 61 sections but turned.st has 21 views: another series' file" in out
        assert "not used, for the tilt axis either" in out and "Unknown fields" not in out + err
        assert "tilt axis near 84" not in out
    finally:
        (d / "turned.st.mdoc").unlink()
