"""The local WBP's back-projection step in LLVM IR (`local_group`) against the formula, written out in numpy."""

from __future__ import annotations

import numba
import numpy as np

from napari_tomoalign.reconstruction.bp_kernels import aligned_empty
from napari_tomoalign.reconstruction.local_group import (
    CELL_FLOATS,
    LINE_FLOATS,
    local_add_8,
    local_cells_8,
    local_cells_16,
)


@numba.njit
def _sum_column(w, lines, consts, table, t, xx, z):
    local_cells_8(lines, consts, table, xx, z, 0)
    local_add_8(w, table, t, 0, False, 0, 8)


@numba.njit
def _set_column(w, lines, consts, table, t, xx, z):
    local_cells_8(lines, consts, table, xx, z, 0)
    local_add_8(w, table, t, 0, True, 0, 8)


@numba.njit
def _sum_first_views(w, lines, consts, table, t, xx, z, n):
    """The first ``n`` views of the group, in runs of 4, 2 and 1, as `local_rows._add_tile` adds a padded last group."""
    local_cells_8(lines, consts, table, xx, z, 0)
    if n & 4:
        local_add_8(w, table, t, 0, False, 0, 4)
    if n & 2:
        local_add_8(w, table, t, 0, False, n & 4, 2)
    if n & 1:
        local_add_8(w, table, t, 0, False, n & 6, 1)


def _reference(w, lines, consts, t, xx, z, n_views=8):
    """Each view's two groups of 32 lanes, from the module's formula: the cell of the group's middle lane, clamped
    into the view's resampled columns, each lane at its own fraction between that column and the next."""
    out, offsets = t.astype(np.float64), np.zeros((8, 2), dtype=np.int64)
    row = lines[xx * LINE_FLOATS : (xx + 1) * LINE_FLOATS].reshape(4, 8).astype(np.float64)
    top, base, shift = consts[:8], consts[8:16], consts[16:]
    for j in range(n_views):
        a = np.float32(row[2, j] + row[3, j] * z)
        um = np.float32(np.float32(row[0, j] - shift[j]) + row[1, j] * z)
        for g, side in enumerate((-16.0, 16.0)):
            u = np.float32(um + side * a)
            i = float(int(min(max(u, 0.0), top[j])))
            o = offsets[j, g] = int(base[j] + i) * 64 + 32 * g
            f = u - i - 15.5 * a
            k = np.arange(32)
            lo, hi = w[o + k].astype(np.float64), w[o + 64 + k].astype(np.float64)
            out[32 * g + k] += lo + (f + a * k) * (hi - lo)
    return out, offsets


def test_the_cells_and_sums_are_the_formulas_for_drifts_clamps_and_both_groups():
    rng = np.random.default_rng(3)
    n_cols = 40
    w = aligned_empty(8 * n_cols * 64)
    w[:] = rng.normal(size=w.size).astype(np.float32)
    t = aligned_empty(64)
    table = np.zeros(CELL_FLOATS, dtype=np.float32)
    consts = np.concatenate([np.full(8, n_cols - 2), np.arange(8) * n_cols, np.arange(8) - 3.0]).astype(np.float32)
    for trial in range(30):
        lines = np.zeros(16 * LINE_FLOATS, dtype=np.float32)
        xx, z = int(rng.integers(16)), int(rng.integers(64))
        row = lines[xx * LINE_FLOATS : (xx + 1) * LINE_FLOATS].reshape(4, 8)
        row[0] = rng.uniform(-5, n_cols + 5, 8)  # some beyond either end: clamped to the first or last cell
        row[1] = rng.uniform(-0.2, 0.2, 8)
        row[2] = rng.uniform(-0.05, 0.05, 8)  # a drift: the two groups of lanes may take different cells
        row[3] = rng.uniform(-1e-3, 1e-3, 8)
        t[:] = rng.normal(size=64).astype(np.float32)
        want, offsets = _reference(w, lines, consts, t, xx, z)
        _sum_column(w, lines, consts, table, t, xx, z)
        assert np.abs(t - want).max() <= 2e-5 * np.abs(want).max(), trial
        assert np.array_equal(table[:16].view(np.int32).reshape(8, 2), offsets)  # each view's pair: o0, then o1
        want = _reference(w, lines, consts, np.zeros(64, dtype=np.float32), xx, z)[0]
        _set_column(w, lines, consts, table, t, xx, z)  # the first group of views: the sums set, not added to
        assert np.abs(t - want).max() <= 2e-5 * np.abs(want).max(), trial


def test_a_last_group_adds_only_its_own_views():
    """A stack of 61 views ends in a group of 5: its padding's views are not added (`local_add_8`'s ``n_views``, in runs
    of 4, 2 and 1 from view ``j0``); every count from 1 to 7 gives the formula's sum over those views alone."""
    rng = np.random.default_rng(5)
    n_cols = 30
    w = aligned_empty(8 * n_cols * 64)
    w[:] = rng.normal(size=w.size).astype(np.float32)
    t = aligned_empty(64)
    table = np.zeros(CELL_FLOATS, dtype=np.float32)
    consts = np.concatenate([np.full(8, n_cols - 2), np.arange(8) * n_cols, np.zeros(8)]).astype(np.float32)
    lines = np.zeros(16 * LINE_FLOATS, dtype=np.float32)
    row = lines[:LINE_FLOATS].reshape(4, 8)
    row[0] = rng.uniform(2, n_cols - 4, 8)
    row[1] = rng.uniform(-0.2, 0.2, 8)
    row[2] = rng.uniform(-0.05, 0.05, 8)
    for n in range(1, 8):
        t[:] = rng.normal(size=64).astype(np.float32)
        want = _reference(w, lines, consts, t, 0, 3, n)[0]
        assert not np.allclose(want, _reference(w, lines, consts, t, 0, 3, n + 1)[0])  # each view adds something
        _sum_first_views(w, lines, consts, table, t, 0, 3, n)
        assert np.abs(t - want).max() <= 2e-5 * np.abs(want).max(), n


@numba.njit
def _two_sections(lines, consts, one, two, xx, z):
    local_cells_8(lines, consts, one, xx, z, 0)
    local_cells_8(lines, consts, one, xx, z + 1, CELL_FLOATS)
    local_cells_16(lines, consts, two, xx, z, 0, CELL_FLOATS)


def test_two_sections_cells_at_once_are_those_of_each_section():
    """`local_cells_16` (sections ``z`` and ``z + 1`` in 16-lane vectors, as `local_rows._add_tile` takes them) writes the
    same table as `local_cells_8` at each section, to the bit: drifts either way, cells clamped at both ends."""
    rng = np.random.default_rng(5)
    for trial in range(20):
        lines = rng.normal(scale=[[30.0], [0.5], [0.02], [1e-4]], size=(4, 8)).astype(np.float32)
        lines[0] += 20.0
        flat = np.tile(lines.reshape(-1), 3)  # three voxel columns' lines
        consts = np.concatenate([np.full(8, 37.0), rng.integers(0, 5, 8), rng.normal(scale=3, size=8)]).astype(np.float32)
        one, two = np.zeros(2 * CELL_FLOATS, np.float32), np.ones(2 * CELL_FLOATS, np.float32)
        _two_sections(flat, consts, one, two, trial % 3, int(rng.integers(0, 120)))
        np.testing.assert_array_equal(two.view(np.int32), one.view(np.int32))
