"""An alignment of another tool (AreTomo's .aln) has no markers to size the section: reconstruct's default thickness
is then a quarter of the image, and the output line says so (new user's finding R, session 12: both gold layers of
a 180 px section fell outside a 128 px tomogram, without a word)."""

from __future__ import annotations

from support.beads import write_cryo_series

from napari_tomoalign.cli import main


def test_a_thickness_guessed_without_markers_is_said(tmp_path, capsys):
    path, _ = write_cryo_series(tmp_path, "ts")
    assert main(["run", str(path), "--bead-diameter-nm", "10", "--output", str(tmp_path / "r"), "--quiet"]) == 0
    assert main(["convert", str(tmp_path / "r" / "alignment"), "--to", "aretomo", "--output", str(tmp_path / "ts.aln"),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["reconstruct", str(path), "--alignment", str(tmp_path / "ts.aln"), "--bin", "2", "--output",
                 str(tmp_path / "a.rec")]) == 0
    assert "thickness 64 px, a quarter of the image: the alignment has no markers" in capsys.readouterr().out
    assert main(["reconstruct", str(path), "--alignment", str(tmp_path / "r" / "alignment"), "--bin", "2",
                 "--output", str(tmp_path / "b.rec")]) == 0
    assert "a quarter of the image" not in capsys.readouterr().out  # our alignment's markers size it
