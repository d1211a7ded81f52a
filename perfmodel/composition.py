"""The composition model: from a program's predicted op times to its end-to-end latency.

    latency_us = a + b * sum_i w(p_i) * p_i + c * n_ops

``p_i`` is op i's predicted time; ``w`` (the *op weights*) is linear in log p between knots at
1 us and 10 ms and constant beyond them; ``a`` is a fixed cost per call, ``c`` a dispatch cost
per executed op. It is fitted by non-negative least squares on *relative* residuals (rows
divided by the measured latency, so a 1 ms program counts as much as a 500 ms one) of
*out-of-fold* op predictions, so its coefficients see the op model's real errors.

Why weights that depend on an op's size: fitted on both hosts' grid stores, the weights say
alike that a small op's predicted time overstates what it adds to the end-to-end latency and a
large op's slightly understates it: w(1 us) = 0.84 / 0.80, w(10 ms) = 1.05 / 1.06 (Intel 602 /
AMD 882 programs). One explanation is the profiler's cost per op, which inflates small ops'
traced times most and which the end-to-end scaling of the op model's targets spreads evenly
over a program's ops; another is small ops overlapping their neighbours on two cores.
Re-scored on the committed held-out runs (``python benchmarks/op_model_variants.py
benchmarks/results/latency_predictor.json
benchmarks/results/latency_predictor_4c2259b77454_seed1.json --variant ...``, results in
``benchmarks/results/op_model_variants_opweights.json``): within +-10% 84.2% -> 86.5% (Intel,
348 programs) and 81.2% -> 83.9% (AMD, 192), MAPE 0.0581 -> 0.0552 and 0.0595 -> 0.0519; knots
at every decade from 1 us to 10 ms did as well (86.2%, 83.3%), so two are kept. The stores'
own out-of-fold scores (the fit's summary) moved less: MAPE 0.0741 -> 0.0734 (Intel), 0.0658
-> 0.0640 (AMD), within +-10% 76.9% -> 75.2% and 80.8% -> 82.7% (their labels are single
drift-corrected profiles, noisier than the held-out runs' interleaved medians).
With fewer than :data:`MIN_PROGRAMS_OP_WEIGHTS` programs the composition keeps one weight
(``b``) for every op; with fewer than the cross-validation's folds it is the plain sum.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

__all__ = ["OP_WEIGHT_KNOTS_US", "MIN_PROGRAMS_OP_WEIGHTS", "op_weight", "weight_basis",
           "fit_composition"]

OP_WEIGHT_KNOTS_US = (1.0, 1e4)
MIN_PROGRAMS_OP_WEIGHTS = 20


def weight_basis(pred_us: np.ndarray, knots_us) -> np.ndarray:
    """Each op's share of each knot's weight (rows: knots; linear in log time between two
    knots, all of the end knot's beyond it): ``w(p) = weights @ weight_basis(p, knots)``."""
    lp = np.log(np.maximum(pred_us, 1e-9))
    k = np.log(np.asarray(knots_us, float))
    return np.stack([np.interp(lp, k, e) for e in np.eye(len(k))])


def op_weight(pred_us: np.ndarray, op_weights) -> np.ndarray:
    """``w(p)`` of each op (``op_weights``: (knots_us, weights), or None: 1 for every op)."""
    pred_us = np.asarray(pred_us, float)
    if op_weights is None:
        return np.ones_like(pred_us)
    knots, weights = op_weights
    return np.asarray(weights, float) @ weight_basis(pred_us, knots)


def fit_composition(op_preds: list[np.ndarray], label_us: np.ndarray, *, fit: bool = True,
                    knots_us=OP_WEIGHT_KNOTS_US):
    """``(a, b, c)``, the op weights (``(knots_us, weights)`` or None) and the composed
    predictions of the programs whose (out-of-fold) op predictions are ``op_preds``.

    ``fit=False``: the plain sum (too few programs to fit anything). Op weights need
    :data:`MIN_PROGRAMS_OP_WEIGHTS` programs, else one weight ``b`` for every op."""
    label_us = np.asarray(label_us, float)
    n_ops = np.array([len(p) for p in op_preds], float)
    ones = np.ones_like(label_us)
    sums = np.array([p.sum() for p in op_preds])
    if not fit:
        return (0.0, 1.0, 0.0), None, sums
    if len(op_preds) < MIN_PROGRAMS_OP_WEIGHTS:
        A = np.column_stack([ones, sums, n_ops])
        coef, _ = nnls(A / label_us[:, None], ones)
        return tuple(float(x) for x in coef), None, A @ coef
    weighted = np.array([weight_basis(p, knots_us) @ p for p in op_preds])
    A = np.column_stack([ones, n_ops, weighted])
    coef, _ = nnls(A / label_us[:, None], ones)
    weights = (tuple(float(k) for k in knots_us), tuple(float(w) for w in coef[2:]))
    return (float(coef[0]), 1.0, float(coef[1])), weights, A @ coef
