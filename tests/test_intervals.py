"""90% prediction intervals: the conformal bounds cover what they promise, per workload, and a
model fitted on real profiled programs carries them into every calibrated prediction."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill import PRESETS, Workload
from perfmodel import Predictor
from perfmodel.intervals import conformal_bounds, has_bounds, interval_for, interval_table


def test_bounds_need_enough_ratios_and_are_order_statistics():
    assert conformal_bounds(range(18)) is None            # 90% needs n >= 19
    r = np.random.default_rng(0).normal(size=19)
    assert conformal_bounds(r) == (r.min(), r.max())      # n = 19: the extremes
    r = np.arange(99.0)                                   # n = 99: the 5th and 95th
    assert conformal_bounds(r) == (4.0, 94.0)
    with pytest.raises(ValueError, match="level"):
        conformal_bounds(r, 1.5)


@given(st.lists(st.floats(-5, 5), min_size=19, max_size=200))
@settings(max_examples=30, deadline=None)
def test_bounds_hold_at_least_the_level_of_the_sample(xs):
    lo, hi = conformal_bounds(xs)
    inside = np.mean([lo <= x <= hi for x in xs])
    assert lo <= hi and inside >= 0.9 - 1 / len(xs)


@pytest.mark.parametrize("dist", ["normal", "lognormal", "student-t"])
def test_new_draws_are_covered_at_the_level(dist):
    """The guarantee itself: over many calibration samples of 60 ratios, a new ratio from the
    same distribution falls inside the bounds 90-92% of the time."""
    rng = np.random.default_rng(1)
    draw = {"normal": lambda n: rng.normal(0.1, 0.2, n),
            "lognormal": lambda n: rng.lognormal(-2, 0.7, n),
            "student-t": lambda n: rng.standard_t(3, n) * 0.1}[dist]
    hits = []
    for _ in range(400):
        lo, hi = conformal_bounds(draw(60))
        new = draw(200)
        hits.append(np.mean((new >= lo) & (new <= hi)))
    assert 0.895 <= np.mean(hits) <= 0.93


def test_table_is_by_workload_with_pooled_bounds_for_the_rest():
    rng = np.random.default_rng(2)
    narrow, wide = rng.normal(0, 0.01, 40), rng.normal(0, 0.3, 40)
    few = rng.normal(0, 0.1, 5)
    t = interval_table(np.concatenate([narrow, wide, few]),
                       ["8x128 float32"] * 40 + ["1x128 float32"] * 40 + ["2x16 float32"] * 5)
    assert set(t["by_workload"]) == {"8x128 float32", "1x128 float32"}   # 5 are too few
    assert t["programs"]["2x16 float32"] == 5
    w8 = np.diff(t["by_workload"]["8x128 float32"])[0]
    w1 = np.diff(t["by_workload"]["1x128 float32"])[0]
    assert w1 > 5 * w8                    # batch 1's errors do not widen batch 8's interval
    lo, hi = interval_for(t, "2x16 float32", 10.0)       # never profiled: the pooled bounds
    assert (lo, hi) == pytest.approx((10 * math.exp(t["pooled"][0]), 10 * math.exp(t["pooled"][1])))
    assert all(math.isnan(v) for v in interval_for(None, "8x128 float32", 1.0))
    assert all(math.isnan(v) for v in interval_for(interval_table([0.1], ["a"]), "a", 1.0))
    assert has_bounds(t) and not has_bounds(None) and not has_bounds(interval_table([0.1], ["a"]))


def test_a_fitted_model_carries_intervals_into_predictions(real_model):
    iv = real_model.summary["interval"]
    assert iv["level"] == 0.9 and iv["programs"] == {"1x128 float32": 24, "8x128 float32": 24}
    assert set(iv["by_workload"]) == {"1x128 float32", "8x128 float32"}
    p = Predictor("cpu", real_model, exact=True)     # 3 small compiles, not 12
    for arch, wl in (("bert-mini", "8,128"), ("bert-tiny", "2,16")):   # 2x16: never profiled
        pr = p.predict(PRESETS[arch], Workload.parse(wl))
        lo, hi = pr.interval_ms
        assert 0 < lo < hi and lo < 2 * pr.latency_ms and hi > 0.5 * pr.latency_ms
    pooled = [pr.latency_ms * math.exp(v) for v in iv["pooled"]]
    assert pr.interval_ms == pytest.approx(pooled)
    # the stored ratios are out of fold: the interval holds about 90% of the fitted programs
    b = iv["by_workload"]["8x128 float32"]
    assert b[0] < 0 < b[1]
