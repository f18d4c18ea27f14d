"""IMOD's automapping, checked view by view against the 'Variable mappings' table of the tutorial's own
tiltalign run (tests/data/imod-tutorial-BB/aligna.log: TiltOption 5 grouping 5, XStretchOption 3 grouping 7,
SkewOption 3 grouping 11, MagOption 1 with MagReferenceView 1, RotOption 1, AngleOffset -0.5)."""

import re

import numpy as np
import pytest
from support.imod_log import imod_label

from napari_tomoalign.alignment.grouping import (
    block_mapping,
    blocks_from_groups,
    linear_mapping,
    per_view_mapping,
    tilt_groups_imod,
)

ENTRY = re.compile(r"(?:rot|tilt|mag|comp|dmag|skew)\s+(\d+)|[trmcds]\s*(\d+)\+\s*(\d+|fix)|(fixed)")


def _log_table(path):
    """{column: [entry per view]} from IMOD's 'Variable mappings' table, entries as '7', '1+3', '26+fix', 'fixed'."""
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "Variable mappings" in line) + 2
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        entries = []
        for m in ENTRY.finditer(line.split(None, 1)[1]):
            single, a, b, fixed = m.groups()
            entries.append(single or (f"{a}+{b}" if a else fixed))
        rows.append(entries)
    names = ["rotation", "tilt", "mag", "comp", "dmag", "skew"]
    return {name: [r[k] for r in rows] for k, name in enumerate(names)}


@pytest.fixture(scope="module")
def tutorial(imod_data):
    tilts = np.loadtxt(imod_data / "BBa.rawtlt") - 0.5  # AngleOffset -0.5
    return tilts, _log_table(imod_data / "aligna.log")


def test_groups_by_tilt_match_imod(tutorial):
    tilts, _ = tutorial
    spans = [(g[0] + 1, g[-1] + 1) for g in tilt_groups_imod(tilts, 5, power=1.0)]
    assert spans == [(1, 2), (3, 6), (7, 9), (10, 14), (15, 19), (20, 25), (26, 31), (32, 37), (38, 42), (43, 48),
                     (49, 53), (54, 57), (58, 61)]
    assert len(tilt_groups_imod(tilts, 7, power=1.5)) == 10
    assert [(g[0] + 1, g[-1] + 1) for g in tilt_groups_imod(tilts, 11, power=0.0)] == [
        (1, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 61)]


def test_every_mapping_of_the_tutorial_run_matches_imods_log(tutorial):
    tilts, table = tutorial
    n = len(tilts)
    min_tilt = int(np.argmin(np.abs(tilts + 0.5)))  # the smallest |raw tilt|; ties to the lower view
    dmag_ref = n // 4 - 1  # IMOD's floor(N/4), 1-based
    mappings = {
        "rotation": per_view_mapping(n),
        "tilt": linear_mapping(tilt_groups_imod(tilts, 5, 1.0), n, reference_view=min_tilt),
        "mag": per_view_mapping(n, fixed_views=[0]),
        "dmag": block_mapping(blocks_from_groups(tilt_groups_imod(tilts, 7, 1.5), n), reference_view=dmag_ref),
        "skew": linear_mapping(tilt_groups_imod(tilts, 11, 0.0), n, reference_view=dmag_ref),
    }
    for name, mapping in mappings.items():
        ours = [imod_label(mapping, v) for v in range(n)]
        assert ours == table[name], name
    assert table["comp"] == ["fixed"] * n
    # 61 rotations + 13 tilts + 60 mags + 9 dmags + 6 skews = 149 geometric variables, as the log says.
    assert sum(m.n_vars for m in mappings.values()) == 149


def test_linear_values_interpolate_between_anchors():
    groups = [[0, 1, 2], [3, 4, 5, 6], [7, 8]]
    m = linear_mapping(groups, 9)
    q = np.arange(1.0, m.n_vars + 1) * 10.0  # anchors at views 0, 3, 7 -> 10, 20, 30
    assert list(m.anchor_view) == [0, 3, 7]
    np.testing.assert_allclose(m.values(q), [10, 10 + 10 / 3, 10 + 20 / 3, 20, 22.5, 25, 27.5, 30, 30])


def test_automap_without_ranges_is_one_range_all_linked():
    from napari_tomoalign.alignment.grouping import automap_groups

    tilts = np.linspace(-60, 60, 61)
    groups, linked = automap_groups(tilts, 5, 1.0)
    assert groups == tilt_groups_imod(tilts, 5, 1.0) and all(linked) and len(linked) == len(groups) - 1


