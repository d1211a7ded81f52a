"""The search's latency budget on a predicted latency's interval (``--latency-bound upper``):
a student counts as within budget only if the upper end of its 90% prediction interval is, and
inputs that cannot support it are refused with the fix."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill import Workload
from measurements.errors import InputError
from perfmodel import Predictor
from search.objectives import Evaluation, MeasuredLatency, Parameters, PredictedLatency
from search.problem import StudentProblem, budgeted_latency
from search.space import SearchSpace

FIX = Path(__file__).parent / "fixtures"
WL = Workload.parse("2,16")          # never profiled by the fixture store: pooled bounds


@pytest.fixture(scope="module")
def space():
    return SearchSpace.from_toml(FIX / "tiny_space.toml")


@pytest.fixture(scope="module")
def predicted(real_model):
    return PredictedLatency("cpu", real_model,
                            predictor=Predictor("cpu", real_model, exact=True))


def test_the_budget_applies_to_the_interval_s_upper_end(space, predicted):
    cand = space.sample(1, seed=0)[0]
    e = predicted.evaluate(cand, WL)
    lo, hi = e.detail["interval_ms"]           # every evaluation records its interval
    assert lo < e.value < hi
    budget = (e.value + hi) / 2                # the prediction meets it, its upper end not
    objectives = [predicted, Parameters()]
    on_value = StudentProblem(space, objectives, WL, max_latency_ms=budget)
    on_upper = StudentProblem(space, objectives, WL, max_latency_ms=budget,
                              latency_bound="upper")
    _, g_value, _ = on_value.evaluate_candidate(cand)
    _, g_upper, detail = on_upper.evaluate_candidate(cand)
    assert g_value[0] == pytest.approx(e.value - budget) and g_value[0] < 0      # feasible
    assert g_upper[0] == pytest.approx(hi - budget) and g_upper[0] > 0          # not
    assert detail["detail"][predicted.name]["interval_ms"] == pytest.approx([lo, hi])
    assert on_upper.describe()["latency_bound"] == "upper"
    # the default leaves the description as it was, so runs recorded before still resume
    assert "latency_bound" not in on_value.describe()


@given(st.floats(0.1, 1e4), st.floats(0.01, 2.0), st.floats(0.01, 2.0), st.floats(1.0, 1e4))
@settings(max_examples=50, deadline=None)
def test_upper_is_never_looser_than_the_prediction(ms, down, up, budget):
    """For any prediction inside its interval: the upper end is what the budget sees, and
    whatever is feasible on it is feasible on the prediction."""
    lo, hi = ms / (1 + down), ms * (1 + up)
    e = Evaluation("latency_ms[cpu]", ms, "predicted", 0.0, {"interval_ms": [lo, hi]})
    assert budgeted_latency(e, "upper") == hi and budgeted_latency(e) == ms
    if budgeted_latency(e, "upper") <= budget:
        assert budgeted_latency(e) <= budget


def test_inputs_that_cannot_bound_are_refused_with_the_fix(space, predicted, fp):
    objectives = [predicted, Parameters()]
    with pytest.raises(InputError, match="--latency-bound 'mean'.*predicted, upper"):
        StudentProblem(space, objectives, WL, max_latency_ms=5.0, latency_bound="mean")
    with pytest.raises(InputError, match="give --max-latency-ms too"):
        StudentProblem(space, objectives, WL, latency_bound="upper")
    with pytest.raises(InputError, match="is measured: use --latency predicted"):
        StudentProblem(space, [MeasuredLatency(fp), Parameters()], WL, max_latency_ms=5.0,
                       latency_bound="upper", baseline=predicted)
    analytic = PredictedLatency("cpu", None)            # the roofline: no interval
    assert not analytic.has_intervals and predicted.has_intervals
    with pytest.raises(InputError, match="no prediction intervals.*`hwdistill fit`"):
        StudentProblem(space, [analytic, Parameters()], WL, max_latency_ms=5.0,
                       latency_bound="upper")
    # a prediction without an interval (e.g. a model whose table lacks its workload) is
    # refused when the budget is applied, naming the objective, not silently taken as exact
    e = Evaluation(predicted.name, 3.0, "predicted", 0.0, {"calibrated": True})
    with pytest.raises(InputError, match=r"latency_ms\[cpu\]: this prediction has no interval"):
        budgeted_latency(e, "upper")
    assert budgeted_latency(e) == 3.0
