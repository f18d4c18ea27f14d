"""Cross-tool checks against the other tools' own code and test data (``cryoet-alignment`` 0.2.0, ``alnfile``
0.1.1; fixtures in ``tests/data/cryoet-alignment`` and ``tests/data/alnfile``, see ``tests/data/SOURCE.md``).

Every comparison projects a grid of 3-D points (across the image and 300 px deep) through both alignments,
each with its own format's model turned into IMOD's ``.xf`` + ``.tlt`` by the peer itself, and asks for
0.05 px. Sizes are real: 4096 x 4096 and 3838 x 3710 images at 0.154 nm/px, 35-61 views, dark views.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_tomoalign.io.alignment import SavedAlignment
from napari_tomoalign.io.aretomo import PatchesIgnored, read_aln, write_aln
from napari_tomoalign.io.convert import project_points, raw_shifts, read_any, rotation_and_magnification, transforms_from
from napari_tomoalign.io.errors import FileFormatError
from napari_tomoalign.io.relion import read_relion, write_relion

for _package in ("starfile", "alnfile", "cryoet_alignment"):  # the 'interchange' extra
    pytest.importorskip(_package)

from support.paths import TESTS  # noqa: E402

DATA = TESTS / "data"
WARP_STAR = DATA / "cryoet-alignment" / "matching_tomograms.star"
TOL_PX = 0.05


def _saved(order: str, size=(4096, 4096), n=35, dark=(0, 5, 34), seed=3) -> SavedAlignment:
    """A synthetic alignment: tilts in ``order`` ('ascending', 'descending', 'dose-symmetric'), 3° steps."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n) - n // 2
    if order == "dose-symmetric":
        steps = np.array(sorted(steps, key=lambda k: (abs(k), -k)))
    tilts = 3.0 * steps * (-1 if order == "descending" else 1) + rng.normal(0, 0.2, n)
    xf = transforms_from(85.3 + rng.normal(0, 0.3, n), np.ones(n), rng.normal(0, 40, (n, 2)))
    det = np.ones(n, dtype=bool)
    det[list(dark)] = False
    xf[~det] = np.nan
    return SavedAlignment(xf, tilts, det, size, 0.154)


def _grid(size) -> np.ndarray:
    x, y, z = np.meshgrid(np.linspace(0, size[0] - 1, 5), np.linspace(0, size[1] - 1, 5), [-150.0, 0.0, 150.0])
    return np.column_stack([x.ravel(), y.ravel(), z.ravel()])


def _disagreement(a: SavedAlignment, b: SavedAlignment) -> float:
    """Largest distance between the projections of the grid through ``a`` and through ``b`` (same views kept)."""
    np.testing.assert_array_equal(a.view_determined, b.view_determined)
    g = _grid(a.image_size)
    return float(np.nanmax(np.linalg.norm(project_points(a, g) - project_points(b, g), axis=-1)))


def _from_peer_imod(imod, kept: set[int], like: SavedAlignment) -> SavedAlignment:
    """The peer's own IMOD conversion (``ImodAlignment``) as a `SavedAlignment` over ``like``'s views."""
    xf = np.array([[[a.mxx, a.mxy, a.sx], [a.myx, a.myy, a.sy]] for a in imod.xf.alignments], dtype=float)
    det = np.array([i in kept for i in range(len(xf))])
    xf[~det] = np.nan
    return SavedAlignment(xf, np.asarray(imod.tlt.angles, dtype=float), det, like.image_size, like.pixel_size_nm)


# --- RELION: no centre correction, as RELION's own importers -----------------------------------------------


