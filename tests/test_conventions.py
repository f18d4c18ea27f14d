"""The conventions stated once (`napari_tomoalign.conventions`): IMOD's lists of view numbers, read and written."""

import numpy as np
import pytest

from napari_tomoalign.alignment.imod_options import settings_from_com
from napari_tomoalign.conventions import format_views, view_indices
from napari_tomoalign.errors import AlignmentError, UsageError


def test_view_lists_read_as_imod_writes_them():
    assert view_indices("1-3, 7,3") == [0, 1, 2, 6]
    assert view_indices("1 - 3 7\t60-61", 61) == [0, 1, 2, 6, 59, 60]  # spaces separate entries, as in IMOD
    assert view_indices("") == [] and view_indices(" , ") == []
    for bad in ("0", "0-2", "2-0", "x", "1-", "-2", "1.5"):
        with pytest.raises(UsageError, match="give view numbers from 1"):
            view_indices(bad)
    for backwards, fix in (("41-39", "39-41"), ("3-1", "1-3"), ("7, 05-02", "2-5")):  # said as such (s15 new user)
        with pytest.raises(UsageError, match=f"^{backwards.split()[-1]} runs backwards: write {fix}$"):
            view_indices(backwards)
    with pytest.raises(UsageError, match="excluded view 62 is not a view of this 61-view series"):
        view_indices("60-62", 61, what="excluded view")
    with pytest.raises(UsageError, match="beyond the 10000 views"):  # refused before a set of 10**12 views is made
        view_indices("1-1000000000000")


def test_format_and_read_are_inverse():
    rng = np.random.default_rng(0)
    for _ in range(50):
        views = sorted(set(rng.integers(0, 40, rng.integers(0, 20)).tolist()))
        assert view_indices(format_views(views), 40) == views
    assert format_views([6, 0, 1, 2, 2]) == "1-3,7"


def test_an_align_coms_view_lists_name_their_entry():
    tilts = np.linspace(-60, 60, 41)
    assert settings_from_com({"ExcludeList": ["1-2", "40 41"]}, tilts).excluded_views == (0, 1, 39, 40)
    with pytest.raises(AlignmentError, match="ExcludeList '45': view 45 is not a view of this 41-view series"):
        settings_from_com({"ExcludeList": ["45"]}, tilts)
    with pytest.raises(AlignmentError, match="SeparateGroup '5-x'"):
        settings_from_com({"RotOption": ["3"], "SeparateGroup": ["5-x"]}, tilts)
