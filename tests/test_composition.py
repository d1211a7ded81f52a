"""The composition model (perfmodel.composition): op weights recovered from programs built
with them, the fallbacks for small stores, and the artifact that carries them."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfmodel.composition import (MIN_PROGRAMS_OP_WEIGHTS, OP_WEIGHT_KNOTS_US,
                                   fit_composition, op_weight)
from perfmodel.latency_model import LatencyModel, ModelError


def _programs(n, seed=0):
    """Op predictions of ``n`` programs: 20-400 ops each, times log-uniform 0.3 us - 30 ms."""
    rng = np.random.default_rng(seed)
    return [np.exp(rng.uniform(np.log(0.3), np.log(3e4), rng.integers(20, 400)))
            for _ in range(n)]


def test_op_weights_of_programs_built_with_them_are_recovered():
    progs = _programs(60)
    truth = (OP_WEIGHT_KNOTS_US, (0.6, 1.2))
    a, c = 150.0, 0.8
    label = np.array([a + (p * op_weight(p, truth)).sum() + c * len(p) for p in progs])
    coef, weights, composed = fit_composition(progs, label)
    assert weights[0] == OP_WEIGHT_KNOTS_US
    assert np.allclose(weights[1], truth[1], rtol=1e-3)
    assert coef[1] == 1.0 and math.isclose(coef[0], a, rel_tol=1e-2)
    assert math.isclose(coef[2], c, rel_tol=1e-2, abs_tol=1e-2)
    assert np.allclose(composed, label, rtol=1e-6)


def test_small_stores_keep_one_weight_and_tiny_ones_the_plain_sum():
    progs = _programs(MIN_PROGRAMS_OP_WEIGHTS - 1, seed=1)
    label = np.array([40.0 + 0.9 * p.sum() for p in progs])
    coef, weights, composed = fit_composition(progs, label)
    assert weights is None and math.isclose(coef[1], 0.9, rel_tol=1e-6)
    assert np.allclose(composed, label)
    coef, weights, composed = fit_composition(progs[:3], label[:3], fit=False)
    assert (coef, weights) == ((0.0, 1.0, 0.0), None)
    assert np.allclose(composed, [p.sum() for p in progs[:3]])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 3.0), min_size=2, max_size=5),
       st.lists(st.floats(1e-4, 1e7), min_size=1, max_size=30))
def test_an_op_weight_lies_between_the_knots_weights(ws, times):
    knots = tuple(10.0 ** k for k in range(len(ws)))
    w = op_weight(np.array(times), (knots, tuple(ws)))
    assert np.all(w >= min(ws) - 1e-9) and np.all(w <= max(ws) + 1e-9)
    # constant beyond the end knots
    edge = op_weight(np.array([1e-6, 1e12]), (knots, tuple(ws)))
    assert np.allclose(edge, [ws[0], ws[-1]])
    assert np.array_equal(op_weight(np.array(times), None), np.ones(len(times)))


def test_the_artifact_keeps_its_op_weights_and_old_ones_still_load(real_model, tmp_path):
    assert real_model.op_weights is not None          # 48 programs: weights are fitted
    assert real_model.summary["composition"]["op_weights"]["knots_us"] == list(
        OP_WEIGHT_KNOTS_US)
    d = real_model.save(tmp_path / "m")
    back = LatencyModel.load(d)
    assert back.op_weights == real_model.op_weights
    meta = json.loads((d / "meta.json").read_text())
    # an artifact saved before op weights composes with one weight for every op
    old = dict(meta)
    old.pop("op_weights")
    (d / "meta.json").write_text(json.dumps(old))
    assert LatencyModel.load(d).op_weights is None
    # damaged op weights: an error naming the file and the fix, not a crash later
    for bad in ({"knots_us": [1.0, 1e4]}, {"knots_us": [1.0, 1e4], "weights": [1.0]},
                {"knots_us": "x", "weights": None}):
        (d / "meta.json").write_text(json.dumps({**meta, "op_weights": bad}))
        with pytest.raises(ModelError, match="op_weights are corrupt.*hwdistill fit"):
            LatencyModel.load(d)


def test_a_programs_prediction_is_its_ops_weighted_terms(real_store, real_model):
    from measurements import Store
    from perfmodel.hlo import HloOp
    path, fp_id = real_store
    with Store(path, readonly=True) as s:
        rec = next(iter(s.op_timings(fp_id)))
        ops = [HloOp.from_dict(o.features) for o in s.op_timings(fp_id, program=rec.program)]
    p = real_model.predict_ops_us(ops)
    a, b, c = real_model.composition
    want = a + b * (p * op_weight(p, real_model.op_weights)).sum() + c * len(ops)
    assert math.isclose(real_model.predict_program_ms(ops) * 1e3, want, rel_tol=1e-9)


def test_hwdistill_fit_says_how_it_composes(real_model):
    from hwdistill.commands.fit import composition_line
    line = composition_line(real_model.summary)
    w = real_model.summary["composition"]["op_weights"]["weights"]
    assert line.startswith("composition: latency = ") and f"{w[0]:.2f} at 1 us" in line
    assert f"{w[1]:.2f} at 10000 us" in line and "within +-10%" in line
    small = {**real_model.summary, "composition": {**real_model.summary["composition"],
                                                   "op_weights": None, "b": 0.97}}
    assert "0.970 x the sum of op times" in composition_line(small)
