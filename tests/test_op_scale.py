"""The scale the op model learns on: exact round trips, growth with the roofline (what lets a
tree extrapolate to larger ops), and artifacts that remember their scale."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from measurements import Store
from perfmodel.latency_model import LatencyModel, ModelError, fit_from_store
from perfmodel.op_scale import OP_SCALES, ROOFLINE_FLOOR_US, from_target, to_target

times = st.floats(0.0, 1e7, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(t=times, r=times, scale=st.sampled_from(OP_SCALES))
def test_round_trip(t, r, scale):
    back = from_target(to_target(np.array([t]), np.array([r]), scale), np.array([r]), scale)
    assert back[0] == pytest.approx(t, rel=1e-9, abs=1e-6)


def test_the_roofline_scale_grows_with_the_roofline_and_is_additive_below_its_floor():
    # the same learned value (an op 2x above its roofline) for ever larger ops: the time grows
    # with the roofline; a tree on log1p would return one fixed time for all of them
    roof = np.array([1e4, 1e5, 1e6])
    assert np.allclose(to_target(2 * roof, roof, "roofline"), np.log(2), atol=0.01)
    t = from_target(np.full(3, np.log(2)), roof, "roofline")
    assert np.allclose(t, 2 * roof, rtol=0.01)
    # tiny ops (roofline ~0): their target is the time over the floor, not a ratio of zeros
    assert to_target(np.array([5.0]), np.array([0.0]), "roofline")[0] == pytest.approx(
        np.log((5.0 + ROOFLINE_FLOOR_US) / ROOFLINE_FLOOR_US))
    assert from_target(np.array([-50.0]), np.array([0.0]), "roofline")[0] == 0.0  # never < 0


def test_an_unknown_scale_is_refused_by_name():
    with pytest.raises(ModelError, match="'log2'"):
        to_target(np.ones(1), np.ones(1), "log2")


def test_fit_learns_on_the_scale_asked_and_the_artifact_keeps_it(real_store, tmp_path):
    path, fp_id = real_store
    with Store(path, readonly=True) as s:
        roof = fit_from_store(s, fp_id, folds=3)
        plain = fit_from_store(s, fp_id, folds=3, op_scale="log1p")
        ops = [o for o in s.op_timings(fp_id)][:200]
        with pytest.raises(ModelError, match="op_scale 'ratio'"):
            fit_from_store(s, fp_id, op_scale="ratio")
    from perfmodel.hlo import HloOp
    hops = [HloOp.from_dict(o.features) for o in ops]
    assert roof.op_scale == roof.summary["op_scale"] == "roofline"
    assert plain.op_scale == "log1p"
    for m in (roof, plain):
        p = m.predict_ops_us(hops)
        assert np.all(np.isfinite(p)) and np.all(p >= 0)
        assert 0 < m.summary["cv_e2e_mape"] < 1
    back = LatencyModel.load(roof.save(tmp_path / "m"))
    assert back.op_scale == "roofline"
    assert np.allclose(back.predict_ops_us(hops), roof.predict_ops_us(hops))
    # an artifact written before scales were recorded learned on log1p
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    del meta["op_scale"]
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    assert LatencyModel.load(tmp_path / "m").op_scale == "log1p"
    meta["op_scale"] = "sqrt"
    (tmp_path / "m" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="'sqrt'"):
        LatencyModel.load(tmp_path / "m")
