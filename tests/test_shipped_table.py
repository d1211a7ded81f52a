"""The op-list table shipped with the package covers the default search space at the workloads
it was built for: a prediction there compiles nothing on a fresh clone (no disk cache)."""

import pytest

from distill import Workload
from perfmodel.opcache import ShippedOpLists
from perfmodel.predict import Predictor
from search import DEFAULT_SPACE


@pytest.mark.parametrize("workload", ["8,128", "1,128"])
def test_the_default_space_is_predicted_from_the_shipped_table_alone(workload):
    table = ShippedOpLists.default("cpu")
    assert table is not None, "perfmodel/oplists_cpu.json.gz is missing from the package"
    info = table.info
    if not info["valid_here"]["cpu"]:
        pytest.skip(f"the shipped table was built with {info['versions']}; rebuild it with "
                    "benchmarks/build_part_table.py for this jax")
    assert str(Workload.parse(workload)) in info["workloads"]
    pred = Predictor("cpu", None, cache=None)        # the analytic model: no fit needed
    wl = Workload.parse(workload)
    cfgs = DEFAULT_SPACE.sample_configs(60, seed=7)
    out = [pred.predict(c, wl) for c in cfgs]
    assert pred.compiles == 0 and all(p.n_ops > 0 and p.latency_ms > 0 for p in out)
    assert pred.stats()["shipped_table"]["misses"] == 0