@pytest.mark.parametrize("size", [(4096, 4096), (3838, 3710), (1023, 1025)])
def test_relion_we_write_is_what_relion_imports(size, tmp_path):
    from cryoet_alignment.io.cryoet_data_portal import Alignment
    from cryoet_alignment.io.relion import RelionAlignment

    saved = _saved("ascending", size, dark=())
    write_relion(saved, tmp_path, "ts")
    t = __import__("starfile").read(tmp_path / "tilt_series" / "ts.star")
    shift_a = t[["rlnTomoXShiftAngst", "rlnTomoYShiftAngst"]].to_numpy()
    np.testing.assert_allclose(shift_a, raw_shifts(saved.transforms) * 1.54, atol=2e-6)  # the shift itself, no 0.5 px
    peer = Alignment.from_relion(RelionAlignment.from_file(tmp_path / "tomograms.star"))
    imod = peer.to_imod(ts_size=(*size, len(saved.tilt_angles_deg)))
    assert _disagreement(saved, _from_peer_imod(imod, set(range(35)), saved)) < TOL_PX


def test_relion_the_peer_writes_reads_as_relion_imports_it(tmp_path):
    from cryoet_alignment.io.cryoet_data_portal import Alignment

    saved = _saved("ascending", (3838, 3710), dark=())
    write_aln(saved, tmp_path / "a.aln")  # hand it over through AreTomo, where the peer agrees (below)
    peer = Alignment.from_aretomo3(__import__("cryoet_alignment").read(str(tmp_path / "a.aln")), vol_size=(3838, 3710, 300))
    peer.to_relion("ts", pixel_size_a=1.54).to_file(tmp_path / "tomograms.star")
    back = read_relion(tmp_path / "tomograms.star", image_size=(3838, 3710))
    assert _disagreement(saved, back) < TOL_PX


@pytest.mark.parametrize("name", ["24jul16a_Position_27_1.tomostar", "24jul16a_Position_16_3.tomostar"])
def test_warptools_star_reads_as_relion_reads_its_projection_matrices(name):
    from cryoet_alignment.io.cryoet_data_portal import Alignment
    from cryoet_alignment.io.relion import RelionAlignment

    ours = read_relion(WARP_STAR, name=name)
    assert ours.image_size == (4096, 4096) and ours.pixel_size_nm == pytest.approx(0.154)
    peer = Alignment.from_relion(RelionAlignment.from_file(WARP_STAR, tomo_name=name, image_size_px=(4096, 4096)))
    imod = peer.to_imod(ts_size=(4096, 4096, 31))
    assert _disagreement(ours, _from_peer_imod(imod, set(range(31)), ours)) < TOL_PX


