"""IMOD's automapping, checked view by view against the 'Variable mappings' table of the tutorial's own
tiltalign run (tests/data/imod-tutorial-BB/aligna.log: TiltOption 5 grouping 5, XStretchOption 3 grouping 7,
SkewOption 3 grouping 11, MagOption 1 with MagReferenceView 1, RotOption 1, AngleOffset -0.5)."""

import re

import numpy as np
import pytest

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
        ours = [mapping.describe(v) for v in range(n)]
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
