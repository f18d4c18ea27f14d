"""The full model's Jacobian in plain numpy, per observation: the reference the solver's kernels are tested
against (the solver never forms it)."""

import numpy as np

from napari_tomoalign.alignment.model import DX, DY, MATRIX_PARAMS, N_FULL, view_matrices


def jacobian_blocks_full(params, xyz, view_index, marker_index, beam_tilt=0.0):
    """Derivatives of each prediction: by its view's 9 parameters ``(n_obs, 2, 9)``, by its marker
    ``(n_obs, 2, 3)`` and by the beam tilt ``(n_obs, 2)``."""
    a, deriv = view_matrices(params, beam_tilt)
    x = np.asarray(xyz, float)[marker_index]
    jv = np.zeros((len(view_index), 2, N_FULL))
    for kind in MATRIX_PARAMS:
        jv[:, :, kind] = np.einsum("nij,nj->ni", deriv[view_index, kind], x)
    jv[:, 0, DX] = 1.0
    jv[:, 1, DY] = 1.0
    jb = np.einsum("nij,nj->ni", deriv[view_index, N_FULL], x)
    return jv, a[view_index].copy(), jb