def test_convert_passes_name_to_the_reader_and_prints_its_warnings(tmp_path, capsys):
    from napari_tomoalign.cli import main

    out = tmp_path / "imod"
    assert main(["convert", str(WARP_STAR), "--to", "imod", "--output", str(out), "--name",
                 "24jul16a_Position_18_1.tomostar"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["24jul16a_Position_18_1.tomostar.tlt",
                                                       "24jul16a_Position_18_1.tomostar.xf"]
    ours = read_relion(WARP_STAR, name="24jul16a_Position_18_1.tomostar")
    back = read_any(out / "24jul16a_Position_18_1.tomostar.xf", "imod", image_size=(4096, 4096))
    assert _disagreement(ours, back) < TOL_PX
    capsys.readouterr()
    assert main(["convert", str(WARP_STAR), "--to", "imod", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "3 tomograms; name the one to read with --name" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    assert main(["convert", str(DATA / "alnfile" / "global_and_local.aln"), "--to", "imod", "--output",
                 str(tmp_path / "p")]) == 0
    err = capsys.readouterr().err
    assert "local (patch) alignment lines are ignored" in err and "Traceback" not in err


# --- AreTomo .aln: the dark-frame layouts and what AreTomo3 writes ------------------------------------------


def test_aln_we_write_is_what_aretomo3_writes(tmp_path):
    saved = _saved("dose-symmetric")
    write_aln(saved, tmp_path / "a.aln")
    lines = (tmp_path / "a.aln").read_text().splitlines()
    order = np.argsort(saved.tilt_angles_deg, kind="stable")
    rank = np.argsort(order)
    darks = [ln.split("=")[1].split() for ln in lines if ln.startswith("# DarkFrame")]
    assert [(int(a), int(b)) for a, b, _ in darks] == sorted((int(rank[i]), i + 1) for i in (0, 5, 34))
    rows = [ln.split() for ln in lines if ln[:1] not in ("#", "")]
    secs = [int(r[0]) for r in rows]
    assert secs == [int(i) + 1 for i in order if saved.view_determined[i]]  # tilt order, 1-based sections
    tilts = [float(r[9]) for r in rows]
    assert tilts == sorted(tilts)
    assert _disagreement(saved, read_aln(tmp_path / "a.aln")) < TOL_PX


def _layout(saved: SavedAlignment, layout: str) -> str:
    """``saved`` as another writer's ``.aln`` layout (module docstring of `io.aretomo`)."""
    alpha, _ = rotation_and_magnification(saved.transforms)
    t = raw_shifts(saved.transforms)
    tilts = saved.tilt_angles_deg
    order = np.argsort(tilts, kind="stable")
    rank = np.argsort(order)
    kept = [int(i) for i in order if saved.view_determined[i]]
    dark = [int(i) for i in order if not saved.view_determined[i]]
    dark_cols = {"aretomo3": lambda i: (rank[i], i + 1), "aretomo3-early": lambda i: (rank[i], rank[i]),
                 "aretomo2": lambda i: (rank[i], i), "cryoet-alignment": lambda i: (i, 0),
                 "tomoalign-old": lambda i: (rank[i], i)}[layout]
    sec = {"aretomo3": lambda k, i: i + 1, "aretomo3-early": lambda k, i: k, "aretomo2": lambda k, i: i,
           "cryoet-alignment": lambda k, i: i + 1, "tomoalign-old": lambda k, i: i}[layout]
    nx, ny = saved.image_size
    out = ["# AreTomo Alignment / Priims bprmMn", f"# RawSize = {nx} {ny} {len(tilts)}", "# NumPatches = 0"]
    out += [f"# DarkFrame = {dark_cols(i)[0]:5d} {dark_cols(i)[1]:4d} {tilts[i]:8.2f}" for i in dark]
    out += [] if layout == "aretomo2" else ["# AlphaOffset =     0.00", "# BetaOffset =     0.00"]
    out += ["# SEC     ROT  GMAG  TX  TY  SMEAN SFIT SCALE BASE TILT"]
    out += [f"{sec(k, i):5d} {alpha[i]:10.5f} 1.00000 {t[i, 0]:10.4f} {t[i, 1]:10.4f} 1.00 1.00 1.00 0.00 {tilts[i]:9.4f}"
            for k, i in enumerate(kept)]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("layout,order", [("aretomo3", "dose-symmetric"), ("aretomo3", "descending"),
                                          ("aretomo3", "ascending"), ("aretomo3-early", "ascending"),
                                          ("aretomo2", "dose-symmetric"), ("aretomo2", "ascending"),
                                          ("cryoet-alignment", "ascending"), ("tomoalign-old", "dose-symmetric")])
def test_every_dark_frame_layout_reads_right(layout, order, tmp_path):
    saved = _saved(order, (3838, 3710))
    (tmp_path / "a.aln").write_text(_layout(saved, layout))
    back = read_aln(tmp_path / "a.aln")
    assert _disagreement(saved, back) < TOL_PX  # 4 decimals in TX/TY: a few 1e-4 px


def test_aretomo3s_current_layout_is_not_read_as_0_based(tmp_path):
    """The report's case: AreTomo3 writes 1-based sections; read as 0-based, view 0 took section 15's transform."""
    saved = _saved("dose-symmetric", dark=(0,))
    (tmp_path / "a.aln").write_text(_layout(saved, "aretomo3"))
    back = read_aln(tmp_path / "a.aln")
    assert not back.view_determined[0] and back.view_determined[1:].all()
    assert _disagreement(saved, back) < TOL_PX


def test_the_peers_read_our_aln_for_a_stack_in_tilt_order(tmp_path):
    import cryoet_alignment
    from cryoet_alignment.io.cryoet_data_portal import Alignment

    saved = _saved("ascending")
    write_aln(saved, tmp_path / "a.aln")
    peer = Alignment.from_aretomo3(cryoet_alignment.read(str(tmp_path / "a.aln")))
    imod = peer.to_imod(ts_size=(4096, 4096, 35))
    kept = {p.z_index for p in peer.per_section_alignment_parameters}
    assert _disagreement(saved, _from_peer_imod(imod, kept, saved)) < TOL_PX
    (tmp_path / "b.aln").write_text(str(peer.to_aretomo(ts_size=(4096, 4096, 35))))  # the peer's own layout
    again = Alignment.from_aretomo3(cryoet_alignment.read(str(tmp_path / "b.aln")))  # 2-decimal tilts: compare
    imod = again.to_imod(ts_size=(4096, 4096, 35))                                    # with the peer's reading
    assert _disagreement(read_aln(tmp_path / "b.aln"), _from_peer_imod(imod, kept, saved)) < TOL_PX


def test_real_aretomo_files_match_alnfiles_own_imod_conversion():
    """``global_no_local.aln`` (AreTomo3, SEC 1-based, no dark frames) against ``alnfile.df_to_xf`` and the
    ``.tlt`` shipped beside it. (The ``.xf`` shipped beside it has the opposite rotation sign to ``df_to_xf``
    and to ``cryoet-alignment``, 5773 px apart at the corners; alnfile's tests do not use it: see the note.)"""
    import pandas as pd
    from alnfile.data_model import AlnData
    from alnfile.imod_utils import df_to_xf

    from napari_tomoalign.io.tilts import read_tilt_angles

    d = DATA / "alnfile"
    ours = read_aln(d / "global_no_local.aln")
    assert ours.image_size == (4096, 4096) and ours.view_determined.all()
    aln = AlnData.from_file(d / "global_no_local.aln")
    xf = df_to_xf(pd.DataFrame([{"rot": g.rot, "tx": g.tx, "ty": g.ty} for g in aln.GlobalAlignments]))
    golden = SavedAlignment(xf, read_tilt_angles(d / "global_no_local.tlt"), np.ones(61, dtype=bool), (4096, 4096), None)
    assert _disagreement(ours, golden) < TOL_PX


def test_real_aretomo_file_with_dark_frames_and_patches():
    import pandas as pd
    from alnfile.data_model import AlnData
    from alnfile.imod_utils import df_to_xf

    path = DATA / "alnfile" / "global_and_local.aln"
    with pytest.warns(PatchesIgnored, match="592 local"):
        ours = read_aln(path)
    assert ours.image_size == (4096, 4096) and not ours.view_determined[:14].any() and ours.view_determined[14:].all()
    aln = AlnData.from_file(path)
    rows = pd.DataFrame([{"rot": g.rot, "tx": g.tx, "ty": g.ty} for g in aln.GlobalAlignments])
    xf = np.full((51, 2, 3), np.nan)
    xf[14:] = df_to_xf(rows)  # AreTomo2-era file: SEC numbers the kept views; darks are raw views 0-13
    tilts = np.r_[[d.angle for d in aln.DarkFrames], [g.tilt for g in aln.GlobalAlignments]]
    assert _disagreement(ours, SavedAlignment(xf, tilts, ours.view_determined, (4096, 4096), None)) < TOL_PX
    np.testing.assert_allclose(ours.tilt_angles_deg, tilts)


@pytest.mark.parametrize("text,match", [
    ("# RawSize = 4096 4096 900000000\n", "RawSize section count 900000000 is out of range"),
    ("# RawSize = 4096 4096 3\n# DarkFrame = 0 0 -3\n# DarkFrame = 0 0 3\n", "appears twice"),
    ("# RawSize = 4096 4096 2\n# DarkFrame = 5 9 3\n", "DarkFrame section 9 is out of range"),
    ("# RawSize = -4 4096 2\n", "image width -4 is out of range"),
])
def test_aln_header_sizes_are_checked_before_allocating(text, match, tmp_path):
    body = "# SEC ROT GMAG TX TY SMEAN SFIT SCALE BASE TILT\n    1 85 1 0 0 1 1 1 0 0\n"
    (tmp_path / "a.aln").write_text("# AreTomo Alignment / Priims bprmMn\n" + text + body)
    with pytest.raises(FileFormatError, match=match):
        read_aln(tmp_path / "a.aln")


def test_aln_nonsense_numbers_and_sections_are_refused(tmp_path):
    saved = _saved("ascending", dark=())
    good = _layout(saved, "aretomo3")
    for bad, match in ((good.replace("    1 ", "   77 ", 1), "SEC column"),
                       (good.replace(" 1.00000 ", " nan ", 1), "not a usable number")):
        (tmp_path / "a.aln").write_text(bad)
        with pytest.raises(FileFormatError, match=match):
            read_aln(tmp_path / "a.aln")


def test_relion_indices_and_numbers_are_checked(tmp_path):
    saved = _saved("ascending", dark=())
    write_relion(saved, tmp_path, "ts")
    star = tmp_path / "tilt_series" / "ts.star"
    text = star.read_text()
    for bad, match in ((text.replace("1@ts.mrc", "0@ts.mrc"), "micrograph index .* 0 is out of range"),
                       (text.replace("1@ts.mrc", "99999999@ts.mrc"), "out of range"),
                       (text.replace("2@ts.mrc", "1@ts.mrc"), "appears twice")):
        star.write_text(bad)
        with pytest.raises(FileFormatError, match=match):
            read_relion(tmp_path / "tomograms.star")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        star.write_text(text)
        assert _disagreement(saved, read_relion(tmp_path / "tomograms.star")) < TOL_PX


# --- Warp XML (read only) ----------------------------------------------------------------------------------

WARP_XML = DATA / "cryoet-alignment" / "00254.xml"


def test_warp_xml_reads_as_the_peer_converts_it():
    from cryoet_alignment.io.cryoet_data_portal import Alignment

    from napari_tomoalign.io.warp import read_warp_xml

    ours = read_warp_xml(WARP_XML, image_size=(3838, 3710))  # this export records no image size
    assert ours.pixel_size_nm == pytest.approx(0.1) and ours.view_determined.sum() == 41
    peer = Alignment.from_warp_file(WARP_XML)
    imod = peer.to_imod(ts_size=(3838, 3710, 41))
    assert _disagreement(ours, _from_peer_imod(imod, set(range(41)), ours)) < TOL_PX


def test_warp_xml_unused_tilts_inverted_angles_and_entities(tmp_path):
    from napari_tomoalign.io.warp import read_warp_xml

    text = WARP_XML.read_text(encoding="utf-8-sig")
    first_use = text.index("<UseTilt>") + len("<UseTilt>")
    (tmp_path / "a.xml").write_text(text[:first_use] + "False" + text[first_use + 4:])
    back = read_warp_xml(tmp_path / "a.xml", image_size=(3838, 3710))
    assert not back.view_determined[0] and back.view_determined[1:].all()
    (tmp_path / "b.xml").write_text(text.replace('AreAnglesInverted="False"', 'AreAnglesInverted="True"'))
    with pytest.raises(FileFormatError, match="AreAnglesInverted"):
        read_warp_xml(tmp_path / "b.xml", image_size=(3838, 3710))
    (tmp_path / "c.xml").write_text('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><TiltSeries/>')
    with pytest.raises(FileFormatError, match="entity"):
        read_warp_xml(tmp_path / "c.xml", image_size=(3838, 3710))
    with pytest.raises(FileFormatError, match="image size"):
        read_warp_xml(WARP_XML)


def test_convert_reads_warp_and_refuses_to_write_it(tmp_path, capsys):
    from napari_tomoalign.cli import main

    assert main(["convert", str(WARP_XML), "--to", "aretomo", "--output", str(tmp_path / "w.aln"), "--image-size",
                 "3838", "3710"]) == 0
    from napari_tomoalign.io.warp import read_warp_xml

    assert _disagreement(read_warp_xml(WARP_XML, image_size=(3838, 3710)), read_aln(tmp_path / "w.aln")) < TOL_PX
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "w.aln"), "--to", "warp", "--output", str(tmp_path / "x.xml")]) == 2
    assert "read, not written" in capsys.readouterr().err
