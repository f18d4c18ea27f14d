"""A bead diameter given wrong: `tomoalign track` measures the beads and says what to give instead."""

import numpy as np
import pytest

from napari_tomoalign.cli import main
from napari_tomoalign.io.mrc import write_mrc
from napari_tomoalign.simulation.beads import make_bead_series


@pytest.fixture(scope="module")
def cryo(tmp_path_factory):
    d = tmp_path_factory.mktemp("hint")
    s = make_bead_series("cryo", size=384, n_views=31, seed=3)  # 10 nm gold at 0.8 nm/px
    path = d / "c.st"
    write_mrc(path, s.images.astype(np.float32), 10.0 * s.pixel_size_nm)
    (d / "c.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    return path, s.bead_diameter_px * s.pixel_size_nm


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_a_wrong_diameter_is_named_with_the_measured_one(cryo, tmp_path, capsys, factor):
    """Way off (0.5x, 2x): one line naming the measured diameter and the option, exit 2, no files."""
    path, true_nm = cryo
    out = tmp_path / "o"
    out.mkdir()
    code = main(["track", str(path), "--bead-diameter-nm", f"{true_nm * factor:.2f}", "--output", str(out / "t.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    suggested = float(err.split("give --bead-diameter-nm ", 1)[1].split()[0])
    assert abs(suggested - true_nm) < 0.1 * true_nm  # within 10% of the simulated 10 nm
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("factor", [0.6, 1.4])
def test_a_diameter_off_by_40_percent_gives_the_same_tracks(cryo, tmp_path, factor):
    """0.6x and 1.4x the true diameter: measured and adapted, the same markers as the true one."""
    path, true_nm = cryo
    tables = []
    for k, d in enumerate((true_nm, true_nm * factor)):
        out = tmp_path / f"t{k}.csv"
        assert main(["track", str(path), "--bead-diameter-nm", f"{d:.2f}", "--output", str(out), "--quiet"]) == 0
        tables.append(np.loadtxt(out, delimiter=",", skiprows=1))
    assert tables[0].shape == tables[1].shape and len(tables[0]) > 100
    np.testing.assert_allclose(tables[0], tables[1], atol=1e-6)


def test_an_auto_diameter_is_measured(cryo, tmp_path, capsys):
    import re

    path, true_nm = cryo
    assert main(["track", str(path), "--bead-diameter-nm", "auto", "--output", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    # the measure said in nm, with the option to give next time (new user's finding, session 13: never printed)
    said = re.search(r"note: the beads measure ([0-9.]+) nm \(([0-9.]+) px\) across \(give --bead-diameter-nm \1 next", out)
    assert said is not None, out
    assert abs(float(said.group(1)) / true_nm - 1) < 0.15


def test_the_right_diameter_gets_no_hint(cryo, tmp_path, capsys):
    path, true_nm = cryo
    assert main(["track", str(path), "--bead-diameter-nm", f"{true_nm:.2f}", "--output", str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr().out
    assert "try --bead-diameter" not in out and "the beads measure" not in out


def test_a_diameter_30_percent_off_is_replaced_and_said(cryo, tmp_path, capsys):
    """As the dock says it (new user's finding E, session 12: the command line replaced it without a word)."""
    path, true_nm = cryo
    assert main(["track", str(path), "--bead-diameter-nm", f"{0.7 * true_nm:.2f}", "--output", str(tmp_path / "t.csv")]
                ) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("note: the beads measure"))
    measured = float(line.split("measure ")[1].split()[0])
    assert abs(measured / true_nm - 1.0) < 0.1 and f"not the {0.7 * true_nm:.1f} nm given" in line


def test_a_diameter_that_cannot_be_nm_says_so(cryo, tmp_path, capsys):
    path, _ = cryo
    assert main(["track", str(path), "--bead-diameter-nm", "500", "--output", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "625.0 px at the header's 0.8 nm/px" in err and "not Angstrom" in err


def test_the_fft_cap_holds_per_thread():
    import threading

    from napari_tomoalign.tracking._fourier import fft_threads, fft_workers

    seen = {}
    with fft_threads(1):
        assert fft_workers() == 1
        t = threading.Thread(target=lambda: seen.setdefault("other", fft_workers()))
        t.start()
        t.join()
    assert seen["other"] == -1 and fft_workers() == -1  # every core, unless capped in that thread


def test_a_placeholder_pixel_size_is_named_not_a_tiny_gold(tmp_path, capsys):
    """New user's finding U (session 12): a header of 1 A (what converters leave) made the advice 'give
    --bead-diameter-nm 1.2'; no gold is that small, so the pixel size is named with the one 10 nm gold implies."""
    s = make_bead_series("cryo", size=512, n_views=21, seed=3)  # 10 nm gold at 0.8 nm/px
    write_mrc(tmp_path / "p.st", s.images.astype(np.float32), 1.0)  # the header says 1 A
    (tmp_path / "p.rawtlt").write_text("".join(f"{a:.2f}\n" for a in s.tilt_angles_deg))
    assert main(["track", str(tmp_path / "p.st"), "--bead-diameter-nm", "10", "--output", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert "(1 A: often a placeholder)" in err and "give --pixel-size-nm (10.0 nm gold would mean 0.8" in err, err
