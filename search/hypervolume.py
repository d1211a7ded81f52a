"""Pareto fronts, the box decomposition of what they leave undominated, and hypervolume.

Everything here minimises. The region below a reference point ``r`` that no point of a front
``P`` dominates is cut into disjoint boxes: for objectives 1..m-1, the grid of the front's
coordinates makes cells; inside a cell with lower corner ``l'`` the points dominating any
``z`` of the cell are exactly those with ``p' <= l'``, so the cell's undominated part is the
column ``[l', u'] x (-inf, h)`` with ``h = min(r_m, min{p_m : p' <= l'})``. That gives
``prod_{j<m} (n_j + 1)`` boxes: ``n + 1`` strips for two objectives, a few thousand for three.
The hypervolume improvement of a point ``y`` is then a sum over boxes of products,
``HVI(y) = sum_b prod_j (u_bj - max(y_j, l_bj))_+``, which is what makes EHVI closed-form.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["nondominated", "box_decomposition", "hvi", "hypervolume"]


def nondominated(Y: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``Y`` (``n x m``) that no other row dominates; of equal
    rows only the first is kept."""
    Y = np.asarray(Y, float)
    n = len(Y)
    keep = np.ones(n, bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated_by = np.all(Y <= Y[i], axis=1) & np.any(Y < Y[i], axis=1)
        dup_before = np.all(Y == Y[i], axis=1) & (np.arange(n) < i)
        if dominated_by.any() or dup_before.any():
            keep[i] = False
    return keep


def box_decomposition(front: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint boxes (``lower``, ``upper``, each ``B x m``) covering the part of
    ``{z <= ref}`` that no point of ``front`` (``k x m``, any points) weakly dominates.
    Lower bounds may be ``-inf``."""
    ref = np.asarray(ref, float)
    m = len(ref)
    P = np.asarray(front, float).reshape(-1, m)
    P = P[np.all(P < ref, axis=1)]           # points not below ref dominate nothing below it
    if len(P):
        P = P[nondominated(P)]
    grids = [np.unique(np.append(P[:, j], ref[j])) for j in range(m - 1)]
    # cell c in dim j spans (grid[c-1], grid[c]) with grid[-1] := -inf
    lows = [np.concatenate([[-np.inf], g[:-1]]) for g in grids]
    cells = np.array(list(itertools.product(*[range(len(g)) for g in grids])), dtype=int)
    cells = cells.reshape(-1, m - 1)
    lower = np.column_stack([lows[j][cells[:, j]] for j in range(m - 1)] +
                            [np.full(len(cells), -np.inf)])
    upper = np.column_stack([grids[j][cells[:, j]] for j in range(m - 1)] +
                            [np.full(len(cells), ref[-1])])
    if len(P):
        # h = min(r_m, min p_m over points with p' <= l')
        dom = np.all(P[None, :, :m - 1] <= lower[:, None, :m - 1], axis=2)   # (B, k)
        h = np.where(dom, P[None, :, m - 1], np.inf).min(axis=1)
        upper[:, m - 1] = np.minimum(upper[:, m - 1], h)
    return lower, upper


def hvi(Y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Exact hypervolume improvement of each row of ``Y`` (``N x m``) over the front the
    boxes were cut from."""
    Y = np.atleast_2d(np.asarray(Y, float))
    ext = upper[None] - np.maximum(Y[:, None, :], lower[None])   # (N, B, m)
    return np.prod(np.maximum(ext, 0.0), axis=2).sum(axis=1)


def hypervolume(front: np.ndarray, ref: np.ndarray) -> float:
    """Hypervolume dominated by ``front`` below ``ref`` (pymoo's HV; 0 for an empty front)."""
    from pymoo.indicators.hv import HV

    ref = np.asarray(ref, float)
    P = np.asarray(front, float).reshape(-1, len(ref))
    P = P[np.all(P < ref, axis=1)]
    if not len(P):
        return 0.0
    return float(HV(ref_point=ref)(P))