def test_nondefault_ranges_are_grouped_on_their_own_and_never_interpolated_across():
    from napari_tomoalign.alignment.grouping import automap_groups

    tilts = np.linspace(-60, 60, 61)
    groups, linked = automap_groups(tilts, 5, 0.0, nondefault=[(20, 30, 2)])
    starts = [g[0] for g in groups]
    assert 20 in starts and 31 in starts  # the range's edges start groups
    inside = [g for g in groups if 20 <= g[0] <= 30]
    assert all(g[-1] <= 30 for g in inside) and max(len(g) for g in inside) <= 3
    assert not linked[starts.index(20) - 1] and not linked[starts.index(31) - 1]
    assert sorted(v for g in groups for v in g) == list(range(61))


def test_separate_groups_are_grouped_among_themselves():
    from napari_tomoalign.alignment.grouping import automap_groups

    tilts = np.linspace(-60, 60, 61)
    reshot = [10, 11, 12, 40, 41]
    groups, linked = automap_groups(tilts, 5, 0.0, separate=[reshot])
    sep = [g for g in groups if set(g) & set(reshot)]
    assert all(set(g) <= set(reshot) for g in sep) and sorted(v for g in sep for v in g) == reshot
    k = groups.index(sep[0])
    assert not linked[k - 1]  # a separate group does not continue the others
    m = linear_mapping(groups, 61, reference_view=30, linked=linked)
    assert all(m.var_b[v] < 0 or m.anchor_view[m.var_b[v]] not in reshot for v in range(61) if v not in reshot)
    assert m.n_vars > 0


def test_command_file_ranges_separate_groups_and_a_second_fixed_tilt(imod_data):
    from napari_tomoalign.alignment.imod_options import settings_from_com
    from napari_tomoalign.errors import UsageError
    from napari_tomoalign.io.imod_com import read_com_section

    base = read_com_section(imod_data / "aligna.com")
    tilts = np.loadtxt(imod_data / "BBa.rawtlt")
    plain = settings_from_com(base, tilts)
    more = settings_from_com({**base, "SeparateGroup": ["5-7"], "SkewNondefaultGroup": ["40,61,4"]}, tilts)
    assert more.mappings["skew"].n_vars > plain.mappings["skew"].n_vars
    # views 5-7 (reshot) are a group of their own; the others ramp across them, from view 3 to view 10
    assert [imod_label(more.mappings["tilt"], v) for v in range(10)] == ["1", "1+3", "3", "3+10", "5", "5+7", "7",
                                                                      "3+10", "3+10", "10"]
    two = settings_from_com({**base, "TiltOption": ["7"], "TiltSecondFixedView": ["1"]}, tilts)
    t = two.mappings["tilt"]
    assert imod_label(t, 0) == "fixed" and imod_label(t, 31) == "fixed" and t.n_vars == plain.mappings["tilt"].n_vars - 1
    with pytest.raises(UsageError, match="give TiltSecondFixedView"):
        settings_from_com({**base, "TiltOption": ["7"]}, tilts)
    with pytest.raises(UsageError, match="overlap at view 12"):
        settings_from_com({**base, "SkewNondefaultGroup": ["5,20,3", "12,30,3"]}, tilts)


def test_the_default_model_is_a_preset_of_the_full_models_settings():
    """settings_from_options: rotation, tilt and magnification mapped as the options ask, tilt and
    magnification held at the reference view (with its group), views out of the fit held, the rest of the
    full model fixed; the robust preset is the default model's."""
    from napari_tomoalign import AlignmentOptions
    from napari_tomoalign.alignment.options import DEFAULT_ROUNDS, settings_from_options
    from napari_tomoalign.io.alignment_record import mapping_summary, settings_to_dict

    included = np.ones(12, dtype=bool)
    included[11] = False
    opts = AlignmentOptions(rotation="one", tilt="group:4", magnification="view", robust=True, axis_z_shift_px=3.5)
    s = settings_from_options(opts, included, reference_view=5, rotation_angle_deg=84.0)
    assert s.origin == "options" and not s.from_com and s.axis_z_shift_px == 3.5
    held = {kind: mapping_summary(s.mappings[kind]).get("held") for kind in ("rotation", "tilt", "magnification")}
    assert [s.mappings[k].n_vars for k in held] == [1, 2, 10]
    assert held == {"rotation": "12", "tilt": "5-8,12", "magnification": "6,12"}  # 1-based; tilt: the reference's group
    assert all(s.mappings[k].n_vars == 0 for k in ("x_stretch", "skew", "x_tilt", "compression"))
    assert not s.beam_tilt_free and s.excluded_views == (11,) and s.n_geometric == 13
    assert s.robust and s.robust_rounds == DEFAULT_ROUNDS and s.robust_floor == 0.0
    record = settings_to_dict(s)
    assert record["variables"]["tilt"]["mode"] == "block" and record["robust"]["rounds"] == DEFAULT_ROUNDS
    fixed = settings_from_options(AlignmentOptions(tilt="fixed"), included, 5, 84.0)
    assert fixed.mappings["tilt"].n_vars == 0
