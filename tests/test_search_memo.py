"""MemoisedObjective: a machine-independent objective (an accuracy) is computed once per
candidate for every run and machine that shares a store; timings are refused."""

import pickle

import pytest

from measurements import Store
from measurements.errors import InputError
from search.memo import MemoisedObjective
from search.objectives import Evaluation, Objective, PredictedLatency
from search.space import DEFAULT_SPACE
from distill import Workload

W = Workload(1, 16)


class Depth(Objective):
    """A user's objective: layers x steps, counting its calls (stands in for a distillation)."""

    name, sense, provenance = "depth", "max", "proxy"

    def __init__(self, steps=1, fail=False):
        self.steps, self.fail, self.calls = steps, fail, 0

    def evaluate(self, cand, workload):
        self.calls += 1
        if self.fail:
            raise ValueError("diverged at step 3")
        return Evaluation(self.name, cand.config.num_layers * self.steps, self.provenance, 2.5,
                          {"steps": self.steps})

    def describe(self):
        return {**super().describe(), "steps": self.steps}


def test_computed_once_then_read_back_by_another_process_s_objective(tmp_path):
    c1, c2 = DEFAULT_SPACE.sample(2, 0)
    inner = Depth()
    with Store(tmp_path / "s.db") as st:
        acc = MemoisedObjective(inner, st)
        e1 = acc.evaluate(c1, W)
        assert (e1.value, e1.cost_s, inner.calls) == (c1.config.num_layers, 2.5, 1)
        assert acc.evaluate(c1, Workload(8, 128)).value == e1.value     # any workload
        assert (inner.calls, acc.computed, acc.reused) == (1, 1, 1)
    again = Depth()
    with Store(tmp_path / "s.db") as st:            # a later run (or another machine's)
        acc = MemoisedObjective(again, st)
        e = acc.evaluate(c1, W)
        assert again.calls == 0 and e.value == e1.value and e.cost_s == 0.0
        assert e.detail["first_cost_s"] == 2.5 and e.detail["steps"] == 1
        assert e.detail["memo"].startswith(acc.memo.run)
        acc.evaluate(c2, W)
        assert again.calls == 1
        assert acc.describe() == again.describe()          # the same objective, memo or not
        other = MemoisedObjective(Depth(steps=2), st)      # another recipe: another memo
        assert other.memo.run != acc.memo.run
        assert other.evaluate(c1, W).value == 2 * c1.config.num_layers


def test_a_value_from_elsewhere_is_adopted_once_and_used(tmp_path):
    (c,) = DEFAULT_SPACE.sample(1, 3)
    inner = Depth()
    with Store(tmp_path / "s.db") as st:
        acc = MemoisedObjective(inner, st)
        known = Evaluation("depth", 0.75, "proxy", 9.0)
        assert acc.record(c, known, "old-run#4")
        assert not acc.record(c, Evaluation("depth", 0.1, "proxy", 1.0), "old-run#5")
        e = acc.evaluate(c, W)
        assert inner.calls == 0 and e.value == 0.75 and e.detail["first_cost_s"] == 9.0
        with pytest.raises(InputError, match="'latency'"):
            acc.record(c, Evaluation("latency", 1.0, "proxy", 1.0), "x")


def test_a_failure_is_recorded_with_its_cause_and_not_retried(tmp_path):
    (c,) = DEFAULT_SPACE.sample(1, 5)
    inner = Depth(fail=True)
    with Store(tmp_path / "s.db") as st:
        acc = MemoisedObjective(inner, st)
        for _ in range(2):
            with pytest.raises(RuntimeError, match="diverged at step 3"):
                acc.evaluate(c, W)
        assert inner.calls == 1


def test_a_timing_or_a_prediction_is_refused_and_it_stays_with_its_store(tmp_path):
    with Store(tmp_path / "s.db") as st:
        with pytest.raises(TypeError, match="holds an open store"):
            pickle.dumps(MemoisedObjective(Depth(), st))
        with pytest.raises(InputError, match=r"latency_ms\[cpu\].*depends on the machine"):
            MemoisedObjective(PredictedLatency("cpu"), st)
