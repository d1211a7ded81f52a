"""The Ray executor on a local two-node cluster (loopback only, started and stopped here):
routing by custom resource, a SIGKILLed worker retried with each result stored once, and a
search through Ray giving the same front as in-process."""

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")      # the `ray` extra (in `dev`, so `make test` runs these)


def die_once(marker: str):
    p = Path(marker)
    if not p.exists():
        p.write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)     # a real SIGKILL of the worker process
    return "survived"


@pytest.fixture(scope="module")
def cluster():
    from ray import cloudpickle    # Ray's own copy pickles task arguments
    from ray.cluster_utils import Cluster
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers cannot import tests/
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"hw:a": 1}, "include_dashboard": False})
    c.add_node(num_cpus=1, resources={"hw:b": 1})
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    nodes = {n["Resources"].get("hw:a") and "a" or "b": n["NodeID"]
             for n in ray.nodes() if n["Alive"]}
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def test_jobs_land_on_the_node_with_their_resource(cluster):
    from measurements.executor import Job, RayExecutor
    _, nodes = cluster
    ex = RayExecutor()
    jobs = [Job(f"{k}{i}", sum, ([i],), resources={"num_cpus": 1, f"hw:{k}": 1})
            for k in "ab" for i in range(3)]
    res = ex.map(jobs)
    assert all(r.ok for r in res)
    for r in res:
        assert r.worker["ray_node"] == nodes[r.key[0]], r.key
    t, = ex.map([Job("t", sum, ([1],), resources={"hw:b": 1}, exclusive=True)])
    assert t.ok and t.worker["ray_node"] == nodes["b"]


def test_a_sigkilled_worker_is_retried_and_its_result_stored_once(cluster, tmp_path):
    from measurements import Store, Trial
    from measurements.executor import Job, RayExecutor
    ex = RayExecutor(backoff_s=0.1)
    r, = ex.map([Job("k", die_once, (str(tmp_path / "m"),), max_retries=2)])
    assert r.ok and r.value == "survived" and r.attempts == 2
    with Store(tmp_path / "s.db") as st:     # the driver writes; a resubmitted key is a no-op
        st.start_run("t", run_id="r")
        for _ in range(2):
            st.put_trials([Trial(run_id="r", index=0, x={"k": 1}, source="t", round=0)])
        st.update_trial("r", 0, status="running")
        st.update_trial("r", 0, status="done", values={"f0": 1.0})
        assert len(st.trials("r")) == 1


def test_search_through_ray_gives_the_local_front(cluster, tmp_path):
    from pymoo.problems import get_problem

    from measurements import Store
    from measurements.executor import RayExecutor
    from search import minimize
    problem = get_problem("zdt2", n_var=3)
    a = minimize(problem, budget=9, seed=5, store=Store(tmp_path / "a.db"), run_id="r")
    b = minimize(problem, budget=9, seed=5, store=Store(tmp_path / "b.db"), run_id="r",
                 executor=RayExecutor())
    np.testing.assert_array_equal(a.F, b.F)
